"""Publish and subscribe permissions, shared by users, scoped signing keys and account defaults (pure, no Django).

nats-io/jwt v2 ``types.go``: ``Permission``, ``ResponsePermission`` and ``Permissions``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Permission:
    """Subjects allowed and denied for publish or subscribe."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.allow:
            out["allow"] = list(self.allow)
        if self.deny:
            out["deny"] = list(self.deny)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Permission:
        data = data or {}
        return cls(allow=tuple(data.get("allow") or ()), deny=tuple(data.get("deny") or ()))


@dataclass(frozen=True)
class ResponsePermission:
    """Allow publishing to reply subjects of received requests: ``max`` replies within ``ttl_ns``."""

    max: int = 1
    ttl_ns: int = 0

    def to_json(self) -> dict[str, int]:
        return {"max": self.max, "ttl": self.ttl_ns}


@dataclass(frozen=True)
class Permissions:
    pub: Permission = Permission()
    sub: Permission = Permission()
    resp: ResponsePermission | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pub": self.pub.to_json(), "sub": self.sub.to_json()}
        if self.resp is not None:
            out["resp"] = self.resp.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Permissions:
        data = data or {}
        resp = data.get("resp")
        return cls(
            pub=Permission.from_json(data.get("pub")),
            sub=Permission.from_json(data.get("sub")),
            resp=ResponsePermission(max=resp.get("max", 0), ttl_ns=resp.get("ttl", 0)) if resp else None,
        )

