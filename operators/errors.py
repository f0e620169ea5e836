"""The one application error type: a message for people and ``extra`` details for programs."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A refused request: rendered as ``{"message": ..., "extra": {...}}`` with a 4xx status."""

    status_code = 400

    def __init__(self, message: str, *, extra: dict[str, Any] | None = None, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApplicationError):
    """An object that does not exist or belongs to another tenant (always the same answer)."""

    status_code = 404
