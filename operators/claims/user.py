"""User claims: a user's permissions and limits, the scoped signing keys that template them, and its ``nats``
section (nats-io/jwt v2 ``user_claims.go``, ``signingkeys.go``; pure, no Django)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from operators.claims.common import UNLIMITED, JwtError, tags_json
from operators.claims.permissions import Permissions


@dataclass(frozen=True)
class TimeRange:
    """A daily window (``HH:MM:SS``) in which a user may connect."""

    start: str
    end: str

    def to_json(self) -> dict[str, str]:
        return {"start": self.start, "end": self.end}


@dataclass(frozen=True)
class UserLimits:
    """Per-connection limits of a user (-1 = unlimited) and where and when it may connect from."""

    subs: int = UNLIMITED
    data: int = UNLIMITED
    payload: int = UNLIMITED
    src: tuple[str, ...] = ()
    times: tuple[TimeRange, ...] = ()
    times_location: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subs": self.subs, "data": self.data, "payload": self.payload}
        if self.src:
            out["src"] = list(self.src)
        if self.times:
            out["times"] = [t.to_json() for t in self.times]
        if self.times_location:
            out["times_location"] = self.times_location
        return out


@dataclass(frozen=True)
class UserScope:
    """A scoped signing key: users it signs get the template's permissions and limits, none of their own."""

    key: str
    role: str
    permissions: Permissions = Permissions()
    limits: UserLimits = UserLimits()
    bearer_token: bool = False
    allowed_connection_types: tuple[str, ...] = ()
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        template: dict[str, Any] = {**self.permissions.to_json(), **self.limits.to_json()}
        if self.bearer_token:
            template["bearer_token"] = True
        if self.allowed_connection_types:
            template["allowed_connection_types"] = list(self.allowed_connection_types)
        out: dict[str, Any] = {"kind": "user_scope", "key": self.key, "role": self.role, "template": template}
        if self.description:
            out["description"] = self.description
        return out


def user_nats(
    *,
    permissions: Permissions | None = None,
    limits: UserLimits | None = None,
    bearer_token: bool = False,
    issuer_account: str = "",
    allowed_connection_types: Iterable[str] = (),
    scoped: bool = False,
    tags: Iterable[str] = (),
) -> dict[str, Any]:
    """A user's ``nats`` section. ``scoped`` users (signed by a scoped key) carry no permissions or limits."""
    out: dict[str, Any] = {}
    if not scoped:
        out.update((permissions or Permissions()).to_json())
        out.update((limits or UserLimits()).to_json())
        if bearer_token:
            out["bearer_token"] = True
        types = list(allowed_connection_types)
        if types:
            out["allowed_connection_types"] = types
    elif permissions is not None or limits is not None or bearer_token:
        raise JwtError("a user of a scoped signing key carries no permissions or limits of its own")
    if issuer_account:
        out["issuer_account"] = issuer_account
    if tags:
        out["tags"] = tags_json(tags)
    return out

