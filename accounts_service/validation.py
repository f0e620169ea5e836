"""Input checks shared by the tenant services; each failure is an ApplicationError naming the field."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone

from core.errors import ApplicationError
from operators import nkeys
from operators.nkeys import KeyType
from operators.subjects import SubjectError, validate_subject

MAX_NAME = 64
MAX_DESCRIPTION = 200
MAX_LIMIT = 2**53  # far beyond any real limit, and exact in JSON numbers everywhere
MAX_SUBJECTS = 100


def name_check(value: object, *, field: str = "name", max_length: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApplicationError(f"{field} is required", extra={"field": field})
    value = value.strip()
    if len(value) > max_length:
        raise ApplicationError(f"{field} is longer than {max_length} characters", extra={"field": field})
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ApplicationError(f"{field} contains a control character", extra={"field": field})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ApplicationError(f"{field} is not valid Unicode", extra={"field": field}) from exc
    return value


def description_check(value: object, *, field: str = "description") -> str:
    if value in (None, ""):
        return ""
    return name_check(value, field=field, max_length=MAX_DESCRIPTION)


def limit_check(value: object, *, field: str, minimum: int = -1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplicationError(f"{field} must be an integer (-1 for unlimited)", extra={"field": field})
    if value < minimum or value > MAX_LIMIT:
        raise ApplicationError(f"{field} must be between {minimum} and {MAX_LIMIT}", extra={"field": field})
    return value


def subject_check(value: object, *, field: str = "subject", wildcards: bool = True) -> str:
    try:
        return validate_subject(value, wildcards=wildcards, what=field)
    except SubjectError as exc:
        raise ApplicationError(str(exc), extra={"field": field}) from exc


def subjects_check(values: Iterable[object] | None, *, field: str) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out = list(values)
    if len(out) > MAX_SUBJECTS:
        raise ApplicationError(f"{field} holds more than {MAX_SUBJECTS} subjects", extra={"field": field})
    return sorted({subject_check(v, field=field) for v in out})


def public_key_check(value: object, *, key_type: KeyType, field: str) -> str:
    if not isinstance(value, str):
        raise ApplicationError(f"{field} must be a {key_type.label} public key", extra={"field": field})
    try:
        return nkeys.validate_public_key(value.strip(), key_type)
    except nkeys.NKeyError as exc:
        raise ApplicationError(f"{field}: {exc}", extra={"field": field}) from exc


def future_check(value: object, *, field: str) -> dt.datetime | None:
    """A time in the future, or None (never expires)."""
    if value is not None and (not isinstance(value, dt.datetime) or value <= timezone.now()):
        raise ApplicationError(f"{field} is in the past", extra={"field": field}, code="expires_in_past")
    return value
