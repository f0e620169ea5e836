"""The users route's hot path without DRF's per-request serializer machinery: a lean check of well-formed creation
input, and the user's JSON as ``UserOutputSerializer`` renders it.

Creating a DRF serializer deep-copies its declared fields (and the nested serializers' fields) on every request,
and validating walks them all; for ``.creds`` issuance that was about a fifth of the request's Python
(docs/BENCHMARKS.md, REST API). ``create_input_fast`` accepts only input that the route's ``InputSerializer``
certainly accepts unchanged, and returns what it would return (``validated_data``, keys in its field order);
anything else (a missing, unknown, null or mistyped field, an out-of-range value, a date-time, a non-ASCII string)
returns None and the serializer validates, so every 400 and its message stay DRF's. The services then check the
values as before (subjects, tags, limits, names). tests/api/test_users_io.py compares both with the serializers.
"""

from __future__ import annotations

import re
from typing import Any

from rest_framework import serializers

from accounts_service.api.utils import USER_KEY_PATTERN
from accounts_service.models import NatsUser
from accounts_service.services import user_jwt_path
from accounts_service.validation import MAX_LIMIT, MAX_SUBJECTS, NAME_PATTERN
from operators.subjects import MAX_SUBJECT_LENGTH

_NAME = re.compile(NAME_PATTERN)
_USER_KEY = re.compile(USER_KEY_PATTERN)
MAX_NAME, MAX_TAGS, MAX_TAG = 64, 32, 128  # the InputSerializer's max_length of name/role, tags and a tag

# The InputSerializer's fields, in its order (validated_data's key order, which the services' checks follow).
CREATE_FIELDS = ("name", "permissions", "limits", "bearer_token", "expires_at", "tags", "public_key", "role")
PERMISSION_FIELDS = ("pub", "sub", "allow_responses")
SUBJECT_FIELDS = ("allow", "deny")
LIMIT_FIELDS = ("subs", "data", "payload")


def _plain(value: Any, max_length: int) -> bool:
    # A string DRF's CharField keeps as sent: not blank, within max_length, no NUL (ASCII has no surrogates).
    return type(value) is str and 0 < len(value) <= max_length and value.isascii() and "\x00" not in value


def _name(value: Any) -> bool:
    return _plain(value, MAX_NAME) and _NAME.fullmatch(value) is not None


def _strings(value: Any, max_items: int, max_length: int) -> bool:
    return type(value) is list and len(value) <= max_items and all(_plain(v, max_length) for v in value)


def _subjects(value: Any) -> dict[str, list[str]] | None:
    if type(value) is not dict or not set(value) <= set(SUBJECT_FIELDS):
        return None
    if not all(_strings(value[k], MAX_SUBJECTS, MAX_SUBJECT_LENGTH) for k in value):
        return None
    return {k: list(value[k]) for k in SUBJECT_FIELDS if k in value}


def _permissions(value: Any) -> dict[str, Any] | None:
    if type(value) is not dict or not set(value) <= set(PERMISSION_FIELDS):
        return None
    out: dict[str, Any] = {}
    for key in PERMISSION_FIELDS:
        if key not in value:
            continue
        checked = value[key] if type(value[key]) is bool else None
        if key != "allow_responses":
            checked = _subjects(value[key])
        if checked is None:
            return None
        out[key] = checked
    return out


def _limits(value: Any) -> dict[str, int] | None:
    if type(value) is not dict or not set(value) <= set(LIMIT_FIELDS):
        return None
    if not all(type(value[k]) is int and -1 <= value[k] <= MAX_LIMIT for k in value):
        return None
    return {k: value[k] for k in LIMIT_FIELDS if k in value}


def create_input_fast(data: Any) -> dict[str, Any] | None:
    """``InputSerializer(data=data).validated_data`` of the users route for well-formed input, or None (then the
    serializer decides, with its messages)."""
    if type(data) is not dict or not set(data) <= set(CREATE_FIELDS) or "expires_at" in data:
        return None
    if not _name(data.get("name")):
        return None
    out: dict[str, Any] = {}
    for key in CREATE_FIELDS:
        if key not in data:
            continue
        value = data[key]
        if key == "name":
            checked: Any = value
        elif key == "permissions":
            checked = _permissions(value)
        elif key == "limits":
            checked = _limits(value)
        elif key == "bearer_token":
            checked = value if type(value) is bool else None
        elif key == "tags":
            checked = list(value) if _strings(value, MAX_TAGS, MAX_TAG) else None
        elif key == "public_key":
            checked = value if value == "" or (_plain(value, 56) and _USER_KEY.fullmatch(value)) else None
        else:  # role
            checked = value if value == "" or _name(value) else None
        if checked is None:
            return None
        out[key] = checked
    return out


# ------------------------------------------------------------------------------------------------
# Output: what UserOutputSerializer renders
# ------------------------------------------------------------------------------------------------

_DATETIME = serializers.DateTimeField()  # (stateless: only its to_representation is used, DRF's own format)


def _datetime(value: Any) -> str | None:
    return _DATETIME.to_representation(value) if value else None


def user_representation(user: NatsUser) -> dict[str, Any]:
    """``UserOutputSerializer(user).data`` as a plain dict (the same keys, order and values)."""
    return {
        "public_key": str(user.public_key),
        "name": str(user.name),
        "account": user.account.public_key,
        "role": user.signing_key.role,
        "permissions": {
            "pub": {"allow": user.pub_allow, "deny": user.pub_deny},
            "sub": {"allow": user.sub_allow, "deny": user.sub_deny},
            "allow_responses": user.allow_responses,
        },
        "limits": {"subs": user.subs, "data": user.data, "payload": user.payload},
        "bearer_token": bool(user.bearer_token),
        "tags": [str(t) for t in user.tags],
        "creds_available": user.seed_id is not None and user.revoked_at is None,
        "jwt_url": user_jwt_path(user=user),
        "expires_at": _datetime(user.expires_at),
        "revoked_at": _datetime(user.revoked_at),
        "jwt_iat": int(user.jwt_iat),
        "created_at": _datetime(user.created_at),
    }
