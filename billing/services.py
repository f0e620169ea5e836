"""Writes of billing: ingesting metering samples into the ledger, exactly once, in batches.

The collector's writer hands over every sample it has queued (up to a batch); one transaction claims their
idempotency keys (a database constraint decides what was ingested before), applies each in arrival order to
the per-(server id, account) counters held in memory, and writes the hours it touched with one upsert. A
concurrent writer that claimed a key first makes the batch roll back and run again, without those samples.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts_service.models import Account
from billing import metering
from billing.metering import ConnectionSample, CountersSample, Sample, StorageSample
from billing.models import (
    AccountStorage,
    MeterSample,
    NodeUsageHour,
    ServerAccountCounter,
    UsageDay,
    UsageHour,
    UsageMonth,
)
from core.db import Merge, datetime_adapter, rows_upsert

_HOUR_FIELDS = ("sent_msgs", "sent_bytes", "received_msgs", "received_bytes", "connection_seconds",
                "storage_byte_seconds")
_CHUNK = 500  # ids per IN (...) query: well under SQLite's variable limit
_COUNTER_FIELDS = ("seq", "observed_at", "conns", "leafnodes", "server_name", "sent_msgs", "sent_bytes",
                   "received_msgs", "received_bytes", "resets")


@dataclasses.dataclass
class _Hour:
    sent_msgs: int = 0
    sent_bytes: int = 0
    received_msgs: int = 0
    received_bytes: int = 0
    connection_seconds: float = 0.0
    storage_byte_seconds: int = 0
    peak_connections: int = 0


@dataclasses.dataclass(slots=True)
class _Counter:
    """A ServerAccountCounter row as the batch works on it (plain values: model instances cost too much here)."""

    pk: int | None
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


_COUNTER_COLUMNS = ("id", "server_id", "account_public_key", "server_name", "seq", "observed_at", "conns",
                    "leafnodes", "sent_msgs", "sent_bytes", "received_msgs", "received_bytes", "resets")


def _chunks(values: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def samples_ingest(samples: Sequence[Sample]) -> int:
    """Apply ``samples`` to the ledger, each at most once ever; returns how many were new. A sample is new when
    its (key, account) was never ingested; a new one older than what is applied (stale counters) counts
    nothing but is remembered. Late data lands in the hour it belongs to."""
    samples = [s for s in samples if s.at is not None and s.account]
    if not samples:
        return 0
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _ingest(samples)
        except IntegrityError:  # another writer claimed some of these keys first: again, without them
            if attempt == 2:
                raise
    return 0


def _ingest(samples: list[Sample]) -> int:
    fresh = _unclaimed(samples)
    if not fresh:
        return 0
    accounts = {s.account for s in fresh if isinstance(s, CountersSample)}
    counters = _counters_for(accounts)
    storage = {r.account_public_key: r for r in _rows(AccountStorage, "account_public_key",
                                                      sorted({s.account for s in fresh
                                                              if isinstance(s, StorageSample)}))}
    hours: dict[tuple[str, dt.datetime], _Hour] = defaultdict(_Hour)
    dirty_counters: dict[int, _Counter] = {}
    new_counters: dict[tuple[str, str], _Counter] = {}
    dirty_storage: set[str] = set()
    by_node: dict[tuple[str, str, dt.datetime], metering.Counters] = defaultdict(metering.Counters)
    for sample in fresh:
        if isinstance(sample, CountersSample):
            step = _apply_counters(sample, counters, hours, dirty_counters, new_counters)
            if step is not None and not step.is_zero:
                by_node[(sample.server_name, sample.account, metering.hour_floor(sample.at))] += step
        elif isinstance(sample, ConnectionSample):
            for hour, seconds in metering.split_by_hour(sample.start, sample.at):
                hours[(sample.account, hour)].connection_seconds += seconds
        else:
            _apply_storage(sample, storage, hours, dirty_storage)
    adapt = datetime_adapter()
    now = adapt(timezone.now())
    rows_upsert(MeterSample, ("key", "kind", "account_public_key", "server_id", "observed_at", "ingested_at"),
                [(s.key, s.kind, s.account, s.server_id, adapt(s.at), now) for s in fresh])
    # Counter rows new in this batch go in with a plain INSERT: one a concurrent writer created meanwhile is an
    # IntegrityError, and the batch runs again on that writer's counters. Rows read (and locked) here are
    # written back by primary key.
    rows_upsert(ServerAccountCounter, ("server_id", "account_public_key", *_COUNTER_FIELDS),
                [_counter_values(r, adapt) for r in new_counters.values()])
    changed = [r for r in dirty_counters.values() if r.pk]  # rows created in this batch carry no pk
    rows_upsert(ServerAccountCounter, ("id", "server_id", "account_public_key", *_COUNTER_FIELDS),
                [(r.pk, *_counter_values(r, adapt)) for r in changed], conflict=("id",),
                merge=dict.fromkeys(_COUNTER_FIELDS, Merge.NEW))
    for key in dirty_storage:
        row = storage[key]
        if row.pk is None:
            row.save(force_insert=True)
        else:
            AccountStorage.objects.filter(pk=row.pk).update(bytes=row.bytes, observed_at=row.observed_at,
                                                            server_name=row.server_name)
    _hours_upsert(hours)
    _node_hours_upsert(by_node)
    return len(fresh)


def _rows(model, field: str, values: Sequence[str]) -> list:
    rows = []
    for chunk in _chunks(values):
        rows += list(model.objects.select_for_update().filter(**{f"{field}__in": chunk}))
    return rows


def _unclaimed(samples: list[Sample]) -> list[Sample]:
    """The samples whose (key, account) was never ingested, first occurrence only, in arrival order."""
    keys = sorted({s.key for s in samples})
    seen: set[tuple[str, str]] = set()
    for chunk in _chunks(keys):
        seen.update(MeterSample.objects.filter(key__in=chunk).values_list("key", "account_public_key"))
    fresh = []
    for s in samples:
        if (s.key, s.account) not in seen:
            seen.add((s.key, s.account))
            fresh.append(s)
    return fresh


def _counters_for(accounts: set[str]) -> dict[str, list[_Counter]]:
    """Every server's counter row of these accounts (all of them: current connections sum over servers), locked.
    Plain SQL: a batch reads a row per (server, account) of its accounts, thousands, and the ORM's per-value
    converters (SQLite's datetime text parsed by regular expression) cost more than the read."""
    from django.db import connection

    by_account: dict[str, list[_Counter]] = defaultdict(list)
    quote = connection.ops.quote_name
    table = quote(ServerAccountCounter._meta.db_table)
    columns = ", ".join(quote(c) for c in _COUNTER_COLUMNS)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    at = _COUNTER_COLUMNS.index("observed_at")
    naive = connection.vendor == "sqlite"  # SQLite gives the stored UTC time, naive; PostgreSQL an aware one
    with connection.cursor() as cursor:
        for chunk in _chunks(sorted(accounts)):
            cursor.execute(f"SELECT {columns} FROM {table} WHERE account_public_key IN "  # noqa: S608
                           f"({', '.join(['%s'] * len(chunk))}){lock}", list(chunk))
            for values in cursor.fetchall():
                if naive:  # (Django's sqlite3 converter parsed it, as the UTC it was stored in)
                    values = list(values)
                    stored = values[at]
                    stored = dt.datetime.fromisoformat(stored) if isinstance(stored, str) else stored
                    values[at] = stored.replace(tzinfo=dt.UTC)
                row = _Counter(*values)
                by_account[row.account_public_key].append(row)
    return by_account


def _apply_counters(sample: CountersSample, counters: dict[str, list[_Counter]], hours: dict,
                    dirty: dict[int, _Counter], new: dict[tuple[str, str], _Counter]) -> metering.Counters | None:
    """The delta since the last applied snapshot of the same (server id, account) lands in the hour of the
    sample's ``at`` (the server's clock); a new server id under a known name is that server restarted. Returns
    the delta (None for a stale sample)."""
    rows = counters[sample.account]
    sid = sample.server_id
    row = next((r for r in rows if r.server_id == sid), None)
    c = sample.counters
    values = (c.sent_msgs, c.sent_bytes, c.received_msgs, c.received_bytes)
    step, reset = metering.delta_values(
        None if row is None else (row.seq, row.sent_msgs, row.sent_bytes, row.received_msgs, row.received_bytes),
        sample.seq, values)  # (metering.delta's rule, on plain values: this runs for every sample)
    if step is None:  # stale
        return None
    if row is None:
        for other in rows:  # the restarted server's old counters hold no connection
            if other.server_name == sample.server_name and (other.conns or other.leafnodes):
                other.conns = other.leafnodes = 0
                dirty[id(other)] = other
        row = _Counter(None, sample.server_id, sample.account, "", 0, sample.at, 0, 0, 0, 0, 0, 0, 0)
        rows.append(row)
        new[(sample.server_id, sample.account)] = row
    else:
        dirty[id(row)] = row
        row.resets += reset
    row.seq, row.observed_at, row.conns, row.server_name = sample.seq, sample.at, sample.conns, sample.server_name
    row.leafnodes = sample.leafnodes
    row.sent_msgs, row.sent_bytes, row.received_msgs, row.received_bytes = values
    hour = hours[(sample.account, metering.hour_floor(sample.at))]
    hour.sent_msgs += step[0]
    hour.sent_bytes += step[1]
    hour.received_msgs += step[2]
    hour.received_bytes += step[3]
    now = metering.connections_at(((r.conns, r.observed_at) for r in rows), sample.at)  # across servers
    hour.peak_connections = max(hour.peak_connections, now)
    return metering.Counters(*step) if any(step) else None


def _apply_storage(sample: StorageSample, storage: dict[str, AccountStorage], hours: dict, dirty: set[str]) -> None:
    """The interval since the account's previous observation, from whichever server, is billed at the smaller
    of the two (never more than was stored), split over the hours it spans."""
    row = storage.get(sample.account)
    dirty.add(sample.account)
    if row is None:
        storage[sample.account] = AccountStorage(account_public_key=sample.account, bytes=sample.stored_bytes,
                                                 observed_at=sample.at, server_name=sample.server_name)
        return
    if sample.at <= row.observed_at:  # late: an older observation adds nothing once a newer one was applied
        return
    billed = min(row.bytes, sample.stored_bytes)
    if billed > 0:
        for hour, seconds in metering.split_by_hour(row.observed_at, sample.at):
            hours[(sample.account, hour)].storage_byte_seconds += int(billed * seconds)
    row.bytes, row.observed_at, row.server_name = sample.stored_bytes, sample.at, sample.server_name


def _counter_values(row: _Counter, adapt) -> tuple:
    return (row.server_id, row.account_public_key,
            *(adapt(getattr(row, f)) if f == "observed_at" else getattr(row, f) for f in _COUNTER_FIELDS))


def _hours_upsert(hours: dict[tuple[str, dt.datetime], _Hour]) -> None:
    """Add to every touched hour (and raise its peak), and to its day and month, in one statement per table."""
    adapt = datetime_adapter()
    days: dict[tuple[str, dt.datetime], _Hour] = defaultdict(_Hour)
    months: dict[tuple[str, dt.datetime], _Hour] = defaultdict(_Hour)
    for (account, hour), h in hours.items():
        day = metering.day_floor(hour)
        for into in (days[(account, day)], months[(account, metering.month_floor(day))]):
            for f in _HOUR_FIELDS:
                setattr(into, f, getattr(into, f) + getattr(h, f))
            into.peak_connections = max(into.peak_connections, h.peak_connections)
    for model, column, rows in ((UsageHour, "hour", hours), (UsageDay, "day", days), (UsageMonth, "month", months)):
        rows_upsert(model, ("account_public_key", column, *_HOUR_FIELDS, "peak_connections"),
                    [(account, adapt(at), *(getattr(h, f) for f in _HOUR_FIELDS), h.peak_connections)
                     for (account, at), h in sorted(rows.items())],
                    conflict=("account_public_key", column),
                    merge={**dict.fromkeys(_HOUR_FIELDS, Merge.ADD), "peak_connections": Merge.MAX})


def _node_hours_upsert(by_node: dict[tuple[str, str, dt.datetime], metering.Counters]) -> None:
    """The same deltas by the node (server name) that counted them, tenants' accounts only: what each node carried
    for tenants in each hour (the node operators' payout basis, docs/ECONOMICS.md). One row per node and hour."""
    if not by_node:
        return
    platform = set(Account.objects.filter(Q(is_system=True) | Q(team__is_platform=True))
                   .values_list("public_key", flat=True))
    nodes: dict[tuple[str, dt.datetime], metering.Counters] = defaultdict(metering.Counters)
    for (node, account, hour), step in by_node.items():
        if account not in platform:
            nodes[(node, hour)] += step
    adapt = datetime_adapter()
    fields = ("sent_msgs", "sent_bytes", "received_msgs", "received_bytes")
    rows_upsert(NodeUsageHour, ("node", "hour", *fields),
                [(node, adapt(hour), *(getattr(c, f) for f in fields)) for (node, hour), c in sorted(nodes.items())],
                conflict=("node", "hour"), merge=dict.fromkeys(fields, Merge.ADD))


def usage_hours_add(*, account_public_key: str, hour: dt.datetime, sent_msgs: int = 0, sent_bytes: int = 0,
                    received_msgs: int = 0, received_bytes: int = 0, connection_seconds: float = 0.0,
                    storage_byte_seconds: int = 0, peak_connections: int = 0) -> None:
    """Add usage to one hour of an account (and to its day and month), as ingesting a sample does; the peak is
    raised, never lowered. For corrections, imports and tests: the collector's samples go through samples_ingest."""
    with transaction.atomic():
        _hours_upsert({(account_public_key, metering.hour_floor(hour)): _Hour(
            sent_msgs=sent_msgs, sent_bytes=sent_bytes, received_msgs=received_msgs, received_bytes=received_bytes,
            connection_seconds=connection_seconds, storage_byte_seconds=storage_byte_seconds,
            peak_connections=peak_connections)})


def usage_rollups_rebuild() -> None:
    """Sum every account's days and months again from its hours (a repair: the write path keeps them equal)."""
    from django.db import connection

    sums = ", ".join(f"SUM({f})" for f in _HOUR_FIELDS)
    with transaction.atomic(), connection.cursor() as cursor:
        for model, column, source, source_column, grain in ((UsageDay, "day", UsageHour, "hour", "day"),
                                                           (UsageMonth, "month", UsageDay, "day", "month")):
            bucket = _truncated(connection.vendor, source_column, grain)
            table, source_table = model._meta.db_table, source._meta.db_table
            cursor.execute(f"DELETE FROM {table}")  # noqa: S608 (the models' own names)
            cursor.execute(f"INSERT INTO {table} (account_public_key, {column}, {', '.join(_HOUR_FIELDS)}, "  # noqa: S608
                           f"peak_connections) SELECT account_public_key, {bucket}, {sums}, MAX(peak_connections) "
                           f"FROM {source_table} GROUP BY account_public_key, {bucket}")


def _truncated(vendor: str, column: str, grain: str) -> str:
    """The start of the UTC day or month of ``column`` as the backend stores a DateTimeField (SQLite: UTC text)."""
    if vendor == "postgresql":
        return f"date_trunc('{grain}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    return f"substr({column}, 1, 10) || ' 00:00:00'" if grain == "day" else f"substr({column}, 1, 7) || '-01 00:00:00'"
