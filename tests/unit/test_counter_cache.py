"""A ledger writer's cache of its partition's counter rows (billing.counters): kept between batches only while the
partition's lease holds, dropped when anyone else wrote in between or when a batch rolls back. Whatever the
interleaving, the ledger equals the one written message by message without any cache."""

from __future__ import annotations

import random

import pytest

from billing import services
from billing.counters import CounterCache
from billing.metering import Counters, CountersSample, SampleKind
from billing.models import LedgerLease
from billing.services import samples_ingest
from broker_gateway.events import message_samples
from tests.unit.test_metering import _ledger_clear, _ledger_state, _stream

pytestmark = pytest.mark.django_db


def _samples(messages):
    return [s for subject, data in messages for s in message_samples(subject, data)]


def stream_start(stream):
    return min(s.at for s in _samples(stream) if s.at)


def _expected(stream, extra=()):
    count = sum(samples_ingest(message_samples(subject, data)) for subject, data in stream)
    count += samples_ingest(list(extra))
    state = _ledger_state()
    _ledger_clear()
    return count, state


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_writers_sharing_a_partition_with_caches_and_without_make_the_same_ledger(seed):
    """Two writers of the same partition (each with its cache) and, now and then, a batch without a cache, in
    random turns and batch sizes: each cache is trusted only while no one else wrote, and the ledger is exact."""
    stream = _stream(seed)
    count, expected = _expected(stream)
    rng = random.Random(seed)
    a, b = CounterCache("partition 0/1"), CounterCache("partition 0/1")
    i, total = 0, 0
    while i < len(stream):
        size = rng.randint(1, 10)
        who = rng.choice([a, a, a, a, b, None])  # mostly one writer: its cache must be used
        total += samples_ingest(_samples(stream[i:i + size]), cache=who)
        i += size
    assert total == count and _ledger_state() == expected
    assert a.hits > 0, "the cache was never used"
    assert samples_ingest(_samples(stream), cache=a) == 0 and _ledger_state() == expected


def test_a_batch_without_a_cache_or_another_cache_ends_the_cache_and_a_lone_writer_keeps_it():
    stream = _stream(4)
    half = len(stream) // 2
    a, b = CounterCache("partition 0/2"), CounterCache("partition 0/2")
    other = CounterCache("partition 1/2")
    samples_ingest(_samples(stream[:10]), cache=a)
    samples_ingest(_samples(stream[10:20]), cache=a)
    assert a.hits == 1 and a.rows
    # another partition (its own accounts) under its own lease: a's still holds
    stranger = CountersSample(key="S9:1", kind=SampleKind.COUNTERS_POLL, account="A" + "Z" * 55, server_id="S9",
                              server_name="n9", seq=1, at=stream_start(stream), counters=Counters(1, 10, 2, 20),
                              conns=1)
    samples_ingest([stranger], cache=other)
    samples_ingest(_samples(stream[20:30]), cache=a)
    samples_ingest(_samples(stream[30:40]), cache=a)
    assert a.hits == 3
    samples_ingest(_samples(stream[40:50]), cache=b)  # another writer of the partition: a's rows are old now
    samples_ingest(_samples(stream[50:60]), cache=a)
    assert a.hits == 3
    samples_ingest(_samples(stream[60:half]))  # no cache: every lease moves
    versions = dict(LedgerLease.objects.values_list("scope", "version"))
    assert versions["partition 0/2"] != a.versions["partition 0/2"]
    assert versions["partition 1/2"] != other.versions["partition 1/2"]
    samples_ingest(_samples(stream[half:]), cache=a)
    assert a.hits == 3
    state = _ledger_state()
    _ledger_clear()
    count, expected = _expected(stream, [stranger])
    assert state == expected and count


def test_a_rolled_back_batch_drops_the_cache_and_its_retry_is_exact(monkeypatch):
    """The batch changed the cached rows in memory before it failed: they must not be trusted afterwards."""
    stream = _stream(5)
    count, expected = _expected(stream)
    cache = CounterCache("partition 0/1")
    third = len(stream) // 3
    assert samples_ingest(_samples(stream[:third]), cache=cache)
    assert cache.versions is not None and cache.rows
    real = services._hours_upsert

    def failing(hours):
        real(hours)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "_hours_upsert", failing)
    with pytest.raises(RuntimeError):
        samples_ingest(_samples(stream[third:2 * third]), cache=cache)
    assert cache.versions is None and not cache.rows
    monkeypatch.setattr(services, "_hours_upsert", real)
    rest = samples_ingest(_samples(stream[third:]), cache=cache)
    assert _ledger_state() == expected
    assert rest + len({(s.key, s.account) for s in _samples(stream[:third]) if s.at and s.account}) >= count


def test_a_starting_writer_loads_its_partitions_recent_rows_and_its_first_batch_uses_them():
    import datetime as dt

    from django.utils import timezone

    from billing.counters import cache_warm

    now = timezone.now().replace(microsecond=0)
    mine, theirs = "A" + "M" * 55, "A" + "T" * 55

    def sample(account, server, seq, sent):
        return CountersSample(key=f"{server}:{seq}", kind=SampleKind.COUNTERS_POLL, account=account,
                              server_id=server, server_name=server.lower(), seq=seq, at=now + dt.timedelta(seconds=seq),
                              counters=Counters(sent, sent * 10, 0, 0), conns=1)

    samples_ingest([sample(mine, "S1", 1, 5), sample(mine, "S2", 1, 7), sample(theirs, "S1", 2, 3)])
    cache, other = CounterCache("partition 0/2"), CounterCache("partition 1/2")
    assert cache_warm(cache, lambda account: account == mine) == 2
    assert cache_warm(other, lambda account: account == theirs) == 1
    assert set(cache.rows) == {mine} and set(cache.rows[mine]) == {"S1", "S2"} and set(other.rows) == {theirs}
    assert samples_ingest([sample(mine, "S1", 3, 9)], cache=cache) == 1
    assert cache.hits == 1
    from billing.models import ServerAccountCounter, UsageHour

    assert ServerAccountCounter.objects.get(server_id="S1", account_public_key=mine).sent_msgs == 9
    assert sum(UsageHour.objects.filter(account_public_key=mine).values_list("sent_msgs", flat=True)) == 5 + 7 + 4


def test_a_cache_over_two_partitions_holds_while_both_leases_do():
    """A writer of two partitions writes both in one transaction; either lease moving ends its cache."""
    stream = _stream(6)
    total, expected = _expected(stream)
    both = CounterCache(("partition 1/3", "partition 0/3"))
    assert both.scopes == ("partition 0/3", "partition 1/3")
    samples_ingest(_samples(stream[:20]), cache=both)
    samples_ingest(_samples(stream[20:40]), cache=both)
    assert both.hits == 1
    samples_ingest(_samples(stream[40:50]), cache=CounterCache("partition 1/3"))  # one of its partitions moved
    samples_ingest(_samples(stream[50:60]), cache=both)
    assert both.hits == 1  # (not a hit: the rows were read again)
    samples_ingest(_samples(stream[60:]), cache=both)
    assert both.hits == 2
    assert _ledger_state() == expected and total
