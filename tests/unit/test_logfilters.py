"""Routine periodic tasks do not fill the logs: Celery's per-run INFO lines for beat's tasks are dropped, anything
else (other tasks, warnings, failures) passes."""

from __future__ import annotations

import logging

from core.logfilters import CELERY_ROUTINE_LOGGERS, RoutineTaskFilter


def _record(name: str, msg: str, args=(), level=logging.INFO, data=None) -> logging.LogRecord:
    record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
    if data is not None:
        record.data = data
    return record


def test_routine_lines_are_dropped_and_everything_else_passes():
    quiet = RoutineTaskFilter({"broker_gateway.tasks.fleet_reconcile"})
    routine = {"name": "broker_gateway.tasks.fleet_reconcile", "id": "x"}
    assert not quiet.filter(_record("celery.worker.strategy", "Task %(name)s[%(id)s] received", (routine,),
                                    data=routine))
    assert not quiet.filter(_record("celery.app.trace", "Task %(name)s[%(id)s] succeeded", (routine,), data=routine))
    assert not quiet.filter(_record("celery.beat", "Scheduler: Sending due task %s (%s)",
                                    ("fleet-reconcile", "broker_gateway.tasks.fleet_reconcile")))
    other = {"name": "broker_gateway.tasks.account_push", "id": "y"}
    assert quiet.filter(_record("celery.app.trace", "Task %(name)s[%(id)s] succeeded", (other,), data=other))
    assert quiet.filter(_record("celery.app.trace", "Task %(name)s[%(id)s] raised", (routine,), logging.ERROR,
                                data=routine))


def test_the_celery_app_installs_the_filter_for_every_beat_task(settings):
    from accounts_service.celery import app

    app.loader.import_default_modules()
    app.conf.beat_schedule
    for name in CELERY_ROUTINE_LOGGERS:
        filters = [f for f in logging.getLogger(name).filters if isinstance(f, RoutineTaskFilter)]
        assert len(filters) == 1
        assert {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()} <= filters[0].tasks
