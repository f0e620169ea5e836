"""Input checks shared by the tenant services; each failure is an ApplicationError naming the field."""

from __future__ import annotations

import datetime as dt
import re
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

# What a name (of a team, an account, a user, an export, ...) may hold, as regex character classes the API's
# OpenAPI patterns reuse (JSON Schema patterns are ECMA-262; ``\uXXXX`` means the same there and in ``re``).
CONTROL_CHARS = r"\x00-\x1f\x7f-\x9f"  # C0, DEL and C1
# Bidi marks, embeddings, overrides and isolates: they make text read in another order than it is stored
# ("Trojan Source"), so a catalog entry could pass for another.
BIDI_CHARS = r"\u200e\u200f\u202a-\u202e\u2066-\u2069"
SPACE_CHARS = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"  # str.isspace() beyond the controls
# Shown as nothing (zero-width characters, fillers, variation selectors): allowed inside a name, never alone.
INVISIBLE_CHARS = (r"\xad\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200d\u2060-\u2064\u3164"
                   r"\ufe00-\ufe0f\ufeff\uffa0")
# A name: no control or bidi character, and at least one visible character (the services strip white space).
NAME_PATTERN = (rf"^[^{CONTROL_CHARS}{BIDI_CHARS}]*[^{CONTROL_CHARS}{BIDI_CHARS}{SPACE_CHARS}{INVISIBLE_CHARS}]"
                rf"[^{CONTROL_CHARS}{BIDI_CHARS}]*$")
_CONTROL_RE = re.compile(f"[{CONTROL_CHARS}]")
_BIDI_RE = re.compile(f"[{BIDI_CHARS}]")
_VISIBLE_RE = re.compile(f"[^{CONTROL_CHARS}{BIDI_CHARS}{SPACE_CHARS}{INVISIBLE_CHARS}]")


def name_check(value: object, *, field: str = "name", max_length: int = MAX_NAME) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ApplicationError(f"{field} is required", extra={"field": field})
    value = value.strip()
    if len(value) > max_length:
        raise ApplicationError(f"{field} is longer than {max_length} characters", extra={"field": field})
    if _CONTROL_RE.search(value):
        raise ApplicationError(f"{field} contains a control character", extra={"field": field}, code="name_control")
    if _BIDI_RE.search(value):
        raise ApplicationError(f"{field} contains a bidirectional control character (it would make the name read "
                               "differently from what it is): remove it", extra={"field": field}, code="name_bidi")
    if not _VISIBLE_RE.search(value):
        raise ApplicationError(f"{field} has no visible character", extra={"field": field}, code="name_invisible")
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
