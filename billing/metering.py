"""Pure metering arithmetic: usage counters, deltas with reset detection, hour splits, and the samples billed.

No Django and no transport here: the collector (broker_gateway.events) reads the brokers' messages into the
samples below. A counters sample is one server's **cumulative** client-side counters of an account, which
start again from zero when that server restarts under a new server id; so usage is billed as deltas per
(server id, account), ordered by the server's sequence number.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

# An observation of an account's connections (or stored bytes) on a server counts as current for this long: the
# feed refreshes it well within (broker_gateway.events.CONNS_EVERY), so a server silent for longer no longer
# counts towards the account's current connections (nor its storage report).
OBSERVATION_FRESH = dt.timedelta(seconds=90)


class SampleKind(StrEnum):
    """What a sample observed. The values are what the ledger stores (MeterSample.kind) since its first schema."""

    COUNTERS_EVENT = "conns"  # counters a server sent when the account's connections changed, or periodically
    COUNTERS_POLL = "statz"  # counters a server gave when asked
    CONNECTION_END = "disconnect"  # one client connection's lifetime, when it ended
    STORAGE_POLL = "jsz"  # the account's stored bytes, when asked


def connections_at(observations: Iterable[tuple[int, dt.datetime]], at: dt.datetime) -> int:
    """An account's connections at ``at``: the sum over servers of their last (conns, observed_at), counting only
    servers heard from within OBSERVATION_FRESH."""
    since = at - OBSERVATION_FRESH
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
    c = current.counters
    values = (c.sent_msgs, c.sent_bytes, c.received_msgs, c.received_bytes)
    before = None
    if previous is not None:
        p = previous.counters
        before = (previous.seq, p.sent_msgs, p.sent_bytes, p.received_msgs, p.received_bytes)
    step, reset = delta_values(before, current.seq, values)
    if step is None:
        return Delta(Counters(), stale=True)
    return Delta(Counters(*step), reset=reset)


def delta_values(previous: tuple[int, int, int, int, int] | None, seq: int,
                 current: tuple[int, int, int, int]) -> tuple[tuple[int, int, int, int] | None, bool]:
    """``delta`` on plain values, for the ledger's hot path: ``previous`` is (seq, sent msgs, sent bytes, received
    msgs, received bytes) of the applied snapshot, or None. Returns (the delta, or None when stale; reset)."""
    if previous is None:
        return current, False
    if seq <= previous[0]:
        return None, False
    step = (current[0] - previous[1], current[1] - previous[2], current[2] - previous[3], current[3] - previous[4])
    if step[0] < 0 or step[1] < 0 or step[2] < 0 or step[3] < 0:
        return current, True
    return step, False


def hour_floor(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def day_floor(at: dt.datetime) -> dt.datetime:
    """00:00 of ``at``'s UTC day (the ledger's days and months are UTC)."""
    return at.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def month_floor(at: dt.datetime) -> dt.datetime:
    return day_floor(at).replace(day=1)


def spans_cover(start: dt.datetime, end: dt.datetime) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """The hours of [hour of ``start``, ``end``) as the fewest whole UTC months, days and hours: a list of
    (grain, from, to) with grain "month", "day" or "hour", each [from, to) a run of whole units of that grain.
    An hour belongs to the window when it starts before ``end`` (rows are keyed by their hour's start)."""
    lo = hour_floor(start)
    hi = hour_floor(end)
    if hi < end:
        hi += dt.timedelta(hours=1)  # the hour under way counts (it starts before end)
    if hi <= lo:
        return []
    d1 = day_floor(lo)
    d1 = d1 if d1 == lo else d1 + dt.timedelta(days=1)
    d2 = day_floor(hi)
    if d2 <= d1:
        return [("hour", lo, hi)]
    m1 = month_floor(d1)
    m1 = m1 if m1 == d1 else _next_month(m1)
    m2 = month_floor(d2)
    middle = ([("day", d1, m1), ("month", m1, m2), ("day", m2, d2)] if m1 < m2 else [("day", d1, d2)])
    spans = [("hour", lo, d1), *middle, ("hour", d2, hi)]
    return [(grain, a, b) for grain, a, b in spans if a < b]


def _next_month(month: dt.datetime) -> dt.datetime:
    return month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)


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


# ------------------------------------------------------------------------------------------------
# Samples: what the collector hands the ledger
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountersSample:
    """An account's cumulative counters and connections on one server. ``key`` (with the account) identifies it
    for exactly-once ingestion."""

    key: str
    kind: SampleKind
    account: str
    server_id: str
    server_name: str
    seq: int
    at: dt.datetime
    counters: Counters
    conns: int
    leafnodes: int = 0  # the account's leafnode connections on that server (tenants' own servers)


@dataclass(frozen=True)
class ConnectionSample:
    """A client connection that ended: its seconds from ``start`` to ``at``."""

    key: str
    account: str
    server_id: str
    start: dt.datetime
    at: dt.datetime
    kind: SampleKind = SampleKind.CONNECTION_END


@dataclass(frozen=True)
class StorageSample:
    """An account's JetStream bytes (cluster-wide, every replica) as one server reported them at ``at``."""

    key: str
    account: str
    server_id: str
    server_name: str
    at: dt.datetime
    stored_bytes: int
    kind: SampleKind = SampleKind.STORAGE_POLL


Sample = CountersSample | ConnectionSample | StorageSample
