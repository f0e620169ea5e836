"""Pure metering arithmetic: server counters to client-side usage, deltas with reset detection, hour splits.

No Django here. The numbers come from nats-server's system events (see ../shared/NATS_FACTS.md):

- ``$SYS.ACCOUNT.<acc>.SERVER.CONNS`` events and the ``account_statz`` entries of ``$SYS.REQ.ACCOUNT.PING.STATZ``
  carry per (server, account) **cumulative** counters from the server's point of view: ``received`` is what
  the server took in for the account, ``sent`` what it sent out, each with the part that crossed routes,
  gateways and leafnodes.
- From the clients' point of view, what the account's clients published on this server (**sent**) is the
  server's ``received`` minus what came in over routes/gateways/leafs, and what was delivered to them
  (**received**) is the server's ``sent`` minus what went out over them. Summed over servers, a message
  crossing a route is counted once, on the server its client used.
- Counters live in server memory and start from zero whenever a server starts (it gets a new server id),
  so usage is billed as deltas per (server id, account), ordered by the server's event sequence number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

_REMOTE = ("routes", "gateways", "leafs")

# A server's CONNS event repeats every 30 s while the account has connections: a server silent for longer
# than this no longer counts towards the account's current connections (nor its storage report).
CONNS_FRESH = dt.timedelta(seconds=90)


def connections_at(observations: Iterable[tuple[int, dt.datetime]], at: dt.datetime) -> int:
    """An account's connections at ``at``: the sum over servers of their last (conns, observed_at), counting only
    servers heard from within CONNS_FRESH."""
    since = at - CONNS_FRESH
    return sum(conns for conns, observed in observations if observed >= since)


@dataclass(frozen=True)
class Counters:
    """Client-side usage: what the account's clients published (sent) and what was delivered to them."""

    sent_msgs: int = 0
    sent_bytes: int = 0
    received_msgs: int = 0
    received_bytes: int = 0

    def __sub__(self, other: Counters) -> Counters:
        return Counters(self.sent_msgs - other.sent_msgs, self.sent_bytes - other.sent_bytes,
                        self.received_msgs - other.received_msgs, self.received_bytes - other.received_bytes)

    def __add__(self, other: Counters) -> Counters:
        return Counters(self.sent_msgs + other.sent_msgs, self.sent_bytes + other.sent_bytes,
                        self.received_msgs + other.received_msgs, self.received_bytes + other.received_bytes)

    @property
    def is_zero(self) -> bool:
        return not (self.sent_msgs or self.sent_bytes or self.received_msgs or self.received_bytes)

    @property
    def any_negative(self) -> bool:
        return min(self.sent_msgs, self.sent_bytes, self.received_msgs, self.received_bytes) < 0


def _local(side: dict[str, Any] | None, unit: str) -> int:
    """The part of a server-side counter that was exchanged with the server's own clients."""
    side = side or {}
    total = int(side.get(unit) or 0)
    return max(0, total - sum(int((side.get(r) or {}).get(unit) or 0) for r in _REMOTE))


def client_counters(stat: dict[str, Any]) -> Counters:
    """Client-side cumulative counters of one account on one server, from a CONNS event or a STATZ entry."""
    received, sent = stat.get("received"), stat.get("sent")
    return Counters(
        sent_msgs=_local(received, "msgs"),
        sent_bytes=_local(received, "bytes"),
        received_msgs=_local(sent, "msgs"),
        received_bytes=_local(sent, "bytes"),
    )


@dataclass(frozen=True)
class Snapshot:
    """One observation of an account's cumulative counters on one server."""

    server_id: str
    seq: int
    counters: Counters
    conns: int
    at: dt.datetime


@dataclass(frozen=True)
class Delta:
    counters: Counters
    stale: bool = False  # older than what is already applied: counts nothing
    reset: bool = False  # counters went down on the same server id: they restarted from zero


def delta(previous: Snapshot | None, current: Snapshot) -> Delta:
    """What ``current`` adds over ``previous`` (the last applied snapshot of the same server id and account).

    Never negative and never double: a snapshot not newer than the applied one is stale; a counter lower than
    before on a newer snapshot means the counters restarted, so the whole new value is the delta."""
    if previous is None:
        return Delta(current.counters)
    if current.seq <= previous.seq:
        return Delta(Counters(), stale=True)
    step = current.counters - previous.counters
    if step.any_negative:
        return Delta(current.counters, reset=True)
    return Delta(step)


def hour_floor(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def split_by_hour(start: dt.datetime, stop: dt.datetime) -> list[tuple[dt.datetime, float]]:
    """Seconds of the interval [start, stop) in each hour it touches (connection-seconds per hour)."""
    if stop <= start:
        return []
    out, cursor = [], start
    while cursor < stop:
        hour = hour_floor(cursor)
        end = min(stop, hour + dt.timedelta(hours=1))
        out.append((hour, (end - cursor).total_seconds()))
        cursor = end
    return out


def parse_time(value: str | None) -> dt.datetime | None:
    """nats-server's RFC 3339 timestamps carry nanoseconds; Python keeps microseconds."""
    if not value:
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# ------------------------------------------------------------------------------------------------
# Samples: what the collector parses out of system events, replies and HTTP reads, for the ledger
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountersSample:
    """An account's cumulative counters and connections on one server (a CONNS event or a STATZ entry). ``key``
    (with the account) identifies it for exactly-once ingestion."""

    key: str
    kind: str
    account: str
    server_id: str
    server_name: str
    seq: int
    at: dt.datetime
    counters: Counters
    conns: int


@dataclass(frozen=True)
class ConnectionSample:
    """A client's DISCONNECT: the connection's seconds from ``start`` to ``at``."""

    key: str
    account: str
    server_id: str
    start: dt.datetime
    at: dt.datetime
    kind: str = "disconnect"


@dataclass(frozen=True)
class StorageSample:
    """An account's JetStream bytes (cluster-wide, every replica) as one server reported them at ``at``."""

    key: str
    account: str
    server_id: str
    server_name: str
    at: dt.datetime
    stored_bytes: int
    kind: str = "jsz"


Sample = CountersSample | ConnectionSample | StorageSample
