"""The one application error type: a kind and a stable ``code`` for programs, a message for people.

The domain raises a kind (``Invalid``, ``Conflict``, ``NotFound``, ``Forbidden``, ``Unavailable``, ...); the
HTTP status is chosen once, at the edge (``core.http``), for the API and the web alike. No Django import.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorKind(StrEnum):
    """What went wrong, as a caller can act on it."""

    INVALID = "invalid"  # the input is wrong: fix it and try again
    CONFLICT = "conflict"  # the input is fine, the current state refuses it
    NOT_FOUND = "not_found"  # unknown, or another tenant's (always the same answer)
    FORBIDDEN = "forbidden"  # known, but the actor's role does not allow it
    RATE_LIMITED = "rate_limited"  # too many attempts: wait ``extra["retry_after"]`` seconds
    UNAVAILABLE = "unavailable"  # a dependency (NATS, Kubernetes) did not answer: try again later
    INTERNAL = "internal"  # our fault: stored data is inconsistent


class ApplicationError(Exception):
    """A refused request: rendered as ``{"message", "code", "extra"}`` with the status of its kind.

    ``code`` is stable and machine-readable (``account_name_taken``); it defaults to the kind's name."""

    kind: ClassVar[ErrorKind] = ErrorKind.INVALID

    def __init__(self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None,
                 kind: ErrorKind | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        if kind is not None:
            self.kind = kind  # type: ignore[misc]  # one instance of another kind (e.g. an upstream 409)
        self.code = code or str(self.kind)


class Invalid(ApplicationError):
    """Bad input; ``extra["field"]`` (or ``extra["fields"]``) names what to fix."""

    kind = ErrorKind.INVALID


class Conflict(ApplicationError):
    """Valid input the current state refuses (a name taken, a plan full, a revoked user)."""

    kind = ErrorKind.CONFLICT


class NotFound(ApplicationError):
    """An object that does not exist or belongs to another tenant (always the same answer)."""

    kind = ErrorKind.NOT_FOUND


class Forbidden(ApplicationError):
    """The actor may see the object but not do this to it (a member where an owner is needed)."""

    kind = ErrorKind.FORBIDDEN


class RateLimited(ApplicationError):
    """Too many attempts; ``extra["retry_after"]`` says how many seconds to wait."""

    kind = ErrorKind.RATE_LIMITED


class Unavailable(ApplicationError):
    """A dependency did not answer or refused for its own reasons; the same call may work later."""

    kind = ErrorKind.UNAVAILABLE


class Internal(ApplicationError):
    """Stored data is inconsistent: nothing the caller can fix."""

    kind = ErrorKind.INTERNAL
