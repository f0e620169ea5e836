"""The ledger's per-(server id, account) counter rows as a metering batch works on them, and the cache a ledger
writer keeps of them between batches, made safe by a lease row.

A batch needs every server's counter row of each account it touches (an account's current connections sum over
its servers). Reading them again for every batch cost a writer most of its database time, so a writer that owns
partitions of the accounts keeps their rows in memory (a ``CounterCache``). Each batch's transaction first reads
its partitions' ``LedgerLease`` rows (``FOR UPDATE`` on PostgreSQL, in scope order; on SQLite every write
transaction begins ``IMMEDIATE`` and holds the one write lock) and writes each version + 1. The cache is trusted
only when every version read is the one this cache wrote last: any other writer of a partition in between
(another process, a second collector, a restarted writer) left another version, and the cache is dropped and read
again. A batch without a cache (``samples_ingest`` called directly: tests, replays, the supervisor's lame-duck
samples) raises *every* lease's version first, so no cache survives it. A rolled-back transaction drops the
cache (its rows were changed in memory). Nothing else writes ServerAccountCounter.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db import connection

from billing.metering import OBSERVATION_FRESH, CountersSample, delta_values, hour_floor
from billing.models import LedgerLease, ServerAccountCounter

_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit
CACHE_ACCOUNTS = 200_000  # a cache holding more accounts than this starts again (memory stays bounded)
COUNTER_FIELDS = ("seq", "observed_at", "conns", "leafnodes", "server_name", "sent_msgs", "sent_bytes",
                  "received_msgs", "received_bytes", "resets")
_COLUMNS = ("id", "server_id", "account_public_key", "server_name", "seq", "observed_at", "conns", "leafnodes",
            "sent_msgs", "sent_bytes", "received_msgs", "received_bytes", "resets")


@dataclass(slots=True)
class Counter:
    """A ServerAccountCounter row (plain values: model instances cost too much here). ``stored``: the row exists
    in the database (else the batch INSERTs it; a concurrent writer's row of the same key is an IntegrityError)."""

    stored: bool
    server_id: str
    account_public_key: str
    server_name: str
    seq: int
    observed_at: dt.datetime
    conns: int
    leafnodes: int
    sent_msgs: int
    sent_bytes: int
    received_msgs: int
    received_bytes: int
    resets: int

    def values(self, adapt) -> tuple:
        return (self.server_id, self.account_public_key, self.seq, adapt(self.observed_at), self.conns,
                self.leafnodes, self.server_name, self.sent_msgs, self.sent_bytes, self.received_msgs,
                self.received_bytes, self.resets)


Rows = dict[str, dict[str, Counter]]  # account -> server id -> its row


@dataclass
class CounterCache:
    """One writer's counter rows of its ``scopes`` (its partitions), valid while every scope's lease holds the
    version this cache wrote last."""

    scopes: tuple[str, ...]
    rows: Rows = field(default_factory=dict)
    versions: dict[str, int] | None = None  # what this cache wrote last (None: nothing cached)
    _pending: dict[str, int] | None = None  # what the open transaction wrote
    hits: int = 0  # batches that found the cache valid (for tests and the benchmark's notes)

    def __post_init__(self) -> None:
        self.scopes = tuple(sorted({self.scopes} if isinstance(self.scopes, str) else set(self.scopes)))

    def drop(self) -> None:
        self.rows.clear()
        self.versions = self._pending = None

    def committed(self) -> None:
        self.versions, self._pending = self._pending, None
        if len(self.rows) > CACHE_ACCOUNTS:
            self.drop()


def lease_take(cache: CounterCache | None) -> Rows:
    """In the batch's transaction, before any other read: the rows to work on (the cache's when its leases hold,
    else empty), after writing each lease's next version (every lease's, without a cache). Leases are taken in
    the order of their scopes (two PostgreSQL writers never wait for each other crosswise)."""
    table = connection.ops.quote_name(LedgerLease._meta.db_table)
    with connection.cursor() as cursor:
        if cache is None:
            cursor.execute(f"UPDATE {table} SET version = version + 1")  # noqa: S608 (the model's own name)
            return {}
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        read: dict[str, int | None] = {}
        written: dict[str, int] = {}
        for scope in cache.scopes:
            cursor.execute(f"SELECT version FROM {table} WHERE scope = %s{lock}", [scope])  # noqa: S608
            found = cursor.fetchone()
            read[scope] = None if found is None else found[0]
            if found is None:  # a concurrent first writer of the scope makes this an IntegrityError: it reruns
                cursor.execute(f"INSERT INTO {table} (scope, version) VALUES (%s, 1)", [scope])  # noqa: S608
                written[scope] = 1
            else:
                written[scope] = found[0] + 1
                cursor.execute(f"UPDATE {table} SET version = %s WHERE scope = %s",  # noqa: S608
                               [written[scope], scope])
    if read != cache.versions:
        cache.rows.clear()
    else:
        cache.hits += 1
    cache._pending = written
    return cache.rows


def rows_load(rows: Rows, accounts: set[str]) -> None:
    """Every server's counter row of the ``accounts`` not in ``rows`` yet, locked (PostgreSQL). Plain SQL: a batch
    may read thousands, and the ORM's per-value converters cost more than the read."""
    missing = sorted(a for a in accounts if a not in rows)
    if not missing:
        return
    quote = connection.ops.quote_name
    table = quote(ServerAccountCounter._meta.db_table)
    columns = ", ".join(quote(c) for c in _COLUMNS)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    naive = connection.vendor == "sqlite"  # SQLite gives the stored UTC time, naive; PostgreSQL an aware one
    for account in missing:
        rows[account] = {}
    with connection.cursor() as cursor:
        for i in range(0, len(missing), _CHUNK):
            chunk = missing[i:i + _CHUNK]
            cursor.execute(f"SELECT {columns} FROM {table} WHERE account_public_key IN "  # noqa: S608
                           f"({', '.join(['%s'] * len(chunk))}){lock}", chunk)
            for (_, sid, acc, name, seq, at, conns, leaf, sm, sb, rm, rb, resets) in cursor.fetchall():
                if naive:  # (Django's sqlite3 converter parsed it, as the UTC it was stored in)
                    at = (dt.datetime.fromisoformat(at) if isinstance(at, str) else at).replace(tzinfo=dt.UTC)
                rows[acc][sid] = Counter(True, sid, acc, name, seq, at, conns, leaf, sm, sb, rm, rb, resets)


STALE = False  # what counters_apply returns for a sample not newer than the applied one (it counts nothing)


def counters_apply(sample: CountersSample, rows: Rows, hours: dict,
                   dirty: dict[int, Counter]) -> tuple | bool | None:
    """The delta since the last applied snapshot of the same (server id, account) lands in the hour of the
    sample's ``at`` (the server's clock); a new server id under a known name is that server restarted. Returns
    (the delta as (sent msgs, sent bytes, received msgs, received bytes), its hour), None when applied but
    nothing moved, ``STALE`` when its sequence number is not above the applied one's: a replay, a second
    collector's copy or a reordered older snapshot, which the cumulative counters already hold. That sequence
    number in the counter row is the sample's claim (no ``MeterSample`` row: see billing.services)."""
    servers = rows[sample.account]
    sid = sample.server_id
    row = servers.get(sid)
    c = sample.counters
    values = (c.sent_msgs, c.sent_bytes, c.received_msgs, c.received_bytes)
    step, reset = delta_values(
        None if row is None else (row.seq, row.sent_msgs, row.sent_bytes, row.received_msgs, row.received_bytes),
        sample.seq, values)  # (metering.delta's rule, on plain values: this runs for every sample)
    if step is None:
        return STALE
    at = sample.at
    if row is None:
        for other in servers.values():  # the restarted server's old counters hold no connection
            if other.server_name == sample.server_name and (other.conns or other.leafnodes):
                other.conns = other.leafnodes = 0
                dirty[id(other)] = other
        row = servers[sid] = Counter(False, sid, sample.account, "", 0, at, 0, 0, 0, 0, 0, 0, 0)
    else:
        row.resets += reset
    dirty[id(row)] = row
    row.seq, row.observed_at, row.conns, row.server_name = sample.seq, at, sample.conns, sample.server_name
    row.leafnodes = sample.leafnodes
    row.sent_msgs, row.sent_bytes, row.received_msgs, row.received_bytes = values
    key = (sample.account, hour_floor(at))
    hour = hours.get(key)
    if hour is None:
        hour = hours[key] = [0, 0, 0, 0, 0.0, 0, 0]
    hour[0] += step[0]
    hour[1] += step[1]
    hour[2] += step[2]
    hour[3] += step[3]
    since = at - OBSERVATION_FRESH  # metering.connections_at, across servers, inline (it runs for every sample)
    now = 0
    for other in servers.values():
        if other.observed_at >= since:
            now += other.conns
    if now > hour[6]:
        hour[6] = now
    return (step, key[1]) if (step[0] or step[1] or step[2] or step[3]) else None


WARM_SINCE = dt.timedelta(hours=1)  # a starting writer loads the rows of accounts observed this recently


def cache_warm(cache: CounterCache, owns) -> int:
    """A starting writer's cache, filled before its first batch: every counter row of each account observed in
    the last ``WARM_SINCE`` for which ``owns(account)`` is true, read in one transaction that takes the cache's
    leases (so the first batch finds them valid). Returns the rows loaded."""
    from django.db import transaction
    from django.utils import timezone

    table = connection.ops.quote_name(ServerAccountCounter._meta.db_table)
    since = connection.ops.adapt_datetimefield_value(timezone.now() - WARM_SINCE)
    try:
        with transaction.atomic():
            lease_take(cache)
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT DISTINCT account_public_key FROM {table} WHERE observed_at >= %s",  # noqa: S608
                               [since])
                accounts = sorted(a for (a,) in cursor.fetchall() if owns(a))[:CACHE_ACCOUNTS]
            rows_load(cache.rows, set(accounts))
    except BaseException:
        cache.drop()
        raise
    cache.committed()
    return sum(len(servers) for servers in cache.rows.values())
