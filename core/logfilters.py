"""Log filters (pure, stdlib only): keep the routine out of the logs so what matters is seen.

Celery logs three INFO lines for every run of a periodic task (beat's "Sending due task", the worker's "Task ...
received" and "Task ... succeeded"), whatever the task did: at one reconcile a minute and a few housekeeping
tasks that is thousands of lines a day burying the lines people look for (a verification mail printed to the
console, a refusal). The tasks log themselves when they did something; failures are WARNING or above and always
pass.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

__all__ = ["CELERY_ROUTINE_LOGGERS", "RoutineTaskFilter", "SecretUrlFilter", "routine_tasks_quiet", "secrets_redact"]

# The loggers of those three lines (celery.beat.Scheduler.apply_entry, celery.worker.strategy and celery.app.trace).
CELERY_ROUTINE_LOGGERS = ("celery.beat", "celery.worker.strategy", "celery.app.trace")


class RoutineTaskFilter(logging.Filter):
    """Drops the INFO-or-below records of those loggers that name one of ``tasks``."""

    def __init__(self, tasks: Iterable[str]) -> None:
        super().__init__()
        self.tasks = frozenset(tasks)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        data = getattr(record, "data", None)  # the worker's lines carry their context here
        names = {data.get("name")} if isinstance(data, dict) else set()
        if isinstance(record.args, tuple):  # beat's: ("Scheduler: Sending due task %s (%s)", entry name, task)
            names.update(a for a in record.args if isinstance(a, str))
        return not (names & self.tasks)


def routine_tasks_quiet(tasks: Iterable[str]) -> RoutineTaskFilter:
    """Install the filter on Celery's loggers (a logger's own filter applies whatever handlers Celery sets up)."""
    quiet = RoutineTaskFilter(tasks)
    for name in CELERY_ROUTINE_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RoutineTaskFilter)]:
            logger.removeFilter(old)
        logger.addFilter(quiet)
    return quiet


# ------------------------------------------------------------------------------------------------
# Secrets in URLs: an invitation's token is its path (/invitations/<token>/) and rides in sign-up and verification
# links (?invitation=<token>); the verification and password-reset links end in a one-time token. Django logs
# the path of every 4xx answer ("Not Found: /invitations/..."), runserver logs every request line and gunicorn's
# access log every request (core.gunicorn_logging), so those records are rewritten before any handler writes them.
# ------------------------------------------------------------------------------------------------

_SECRET_URL_PARTS = (
    (re.compile(r"(?<!/api/v1)(/invitations/)(?!mine/)[^/\s?\"']+"), r"\1[redacted]"),  # (mine/<id>/accept: no secret)
    (re.compile(r"([?&]invitation=)[^&\s\"']+"), r"\1[redacted]"),
    (re.compile(r"(/verify/[^/\s?\"']+/)[^/\s?\"']+"), r"\1[redacted]"),
    # Django's reset view swaps the token for "set-password" (kept in the session) on its first answer.
    (re.compile(r"(/password-reset/[^/\s?\"']+/)(?!set-password\b|sent/|done/)[^/\s?\"']+"), r"\1[redacted]"),
)


def secrets_redact(text: str) -> str:
    """``text`` with the secret parts of the URLs it names replaced by ``[redacted]``."""
    for pattern, replacement in _SECRET_URL_PARTS:
        text = pattern.sub(replacement, text)
    return text


class SecretUrlFilter(logging.Filter):
    """Rewrites a record whose message names a secret URL part (the record still passes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the formatter's to report, not ours
            return True
        redacted = secrets_redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
