"""The Celery app, configured from Django settings under the ``CELERY_`` namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "accounts_service.settings")

app = Celery("accounts_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _quiet_routine(sender, **_) -> None:
    """Beat's periodic tasks are logged by themselves when they do something, not three lines a run."""
    from django.conf import settings

    from core.logfilters import routine_tasks_quiet

    routine_tasks_quiet({entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
                        | set(settings.CELERY_BEAT_SCHEDULE))
