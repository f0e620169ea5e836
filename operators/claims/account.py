"""Account claims: limits (core and JetStream), exports, imports, subject mappings and the account's ``nats``
section (nats-io/jwt v2 ``account_claims.go``, ``exports.go``, ``imports.go``; pure, no Django).

Limits are always written explicitly: in a NATS JWT an omitted limit means 0, not unlimited.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from operators.claims.common import UNLIMITED, JwtError, tags_json
from operators.claims.permissions import Permissions
from operators.claims.user import UserScope


@dataclass(frozen=True)
class JetStreamLimits:
    """JetStream limits of an account as written in the JWT; storage of 0 in both memory and disk leaves JetStream
    off. The server reads 0 in ``streams``, ``consumer``, ``max_ack_pending`` and the max stream bytes as
    unlimited: build a tenant's limits with :func:`jetstream_tenant_limits`."""

    mem_storage: int = 0
    disk_storage: int = 0
    streams: int = 0
    consumer: int = 0
    max_ack_pending: int = 0
    mem_max_stream_bytes: int = 0
    disk_max_stream_bytes: int = 0
    max_bytes_required: bool = False

    @property
    def enabled(self) -> bool:
        return self.mem_storage != 0 or self.disk_storage != 0

    def to_json(self) -> dict[str, Any]:
        return {
            "mem_storage": self.mem_storage,
            "disk_storage": self.disk_storage,
            "streams": self.streams,
            "consumer": self.consumer,
            "max_ack_pending": self.max_ack_pending,
            "mem_max_stream_bytes": self.mem_max_stream_bytes,
            "disk_max_stream_bytes": self.disk_max_stream_bytes,
            "max_bytes_required": self.max_bytes_required,
        }


# ------------------------------------------------------------------------------------------------
# JetStream limits: what a tenant means, and how nats-server reads the JWT
# ------------------------------------------------------------------------------------------------
#
# How nats-server (2.15, server/accounts.go and server/jetstream.go) reads each JetStream key of an account JWT:
# - JetStream is on for the account only if ``mem_storage != 0 || disk_storage != 0`` (nats-io/jwt v2
#   ``OperatorLimits.IsJSEnabled``; accounts.go:3855, 3862). All keys are ignored otherwise.
# - ``mem_storage`` / ``disk_storage`` become MaxMemory / MaxStore as they are (accounts.go:3866-3867) and are
#   enforced whenever ``>= 0`` (jetstream.go:2462, 2467, 2526, 2535): 0 means no bytes of that storage, -1
#   unlimited.
# - ``streams`` / ``consumer`` become MaxStreams / MaxConsumers as they are (accounts.go:3868-3869) but are enforced
#   only when ``> 0`` (jetstream_api.go:4067, jetstream_cluster.go:9868, consumer.go:1163-1166,
#   jetstream.go:2491): 0 and -1 both mean unlimited; "no streams" or "no consumers" cannot be said.
# - ``max_ack_pending``, ``mem_max_stream_bytes``, ``disk_max_stream_bytes`` go through ``toUnlimited`` (> 0 kept,
#   anything else -1; accounts.go:3856-3861, 3870-3873): 0 and -1 both mean unlimited, no zero.
# - ``max_bytes_required`` is a flag: streams must then set max_bytes (stream.go:2411).
# - ``tiered_limits`` (exclusive with the flat keys): each tier is read the same way (accounts.go:3878-3889); a
#   tier whose storage is 0/0 is present but holds nothing, and JetStream is off if every tier is 0/0.


def jetstream_tenant_limits(*, mem_storage: int, disk_storage: int, streams: int, consumer: int) -> JetStreamLimits:
    """The JWT encoding of a tenant's JetStream limits, where for every field -1 means unlimited, 0 none and
    N at most N (the server's own reading differs for streams and consumers; see above):

    - storage is written as it is (the server enforces 0);
    - ``streams == 0`` turns JetStream off (both storages written 0): the server cannot cap streams at zero, and an
      account without streams can store and consume nothing, which is what JetStream off gives;
    - ``consumer == 0`` while JetStream is on is refused (:class:`JwtError`): the server would read it as
      unlimited, and JetStream off would also take the streams away;
    - with JetStream off, streams and consumers are written as they are (the server ignores them).
    """
    for name, value in (("mem_storage", mem_storage), ("disk_storage", disk_storage), ("streams", streams),
                        ("consumer", consumer)):
        if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
            raise JwtError(f"{name} must be an integer, -1 for unlimited")
    if streams == 0:
        mem_storage = disk_storage = 0
    on = mem_storage != 0 or disk_storage != 0
    if on and consumer == 0:
        raise JwtError("consumer cannot be 0 while JetStream is on (nats-server reads 0 as unlimited): "
                       "use -1 for unlimited or at least 1, or set streams to 0 to turn JetStream off")
    return JetStreamLimits(mem_storage=mem_storage, disk_storage=disk_storage, streams=streams, consumer=consumer)


def jetstream_server_reading(limits: JetStreamLimits) -> dict[str, int]:
    """What nats-server enforces for ``limits`` as written in a JWT (mirrors accounts.go:3855-3889 and the checks
    cited above), in the tenant's terms: -1 unlimited, 0 none. JetStream off reads as 0 everywhere."""
    if not limits.enabled:
        return {"mem_storage": 0, "disk_storage": 0, "streams": 0, "consumer": 0, "max_ack_pending": 0,
                "mem_max_stream_bytes": 0, "disk_max_stream_bytes": 0}

    def positive_or_unlimited(value: int) -> int:
        return value if value > 0 else UNLIMITED

    return {
        "mem_storage": max(limits.mem_storage, UNLIMITED),
        "disk_storage": max(limits.disk_storage, UNLIMITED),
        "streams": positive_or_unlimited(limits.streams),
        "consumer": positive_or_unlimited(limits.consumer),
        "max_ack_pending": positive_or_unlimited(limits.max_ack_pending),
        "mem_max_stream_bytes": positive_or_unlimited(limits.mem_max_stream_bytes),
        "disk_max_stream_bytes": positive_or_unlimited(limits.disk_max_stream_bytes),
    }


@dataclass(frozen=True)
class AccountLimits:
    """Account limits as the operator sets them; every key is written, -1 meaning unlimited."""

    subs: int = UNLIMITED
    data: int = UNLIMITED
    payload: int = UNLIMITED
    imports: int = UNLIMITED
    exports: int = UNLIMITED
    wildcards: bool = True
    disallow_bearer: bool = False
    conn: int = UNLIMITED
    leaf: int = UNLIMITED
    jetstream: JetStreamLimits = JetStreamLimits()
    tiered: Mapping[str, JetStreamLimits] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subs": self.subs,
            "data": self.data,
            "payload": self.payload,
            "imports": self.imports,
            "exports": self.exports,
            "wildcards": self.wildcards,
            "disallow_bearer": self.disallow_bearer,
            "conn": self.conn,
            "leaf": self.leaf,
        }
        if self.tiered:
            if self.jetstream.enabled:
                raise JwtError("JetStream limits and tiered JetStream limits are mutually exclusive")
            out.update(JetStreamLimits().to_json())
            out["tiered_limits"] = {tier: lim.to_json() for tier, lim in sorted(self.tiered.items())}
        else:
            out.update(self.jetstream.to_json())
        return out


@dataclass(frozen=True)
class Export:
    """A stream or service an account offers; ``token_req`` makes it private (activation needed)."""

    subject: str
    type: str = "stream"
    name: str = ""
    token_req: bool = False
    revocations: Mapping[str, int] = field(default_factory=dict)
    response_type: str = ""
    response_threshold_ns: int = 0
    account_token_position: int = 0
    advertise: bool = False
    description: str = ""
    info_url: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name or self.subject, "subject": self.subject, "type": self.type}
        if self.token_req:
            out["token_req"] = True
        if self.revocations:
            out["revocations"] = dict(sorted(self.revocations.items()))
        if self.type == "service":
            out["response_type"] = self.response_type or "Singleton"
            if self.response_threshold_ns:
                out["response_threshold"] = self.response_threshold_ns
        if self.account_token_position:
            out["account_token_position"] = self.account_token_position
        if self.advertise:
            out["advertise"] = True
        if self.description:
            out["description"] = self.description
        if self.info_url:
            out["info_url"] = self.info_url
        return out


@dataclass(frozen=True)
class Import:
    """Another account's export brought in, optionally under ``local_subject``, with a token if private."""

    subject: str
    account: str
    type: str = "stream"
    name: str = ""
    token: str = ""
    local_subject: str = ""
    share: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name or self.subject,
            "subject": self.subject,
            "account": self.account,
            "type": self.type,
        }
        if self.token:
            out["token"] = self.token
        if self.local_subject:
            out["local_subject"] = self.local_subject
        if self.share:
            out["share"] = True
        return out


@dataclass(frozen=True)
class WeightedMapping:
    """One destination of a subject mapping."""

    subject: str
    weight: int = 100
    cluster: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subject": self.subject, "weight": self.weight}
        if self.cluster:
            out["cluster"] = self.cluster
        return out


def account_nats(
    *,
    limits: AccountLimits,
    exports: Iterable[Export] = (),
    imports: Iterable[Import] = (),
    revocations: Mapping[str, int] | None = None,
    signing_keys: Iterable[str | UserScope] = (),
    default_permissions: Permissions | None = None,
    mappings: Mapping[str, Iterable[WeightedMapping]] | None = None,
    description: str = "",
    info_url: str = "",
    tags: Iterable[str] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    exp = sorted(exports, key=lambda e: (e.subject, e.type))
    if exp:
        out["exports"] = [e.to_json() for e in exp]
    imp = sorted(imports, key=lambda i: (i.local_subject or i.subject, i.account, i.subject))
    if imp:
        out["imports"] = [i.to_json() for i in imp]
    out["limits"] = limits.to_json()
    keys = sorted(signing_keys, key=lambda k: k if isinstance(k, str) else k.key)
    if keys:
        out["signing_keys"] = [k if isinstance(k, str) else k.to_json() for k in keys]
    if revocations:
        out["revocations"] = dict(sorted(revocations.items()))
    if default_permissions is not None:
        out["default_permissions"] = default_permissions.to_json()
    if mappings:
        out["mappings"] = {src: [m.to_json() for m in dests] for src, dests in sorted(mappings.items())}
    if description:
        out["description"] = description
    if info_url:
        out["info_url"] = info_url
    if tags:
        out["tags"] = tags_json(tags)
    return out

