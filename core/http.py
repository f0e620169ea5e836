"""The HTTP edge of ``core.errors``: one status per kind, one JSON body, for the API and the web."""

from __future__ import annotations

from typing import Any

from core.errors import ApplicationError, ErrorKind

STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 400,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.INTERNAL: 500,
    ErrorKind.UNAVAILABLE: 503,
}


def status_for(exc: ApplicationError) -> int:
    return STATUS[exc.kind]


def error_body(exc: ApplicationError) -> dict[str, Any]:
    return {"message": exc.message, "code": exc.code, "extra": exc.extra}
