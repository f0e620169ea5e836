"""Writes of billing: ingesting metering samples into the ledger, exactly once, in batches.

A ledger writer hands over the samples of a batch; one transaction takes the batch's lease (billing.counters),
applies each in arrival order and writes what it touched with one statement per table. What makes each count once:

- **counters** (CONNS events, STATZ polls): cumulative per (server id, account) and ordered by the server's
  sequence number, which the counter row keeps (kept in memory between a writer's batches while its lease holds).
  A sample whose sequence number is not above the row's is stale and adds nothing: a replay, a redelivery, a
  second collector's copy, an older snapshot arriving late. No row per sample: a node lists every active account
  in every poll, and a claim per (poll, server, account) would grow the ledger without bound and cost each
  sample an index insert;
- **stored bytes** (JSZ polls): an observation not newer than the account's last one adds nothing;
- **connection ends** (DISCONNECT events) are one-off: each claims its idempotency key in ``MeterSample`` (a
  database constraint decides what was ingested before). A concurrent writer that claimed a key first makes the
  batch roll back and run again, without those samples.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts_service.models import Account
from billing import counters as counters_mod
from billing import metering
from billing.counters import CounterCache
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


def _chunks(values: Sequence, size: int = _CHUNK) -> Iterable[Sequence]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def samples_ingest(samples: Sequence[Sample], *, cache: CounterCache | None = None) -> int:
    """Apply ``samples`` to the ledger, each at most once ever; returns how many were new: a connection end whose
    (key, account) was never ingested, counters newer than the applied ones of their (server id, account), a
    storage observation newer than the account's last. Late data lands in the hour it belongs to. A ledger writer
    passes the ``cache`` of its partition's counter rows (billing.counters: kept between batches while its lease
    holds)."""
    samples = [s for s in samples if s.at is not None and s.account]
    if not samples:
        return 0
    for attempt in range(3):
        try:
            with transaction.atomic():
                count = _ingest(samples, cache)
        except IntegrityError:  # another writer claimed some of these keys first: again, without them
            if cache is not None:
                cache.drop()
            if attempt == 2:
                raise
            continue
        except BaseException:  # rolled back: the cached rows were changed in memory
            if cache is not None:
                cache.drop()
            raise
        if cache is not None:
            cache.committed()
        return count
    return 0


def _ingest(samples: list[Sample], cache: CounterCache | None) -> int:
    counters = counters_mod.lease_take(cache)  # (first: writers of the same rows queue here)
    ends = _unclaimed([s for s in samples if isinstance(s, ConnectionSample)])
    unclaimed = {id(s) for s in ends}
    fresh = [s for s in samples if id(s) in unclaimed or not isinstance(s, ConnectionSample)]
    if not fresh:
        return 0
    counters_mod.rows_load(counters, {s.account for s in fresh if isinstance(s, CountersSample)})
    storage = {r.account_public_key: r for r in _rows(AccountStorage, "account_public_key",
                                                      sorted({s.account for s in fresh
                                                              if isinstance(s, StorageSample)}))}
    hours: dict[tuple[str, dt.datetime], list] = {}
    dirty: dict[int, counters_mod.Counter] = {}
    dirty_storage: set[str] = set()
    by_node: dict[tuple[str, str, dt.datetime], list[int]] = {}
    apply, stale = counters_mod.counters_apply, counters_mod.STALE
    count = len(fresh)
    for sample in fresh:
        if isinstance(sample, CountersSample):
            moved = apply(sample, counters, hours, dirty)
            if moved is stale:
                count -= 1
            elif moved is not None:
                step, hour = moved
                key = (sample.server_name, sample.account, hour)
                node = by_node.get(key)
                if node is None:
                    by_node[key] = list(step)
                else:
                    node[0] += step[0]
                    node[1] += step[1]
                    node[2] += step[2]
                    node[3] += step[3]
        elif isinstance(sample, ConnectionSample):
            for hour, seconds in metering.split_by_hour(sample.start, sample.at):
                _hour(hours, sample.account, hour)[4] += seconds
        elif not _apply_storage(sample, storage, hours, dirty_storage):
            count -= 1
    adapt = datetime_adapter()
    now = adapt(timezone.now())
    rows_upsert(MeterSample, ("key", "kind", "account_public_key", "server_id", "observed_at", "ingested_at"),
                [(s.key, s.kind, s.account, s.server_id, adapt(s.at), now) for s in ends])
    # Counter rows new in this batch go in with a plain INSERT: one a concurrent writer created meanwhile is an
    # IntegrityError, and the batch runs again on that writer's counters. Rows read (and locked) before are
    # written back by their key.
    fields = ("server_id", "account_public_key", *counters_mod.COUNTER_FIELDS)
    rows_upsert(ServerAccountCounter, fields, [r.values(adapt) for r in dirty.values() if not r.stored])
    rows_upsert(ServerAccountCounter, fields, [r.values(adapt) for r in dirty.values() if r.stored],
                conflict=("server_id", "account_public_key"),
                merge=dict.fromkeys(counters_mod.COUNTER_FIELDS, Merge.NEW))
    for row in dirty.values():
        row.stored = True  # (for the cache: kept only if the transaction commits)
    for key in dirty_storage:
        row = storage[key]
        if row.pk is None:
            row.save(force_insert=True)
        else:
            AccountStorage.objects.filter(pk=row.pk).update(bytes=row.bytes, observed_at=row.observed_at,
                                                            server_name=row.server_name)
    _hours_upsert(hours)
    _node_hours_upsert(by_node)
    return count


def _hour(hours: dict, account: str, hour: dt.datetime) -> list:
    """The batch's sums of an account's hour: sent msgs, sent bytes, received msgs, received bytes, connection
    seconds, storage byte-seconds, peak connections (``_HOUR_FIELDS`` and the peak, as a list: no dataclass)."""
    row = hours.get((account, hour))
    if row is None:
        row = hours[(account, hour)] = [0, 0, 0, 0, 0.0, 0, 0]
    return row


def _rows(model, field: str, values: Sequence[str]) -> list:
    rows = []
    for chunk in _chunks(values):
        rows += list(model.objects.select_for_update().filter(**{f"{field}__in": chunk}))
    return rows


def _unclaimed(samples: list[Sample]) -> list[Sample]:
    """The samples whose (key, account) was never ingested, first occurrence only, in arrival order."""
    from django.db import connection

    keys = sorted({s.key for s in samples})
    seen: set[tuple[str, str]] = set()
    table = connection.ops.quote_name(MeterSample._meta.db_table)
    with connection.cursor() as cursor:  # (plain SQL: the ORM's query building cost more than the lookup)
        for chunk in _chunks(keys):
            cursor.execute(f"SELECT key, account_public_key FROM {table} WHERE key IN "  # noqa: S608
                           f"({', '.join(['%s'] * len(chunk))})", chunk)
            seen.update(map(tuple, cursor.fetchall()))
    fresh = []
    for s in samples:
        if (s.key, s.account) not in seen:
            seen.add((s.key, s.account))
            fresh.append(s)
    return fresh


def _apply_storage(sample: StorageSample, storage: dict[str, AccountStorage], hours: dict, dirty: set[str]) -> bool:
    """The interval since the account's previous observation, from whichever server, is billed at the smaller
    of the two (never more than was stored), split over the hours it spans. False when the observation is not
    newer than the account's last (a replay, or late): it adds nothing."""
    row = storage.get(sample.account)
    if row is None:
        dirty.add(sample.account)
        storage[sample.account] = AccountStorage(account_public_key=sample.account, bytes=sample.stored_bytes,
                                                 observed_at=sample.at, server_name=sample.server_name)
        return True
    if sample.at <= row.observed_at:
        return False
    dirty.add(sample.account)
    billed = min(row.bytes, sample.stored_bytes)
    if billed > 0:
        for hour, seconds in metering.split_by_hour(row.observed_at, sample.at):
            _hour(hours, sample.account, hour)[5] += int(billed * seconds)
    row.bytes, row.observed_at, row.server_name = sample.stored_bytes, sample.at, sample.server_name
    return True


def _hours_upsert(hours: dict[tuple[str, dt.datetime], list]) -> None:
    """Add to every touched hour (and raise its peak), and to its day and month, in one statement per table.
    ``hours``: (account, hour) -> the ``_hour`` list of its sums and peak."""
    adapt = datetime_adapter()
    days: dict[tuple[str, dt.datetime], list] = {}
    months: dict[tuple[str, dt.datetime], list] = {}
    floors: dict[dt.datetime, tuple[dt.datetime, dt.datetime]] = {}  # an hour's day and month (few distinct hours)
    for (account, hour), h in hours.items():
        floor = floors.get(hour)
        if floor is None:
            day = metering.day_floor(hour)
            floor = floors[hour] = (day, metering.month_floor(day))
        for into, key in ((days, (account, floor[0])), (months, (account, floor[1]))):
            sums = into.get(key)
            if sums is None:
                into[key] = list(h)
                continue
            for i in range(6):
                sums[i] += h[i]
            if h[6] > sums[6]:
                sums[6] = h[6]
    texts: dict[dt.datetime, Any] = {}  # each distinct hour, day and month adapted once (a batch has a few)
    for at in (*floors, *(f for pair in floors.values() for f in pair)):
        if at not in texts:
            texts[at] = adapt(at)
    for model, column, rows in ((UsageHour, "hour", hours), (UsageDay, "day", days), (UsageMonth, "month", months)):
        # (in key order: two PostgreSQL transactions never lock the same rows crosswise)
        rows_upsert(model, ("account_public_key", column, *_HOUR_FIELDS, "peak_connections"),
                    [(account, texts[at], *h) for (account, at), h in sorted(rows.items(), key=_key_of)],
                    conflict=("account_public_key", column),
                    merge={**dict.fromkeys(_HOUR_FIELDS, Merge.ADD), "peak_connections": Merge.MAX})


_key_of = operator.itemgetter(0)  # a dict item's key (sorting on it never compares the values)


def _node_hours_upsert(by_node: dict[tuple[str, str, dt.datetime], list[int]]) -> None:
    """The same deltas by the node (server name) that counted them, tenants' accounts only: what each node carried
    for tenants in each hour (the node operators' payout basis, docs/ECONOMICS.md). One row per node and hour."""
    if not by_node:
        return
    platform = set(Account.objects.filter(Q(is_system=True) | Q(team__is_platform=True))
                   .values_list("public_key", flat=True))
    nodes: dict[tuple[str, dt.datetime], list[int]] = {}
    for (node, account, hour), step in by_node.items():
        if account not in platform:
            sums = nodes.setdefault((node, hour), [0, 0, 0, 0])
            for i in range(4):
                sums[i] += step[i]
    adapt = datetime_adapter()
    fields = ("sent_msgs", "sent_bytes", "received_msgs", "received_bytes")
    rows_upsert(NodeUsageHour, ("node", "hour", *fields),
                [(node, adapt(hour), *c) for (node, hour), c in sorted(nodes.items())],
                conflict=("node", "hour"), merge=dict.fromkeys(fields, Merge.ADD))


def usage_hours_add(*, account_public_key: str, hour: dt.datetime, sent_msgs: int = 0, sent_bytes: int = 0,
                    received_msgs: int = 0, received_bytes: int = 0, connection_seconds: float = 0.0,
                    storage_byte_seconds: int = 0, peak_connections: int = 0) -> None:
    """Add usage to one hour of an account (and to its day and month), as ingesting a sample does; the peak is
    raised, never lowered. For corrections, imports and tests: the collector's samples go through samples_ingest."""
    with transaction.atomic():
        _hours_upsert({(account_public_key, metering.hour_floor(hour)): [
            sent_msgs, sent_bytes, received_msgs, received_bytes, connection_seconds, storage_byte_seconds,
            peak_connections]})


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
