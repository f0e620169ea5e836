"""Metering arithmetic and the ledger: client-side counters, deltas, resets, replays, late data, hour splits."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import metering
from billing.metering import ConnectionSample, Counters, SampleKind, Snapshot
from broker_gateway import events

T0 = dt.datetime(2026, 11, 22, 10, 59, 30, tzinfo=dt.UTC)
ACC = "A" + "B" * 55


def _stat(*, pub_msgs, pub_bytes, del_msgs, del_bytes, route_in=(0, 0), route_out=(0, 0), conns=1, acc=ACC):
    """A server's view: received = from its clients plus over routes; sent = to its clients plus over routes."""
    return {
        "acc": acc, "conns": conns,
        "received": {"msgs": pub_msgs + route_in[0], "bytes": pub_bytes + route_in[1],
                     "routes": {"msgs": route_in[0], "bytes": route_in[1]}, "gateways": {}, "leafs": {}},
        "sent": {"msgs": del_msgs + route_out[0], "bytes": del_bytes + route_out[1],
                 "routes": {"msgs": route_out[0], "bytes": route_out[1]}, "gateways": {}, "leafs": {}},
    }


def test_client_counters_leave_route_traffic_out():
    stat = _stat(pub_msgs=10, pub_bytes=1000, del_msgs=3, del_bytes=300, route_in=(7, 700), route_out=(10, 1000))
    assert events.client_counters(stat) == Counters(10, 1000, 3, 300)


def test_client_counters_count_leafnode_traffic_once():
    """A leafnode is a tenant's own server, a client of ours: what it published (the server's received.leafs) and
    what was delivered to it (sent.leafs) are the account's traffic. Routes and gateways still are not."""
    stat = _stat(pub_msgs=10, pub_bytes=1000, del_msgs=3, del_bytes=300, route_in=(7, 700), route_out=(10, 1000))
    stat["received"]["leafs"] = {"msgs": 4, "bytes": 400}  # part of the 10 published: 4 came from a leaf
    stat["sent"]["leafs"] = {"msgs": 2, "bytes": 200}  # part of the 3 delivered: 2 went to a leaf
    stat["received"]["gateways"] = {"msgs": 5, "bytes": 500}
    stat["received"]["msgs"] += 5
    stat["received"]["bytes"] += 500
    assert events.client_counters(stat) == Counters(10, 1000, 3, 300)


def test_counters_samples_carry_the_account_leafnode_connections():
    body = {"server": {"id": "S1", "name": "n1", "seq": 4}, "data": {"now": "2026-11-22T10:59:30.123456789Z",
            "account_statz": [{**_stat(pub_msgs=1, pub_bytes=1, del_msgs=0, del_bytes=0, conns=2), "leafnodes": 3}]}}
    (sample,) = events.statz_samples(json.dumps(body).encode())
    assert (sample.conns, sample.leafnodes) == (2, 3)
    event = {"server": {"id": "S1", "name": "n1", "seq": 5}, "timestamp": "2026-11-22T10:59:31Z",
             **_stat(pub_msgs=1, pub_bytes=1, del_msgs=0, del_bytes=0, conns=0)}
    (sample,) = events.event_samples(f"$SYS.ACCOUNT.{ACC}.SERVER.CONNS", json.dumps(event).encode())
    assert (sample.conns, sample.leafnodes) == (0, 0)


def test_delta_first_next_stale_and_reset():
    first = Snapshot("S1", 5, Counters(10, 100, 4, 40), 1, T0)
    assert metering.delta(None, first).counters == Counters(10, 100, 4, 40)
    nxt = Snapshot("S1", 9, Counters(15, 150, 4, 40), 1, T0)
    assert metering.delta(first, nxt).counters == Counters(5, 50, 0, 0)
    assert metering.delta(nxt, first).stale and metering.delta(nxt, first).counters.is_zero
    assert metering.delta(nxt, nxt).stale
    reset = Snapshot("S1", 12, Counters(2, 20, 1, 10), 1, T0)
    assert metering.delta(nxt, reset) == metering.Delta(Counters(2, 20, 1, 10), reset=True)


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5000)), min_size=1, max_size=30),
       st.randoms(use_true_random=False))
def test_deltas_sum_to_the_last_cumulative_value_whatever_the_order_and_duplicates(steps, rnd):
    """Snapshots of one server id applied in any order, some twice: never negative, never more than the truth."""
    cumulative, snaps = Counters(), []
    for seq, (msgs, size) in enumerate(steps, start=1):
        cumulative = cumulative + Counters(msgs, size, msgs, size)
        snaps.append(Snapshot("S", seq, cumulative, 1, T0))
    delivered = snaps + rnd.sample(snaps, k=len(snaps) // 2)
    rnd.shuffle(delivered)
    applied, total = None, Counters()
    for snap in delivered:
        d = metering.delta(applied, snap)
        assert not d.counters.any_negative and not d.reset
        if not d.stale:
            applied, total = snap, total + d.counters
    assert total.sent_msgs <= cumulative.sent_msgs
    assert total == applied.counters  # exactly what the newest applied snapshot says
    # And in order, it is exactly the truth.
    applied, total = None, Counters()
    for snap in snaps:
        total, applied = total + metering.delta(applied, snap).counters, snap
    assert total == cumulative


def test_split_by_hour():
    start = dt.datetime(2026, 1, 1, 10, 59, 30, tzinfo=dt.UTC)
    parts = metering.split_by_hour(start, start + dt.timedelta(minutes=61))
    assert [(h.hour, s) for h, s in parts] == [(10, 30.0), (11, 3600.0), (12, 30.0)]
    assert metering.split_by_hour(start, start) == []


def test_an_observation_stays_fresh_across_a_few_missed_conns_events():
    assert metering.OBSERVATION_FRESH >= 3 * events.CONNS_EVERY


def test_parse_time_keeps_microseconds_of_nanosecond_timestamps():
    assert events.parse_time("2026-11-22T07:30:16.963034934Z") == dt.datetime(2026, 11, 22, 7, 30, 16, 963034,
                                                                                 tzinfo=dt.UTC)
    assert events.parse_time("2026-11-22T07:30:16Z").second == 16
    for text in ("2026-11-22T07:30:16.9Z", "2026-11-22T07:30:16.000001Z", "2026-11-22T07:30:16.123+01:00",
                 "2026-11-22T07:30:16.5-00:00", "2026-11-22T07:30:16.123456Z"):  # the fast path and the general one
        expected = dt.datetime.fromisoformat(text.replace("Z", "+00:00")[:19] + text.replace("Z", "+00:00")[19:])
        assert events.parse_time(text) == expected, text


# ------------------------------------------------------------------------------------------------
# The ledger (database)
# ------------------------------------------------------------------------------------------------


def _conns_event(server_id, seq, at, stat, name="n1"):
    return json.dumps({"type": "io.nats.server.advisory.v1.account_connections", "id": f"e{seq}",
                       "timestamp": at.isoformat().replace("+00:00", "Z"),
                       "server": {"name": name, "id": server_id, "seq": seq}, **stat}).encode()


@pytest.mark.django_db
def test_ledger_counts_replays_once_detects_restarts_and_files_late_data_by_hour():
    from billing.models import MeterSample, ServerAccountCounter, UsageHour
    from broker_gateway.collector import event_ingest

    subject = f"$SYS.ACCOUNT.{ACC}.SERVER.CONNS"
    e1 = _conns_event("S1", 1, T0, _stat(pub_msgs=10, pub_bytes=100, del_msgs=5, del_bytes=50))
    e2 = _conns_event("S1", 2, T0 + dt.timedelta(seconds=40), _stat(pub_msgs=30, pub_bytes=300, del_msgs=5,
                                                                        del_bytes=50))
    assert event_ingest(subject, e1) and event_ingest(subject, e2)
    assert not event_ingest(subject, e1) and not event_ingest(subject, e2)  # replayed: counted once
    # The server restarted: a new server id whose counters start from zero.
    e3 = _conns_event("S2", 1, T0 + dt.timedelta(seconds=50), _stat(pub_msgs=4, pub_bytes=40, del_msgs=0,
                                                                        del_bytes=0))
    assert event_ingest(subject, e3)
    # Late data: an event from 10:59 ingested after 11:00's is filed under 10:00.
    late = _conns_event("S3", 7, T0, _stat(pub_msgs=1, pub_bytes=10, del_msgs=1, del_bytes=10), name="n2")
    assert event_ingest(subject, late)

    hours = {h.hour.hour: h for h in UsageHour.objects.filter(account_public_key=ACC)}
    # 10:00: the first snapshot (10:59:30) and the late one; 11:00: the second (11:00:10) and the restarted server's.
    assert (hours[10].sent_msgs, hours[10].sent_bytes, hours[10].received_msgs) == (10 + 1, 100 + 10, 5 + 1)
    assert (hours[11].sent_msgs, hours[11].sent_bytes, hours[11].received_msgs) == (20 + 4, 200 + 40, 0)
    # Counters are claimed by the sequence number their (server id, account) row keeps, not by a row each.
    assert not MeterSample.objects.exists()
    assert sorted(ServerAccountCounter.objects.values_list("server_id", "seq")) == [("S1", 2), ("S2", 1), ("S3", 7)]


@pytest.mark.django_db
def test_leafnode_connections_sum_over_servers_and_a_restarted_server_forgets_its_own():
    from billing.selectors import leafnodes_current, usage_document
    from broker_gateway.collector import event_ingest

    subject = f"$SYS.ACCOUNT.{ACC}.SERVER.CONNS"
    at = T0 + dt.timedelta(seconds=1)
    assert event_ingest(subject, _conns_event("S1", 1, at, {**_stat(pub_msgs=1, pub_bytes=1, del_msgs=0,
                                                                    del_bytes=0, conns=0), "leafnodes": 2}))
    assert event_ingest(subject, _conns_event("S2", 1, at, {**_stat(pub_msgs=0, pub_bytes=0, del_msgs=0,
                                                                    del_bytes=0, conns=1), "leafnodes": 1},
                                              name="n2"))
    assert leafnodes_current(account_public_key=ACC, now=at) == 3
    doc = usage_document(account_public_key=ACC, window="24h", plan="", data_bytes=-1, used_bytes=0, now=at)
    assert doc["connections"]["leafnodes"] == 3 and doc["connections"]["current"] == 1
    # n1 restarted (a new server id): its old row's leafnodes are gone with it.
    assert event_ingest(subject, _conns_event("S3", 1, at, _stat(pub_msgs=0, pub_bytes=0, del_msgs=0, del_bytes=0,
                                                                 conns=0)))
    assert leafnodes_current(account_public_key=ACC, now=at) == 1
    # A server not heard from within OBSERVATION_FRESH no longer counts.
    assert leafnodes_current(account_public_key=ACC, now=at + metering.OBSERVATION_FRESH * 2) == 0


@pytest.mark.django_db
def test_disconnect_gives_connection_seconds_by_hour_once():
    from billing.models import UsageHour
    from broker_gateway.collector import event_ingest

    start, stop = T0, T0 + dt.timedelta(seconds=90)
    event = json.dumps({"type": "io.nats.server.advisory.v1.client_disconnect", "id": "d1",
                        "server": {"id": "S1", "name": "n1", "seq": 44},
                        "client": {"acc": ACC, "start": start.isoformat(), "stop": stop.isoformat()},
                        "sent": {"msgs": 1, "bytes": 1}, "received": {"msgs": 1, "bytes": 1}}).encode()
    subject = f"$SYS.ACCOUNT.{ACC}.DISCONNECT"
    assert event_ingest(subject, event) and not event_ingest(subject, event)
    seconds = {h.hour.hour: h.connection_seconds for h in UsageHour.objects.filter(account_public_key=ACC)}
    assert seconds == {10: 30.0, 11: 60.0}
    assert UsageHour.objects.get(account_public_key=ACC, hour__hour=10).sent_msgs == 0  # bytes come from counters


# ------------------------------------------------------------------------------------------------
# JetStream storage (GiB-hours), from JSZ replies shaped as nats-server 2.15 sends them
# ------------------------------------------------------------------------------------------------


def _jsz(server_id: str, seq: int, now: str, details: list[tuple[str, int, int]]) -> bytes:
    return json.dumps({
        "server": {"name": "n1", "id": server_id, "seq": seq, "time": now},
        "data": {"server_id": server_id, "now": now, "memory": 0, "storage": 0,
                 "account_details": [{"name": acc, "id": acc, "memory": mem, "storage": disk}
                                     for acc, mem, disk in details]},
    }).encode()


@pytest.mark.django_db
def test_jsz_storage_is_billed_per_interval_at_the_smaller_observation_and_split_by_hour():
    from billing.models import UsageHour
    from billing.selectors import GIB_HOUR, usage_document
    from broker_gateway.collector import jsz_ingest

    acc = "A" + "B" * 55
    # Each clustered server reports the account's cluster-wide bytes; the intervals between observations, from
    # whichever server, are billed once at the smaller of their two ends.
    replies = [
        _jsz("S1", 10, "2026-11-29T10:59:00Z", [(acc, 0, 1000)]),
        _jsz("S2", 3, "2026-11-29T10:59:00.5Z", [(acc, 0, 1000)]),  # the same bytes, seen by another server
        _jsz("S1", 11, "2026-11-29T11:01:00Z", [(acc, 24, 2000)]),  # ~120 s at min(1000, 2024) = 1000
        _jsz("S1", 12, "2026-11-29T11:02:00Z", [(acc, 0, 500)]),  # 60 s at 500
    ]
    assert sum(jsz_ingest(r) for r in replies) == 4
    assert sum(jsz_ingest(r) for r in replies) == 0  # replayed: nothing counts twice
    assert jsz_ingest(_jsz("S2", 4, "2026-11-29T11:01:30Z", [(acc, 0, 10**9)])) == 0  # late and older: adds nothing
    hours = dict(UsageHour.objects.filter(account_public_key=acc).values_list("hour__hour", "storage_byte_seconds"))
    assert hours == {10: 60 * 1000, 11: 60 * 1000 + 60 * 500}
    doc = usage_document(account_public_key=acc, window="24h", plan="", data_bytes=-1, used_bytes=0,
                         now=dt.datetime(2026, 11, 29, 11, 3, 0, tzinfo=dt.UTC))
    assert doc["jetstream"] == {"storage_bytes": 500, "gib_hours": round((120 * 1000 + 60 * 500) / GIB_HOUR, 9)}


def _stream(seed: int) -> list[tuple[str, bytes]]:
    """A synthetic but server-shaped stream: CONNS events and STATZ replies of 3 servers (one restarts with a new
    id and counters from zero), DISCONNECTs, JSZ replies, some delivered twice and some late."""
    import random

    rng = random.Random(seed)
    accounts = ["A" + chr(ord("B") + i) * 55 for i in range(4)]
    servers = {"n1": "S1", "n2": "S2", "n3": "S3"}
    seq = dict.fromkeys(servers.values(), 0)
    totals: dict[tuple[str, str], list[int]] = {}
    out: list[tuple[str, bytes]] = []
    t = dt.datetime(2026, 11, 29, 9, 50, tzinfo=dt.UTC)
    for step in range(120):
        t += dt.timedelta(seconds=rng.randint(5, 90))
        name = rng.choice(list(servers))
        if step == 60:
            servers["n2"] = "S2b"  # n2 restarted: a new id, counters from zero
            seq["S2b"] = 0
        sid = servers[name]
        seq[sid] += 1
        server = {"name": name, "id": sid, "seq": seq[sid], "time": t.isoformat()}
        stats = []
        for acc in rng.sample(accounts, 2):
            c = totals.setdefault((sid, acc), [0, 0, 0, 0])
            c[0] += rng.randint(0, 50)
            c[1] += rng.randint(0, 5000)
            c[2] += rng.randint(0, 50)
            c[3] += rng.randint(0, 5000)
            stats.append({"acc": acc, "conns": rng.randint(0, 3), "received": {"msgs": c[0], "bytes": c[1]},
                          "sent": {"msgs": c[2], "bytes": c[3]}})
        kind = rng.random()
        if kind < 0.4:
            out.append((f"$SYS.ACCOUNT.{stats[0]['acc']}.SERVER.CONNS",
                        json.dumps({**stats[0], "server": server, "timestamp": t.isoformat()}).encode()))
        elif kind < 0.7:
            out.append(("$SYS.REQ.ACCOUNT.PING.STATZ", json.dumps(
                {"server": server, "data": {"now": t.isoformat(), "account_statz": stats}}).encode()))
        elif kind < 0.85:
            start = t - dt.timedelta(seconds=rng.randint(1, 5000))
            out.append((f"$SYS.ACCOUNT.{stats[0]['acc']}.DISCONNECT", json.dumps(
                {"server": server, "id": f"d{step}", "timestamp": t.isoformat(),
                 "client": {"acc": stats[0]["acc"], "start": start.isoformat(), "stop": t.isoformat()}}).encode()))
        else:
            out.append(("$SYS.REQ.SERVER.PING.JSZ", json.dumps({"server": server, "data": {
                "now": t.isoformat(), "account_details": [
                    {"id": s["acc"], "memory": 0, "storage": rng.randint(0, 10**6)} for s in stats]}}).encode()))
        if rng.random() < 0.15:
            out.append(out[rng.randrange(len(out))])  # delivered twice, or late
    return out


def _ledger_state():
    from billing.models import AccountStorage, MeterSample, ServerAccountCounter, UsageHour

    return (
        sorted(UsageHour.objects.values_list("account_public_key", "hour", "sent_msgs", "sent_bytes",
                                             "received_msgs", "received_bytes", "connection_seconds",
                                             "peak_connections", "storage_byte_seconds")),
        sorted(ServerAccountCounter.objects.values_list("server_id", "account_public_key", "seq", "sent_msgs",
                                                        "sent_bytes", "received_msgs", "received_bytes", "conns",
                                                        "resets")),
        sorted(AccountStorage.objects.values_list("account_public_key", "bytes", "observed_at")),
        MeterSample.objects.count(),
        _rollups_checked(),
    )


def _rollups_checked():
    """The day and month rollups, after checking each equals the sum (peak: the maximum) of its hours."""
    from collections import defaultdict

    from billing.models import UsageDay, UsageHour, UsageMonth

    fields = ("sent_msgs", "sent_bytes", "received_msgs", "received_bytes", "connection_seconds",
              "storage_byte_seconds", "peak_connections")
    out = []
    for model, column, floor in ((UsageDay, "day", metering.day_floor), (UsageMonth, "month", metering.month_floor)):
        want: dict = defaultdict(lambda: [0] * len(fields))
        for key, hour, *values in UsageHour.objects.values_list("account_public_key", "hour", *fields):
            sums = want[(key, floor(hour))]
            for i, value in enumerate(values):
                sums[i] = max(sums[i], value) if fields[i] == "peak_connections" else sums[i] + value
        got = {(key, at): list(values) for key, at, *values in model.objects.values_list("account_public_key",
                                                                                          column, *fields)}
        rounded = [{k: [round(v, 6) for v in vs] for k, vs in d.items()} for d in (got, want)]
        assert rounded[0] == rounded[1], f"{model.__name__} rollups differ from the sums of their hours"
        out.append(sorted(rounded[0].items()))
    return out


def _ledger_clear():
    from billing.models import AccountStorage, MeterSample, ServerAccountCounter, UsageDay, UsageHour, UsageMonth

    for model in (AccountStorage, MeterSample, ServerAccountCounter, UsageHour, UsageDay, UsageMonth):
        model.objects.all().delete()


def _new_by_rule(stream) -> int:
    """How many of the stream's samples are new, by the rule samples_ingest documents, counted here on its own: a
    connection end whose (key, account) was not seen, counters above the highest sequence number applied for their
    (server id, account), a stored-bytes observation later than the account's last."""
    from billing.metering import CountersSample, StorageSample
    from broker_gateway.events import message_samples

    ends, seqs, stored, new = set(), {}, {}, 0
    for subject, data in stream:
        for s in message_samples(subject, data):
            if s.at is None or not s.account:
                continue
            if isinstance(s, ConnectionSample):
                fresh = (s.key, s.account) not in ends
                ends.add((s.key, s.account))
            elif isinstance(s, CountersSample):
                fresh = s.seq > seqs.get((s.server_id, s.account), -1)
                seqs[(s.server_id, s.account)] = max(s.seq, seqs.get((s.server_id, s.account), -1))
            else:
                assert isinstance(s, StorageSample)
                fresh = s.account not in stored or s.at > stored[s.account]
                stored[s.account] = max(s.at, stored.get(s.account, s.at))
            new += fresh
    return new


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batches_of_any_size_make_the_same_ledger_as_one_message_at_a_time(seed):
    """The collector's writer ingests whatever is queued in one transaction; the ledger must not depend on how
    the stream was cut into batches (duplicates inside a batch included)."""
    import random

    from billing.services import samples_ingest
    from broker_gateway.events import message_samples

    stream = _stream(seed)
    one_by_one = sum(samples_ingest(message_samples(subject, data)) for subject, data in stream)
    expected = _ledger_state()
    assert one_by_one == _new_by_rule(stream) and expected[0]
    assert expected[3] == len({(s.key, s.account) for subject, data in stream for s in message_samples(subject, data)
                               if isinstance(s, ConnectionSample)})  # a claim row per connection end, none else
    _ledger_clear()
    assert samples_ingest([s for subject, data in stream for s in message_samples(subject, data)]) == one_by_one
    assert _ledger_state() == expected
    _ledger_clear()
    rng, i, total = random.Random(seed), 0, 0
    while i < len(stream):
        size = rng.randint(1, 25)
        total += samples_ingest([s for subject, data in stream[i:i + size] for s in message_samples(subject, data)])
        i += size
    assert total == one_by_one and _ledger_state() == expected
    # and all of it again, in one batch: nothing new
    assert samples_ingest([s for subject, data in stream for s in message_samples(subject, data)]) == 0
    assert _ledger_state() == expected


def test_the_collector_skips_idle_accounts_whose_counters_did_not_move():
    """Every poll lists every account a node knows; an idle one (no connection, same counters) adds nothing."""
    from billing.metering import Counters, CountersSample
    from broker_gateway.ledger_writer import IdleFilter

    idle_filter = IdleFilter()  # what each ledger writer applies to its partition's samples
    at = dt.datetime(2026, 11, 29, 10, tzinfo=dt.UTC)

    def statz(seq, conns, sent, kind=SampleKind.COUNTERS_POLL, leafnodes=0):
        return CountersSample(key=f"S1:{seq}", kind=kind, account="A1", server_id="S1", server_name="n1", seq=seq,
                              at=at, counters=Counters(sent, sent * 10, 0, 0), conns=conns, leafnodes=leafnodes)

    polls = [statz(1, 0, 5), statz(2, 0, 5), statz(3, 0, 5), statz(4, 1, 5), statz(5, 1, 5), statz(6, 0, 7),
             statz(7, 0, 7), statz(8, 0, 7, kind=SampleKind.COUNTERS_EVENT), statz(9, 0, 7, leafnodes=1),
             statz(10, 0, 7, leafnodes=1), statz(11, 0, 7), statz(12, 0, 7)]
    kept = [s.seq for s in idle_filter(polls)]
    # the first idle sample, every sample with a client or leafnode connection (it keeps the account's
    # connections fresh), a move of the counters, every CONNS event, and the first idle one after a leafnode left
    assert kept == [1, 4, 5, 6, 8, 9, 10, 11]


def _hours_of(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every hour the window holds, one by one (the definition spans_cover must match)."""
    out, at = [], metering.hour_floor(start)
    while at < end:
        out.append(at)
        at += dt.timedelta(hours=1)
    return out


def _expand(grain: str, lo: dt.datetime, hi: dt.datetime) -> list[dt.datetime]:
    return _hours_of(lo, hi)


@given(st.datetimes(min_value=dt.datetime(2025, 10, 1), max_value=dt.datetime(2027, 3, 1)),
       st.integers(min_value=0, max_value=24 * 100), st.integers(min_value=0, max_value=3599))
def test_a_window_is_covered_by_whole_months_days_and_hours_exactly_once(start, hours, seconds):
    start = start.replace(tzinfo=dt.UTC)
    end = start + dt.timedelta(hours=hours, seconds=seconds)
    spans = metering.spans_cover(start, end)
    covered = [h for span in spans for h in _expand(*span)]
    assert covered == _hours_of(start, end)  # in order, none twice, none missing
    for grain, lo, hi in spans:
        floor = {"hour": metering.hour_floor, "day": metering.day_floor, "month": metering.month_floor}[grain]
        assert floor(lo) == lo and floor(hi) == hi
    assert sum(1 for g, _, _ in spans if g == "hour") <= 2
    if hours >= 24 * 62:  # a long window: its middle is whole months, so it reads few rows
        assert any(g == "month" for g, _, _ in spans)


def test_a_30_day_window_reads_days_and_the_hours_at_its_two_ends():
    now = dt.datetime(2026, 11, 22, 10, 59, 30, tzinfo=dt.UTC)
    spans = metering.spans_cover(now - dt.timedelta(days=30), now)
    rows = sum(len(_hours_of(lo, hi)) if g == "hour" else (hi - lo).days for g, lo, hi in spans if g != "month")
    assert [g for g, _, _ in spans] == ["hour", "day", "hour"] and rows == 14 + 29 + 11


@pytest.mark.django_db
def test_usage_totals_read_from_the_rollups_equal_the_sum_of_the_hours():
    """Hours over two months and a window across them: the totals from rollups are the hours' sums, exactly."""
    import random

    from billing.selectors import account_usage, usage_totals
    from billing.services import usage_hours_add

    rng = random.Random(5)
    t0 = dt.datetime(2026, 10, 20, 0, tzinfo=dt.UTC)
    hours = {t0 + dt.timedelta(hours=h): (rng.randint(0, 99), rng.randint(0, 9999), rng.randint(1, 40))
             for h in range(0, 24 * 45, 3)}
    for hour, (msgs, size, peak) in hours.items():
        usage_hours_add(account_public_key=ACC, hour=hour, sent_msgs=msgs, sent_bytes=size, peak_connections=peak)
    usage_hours_add(account_public_key="A" + "C" * 55, hour=t0, sent_msgs=10**6)  # another account: not counted
    for start, end in ((t0, t0 + dt.timedelta(days=45)), (t0 + dt.timedelta(hours=7, minutes=5),
                                                          t0 + dt.timedelta(days=33, hours=2, seconds=1)),
                       (t0 + dt.timedelta(days=12, hours=23), t0 + dt.timedelta(days=13, hours=1))):
        inside = [v for h, v in hours.items() if metering.hour_floor(start) <= h < end]
        totals = usage_totals(account_public_key=ACC, start=start, end=end)
        assert (totals["sent_msgs"], totals["sent_bytes"], totals["peak"]) == (
            sum(v[0] for v in inside), sum(v[1] for v in inside), max((v[2] for v in inside), default=0))
    now = t0 + dt.timedelta(days=40, hours=5, minutes=1)
    doc = account_usage(account_public_key=ACC, plan_name="", window="30d", now=now)
    month = [v for h, v in hours.items() if dt.datetime(2026, 11, 1, tzinfo=dt.UTC) <= h < now]
    assert doc["quota"] == {"data_bytes": -1, "used_bytes": sum(v[1] for v in month)}


def test_the_ngs_usage_answer_equals_the_documents_parts_read_one_by_one(operator_setup, team):
    """account_usage_by_key (two plain queries) against usage_document and the selectors it replaces."""
    from accounts_service.rights import PLATFORM
    from accounts_service.services import account_create
    from billing.models import AccountStorage, ServerAccountCounter
    from billing.selectors import connections_current, leafnodes_current, storage_current
    from billing.services import usage_hours_add
    from billing.usage_answer import account_usage_by_key

    key = account_create(actor=PLATFORM, team=team, name="asks", plan="free").public_key
    now = dt.datetime.now(dt.UTC)
    for h in range(0, 24 * 40, 5):
        usage_hours_add(account_public_key=key, hour=now - dt.timedelta(hours=h), sent_bytes=h, received_msgs=1,
                        peak_connections=h % 7)
    for sid, conns, leafs, age in (("S1", 3, 1, 5), ("S2", 2, 0, 10), ("S3", 9, 4, 3600)):  # S3: not fresh
        ServerAccountCounter.objects.create(server_id=sid, account_public_key=key, seq=1, conns=conns,
                                            leafnodes=leafs, observed_at=now - dt.timedelta(seconds=age))
    AccountStorage.objects.create(account_public_key=key, bytes=12345, observed_at=now - dt.timedelta(seconds=1))
    for window in ("1h", "24h", "7d", "30d"):
        doc = account_usage_by_key(public_key=key, window=window, now=now)
        assert doc["connections"]["current"] == connections_current(account_public_key=key, now=now) == 5
        assert doc["connections"]["leafnodes"] == leafnodes_current(account_public_key=key, now=now) == 1
        assert doc["jetstream"]["storage_bytes"] == storage_current(account_public_key=key, now=now) == 12345
        from billing.selectors import account_usage

        assert doc == account_usage(account_public_key=key, plan_name="free", window=window, now=now)
    assert account_usage_by_key(public_key="A" + "Z" * 55, window="24h") is None


def test_a_poll_reply_is_cut_by_partition_into_pieces_that_read_as_the_same_samples(monkeypatch):
    """A node that knows many accounts answers STATZ with megabytes: the collector cuts the reply by partition, and
    into pieces under the stream's message size, each still a reply of the same server, time and sequence."""
    from broker_gateway import ledger_stream
    from broker_gateway.events import STATZ_SUBJECT, statz_samples

    monkeypatch.setattr(ledger_stream, "POLL_PIECE_BYTES", 4096)
    accounts = ["A" + f"{i:055d}" for i in range(300)]
    reply = {"server": {"name": "n1", "id": "S1", "seq": 77, "time": "2026-11-29T10:00:00Z"},
             "data": {"now": "2026-11-29T10:00:01.5Z",
                      "account_statz": [_stat(pub_msgs=i, pub_bytes=10 * i, del_msgs=1, del_bytes=2, acc=acc)
                                        for i, acc in enumerate(accounts)]}}
    data = json.dumps(reply).encode()
    pieces = ledger_stream.poll_pieces(STATZ_SUBJECT, data, 4)
    assert len(pieces) > 4 and all(len(body) <= 4096 for _, body in pieces)
    seen = []
    for subject, body in pieces:
        _, _, k, kind = subject.split(".")
        assert kind == "statz"
        samples = statz_samples(body)
        assert {ledger_stream.partition_of(s.account, 4) for s in samples} == {int(k)}
        seen += samples
    assert sorted(seen, key=lambda s: s.account) == sorted(statz_samples(data), key=lambda s: s.account)


@pytest.mark.django_db
def test_the_migration_drops_the_claims_of_counters_and_bytes_and_keeps_connection_ends(monkeypatch):
    """billing 0014: MeterSample rows of counters and stored bytes (claimed otherwise since) go; connection ends
    stay, so a DISCONNECT replayed after the upgrade still counts once."""
    import importlib

    from django.apps import apps

    from billing.metering import SampleKind
    from billing.models import MeterSample

    migration = importlib.import_module("billing.migrations.0014_meter_sample_connection_ends_only")
    at = dt.datetime(2026, 11, 29, 10, tzinfo=dt.UTC)
    for i, kind in enumerate([SampleKind.COUNTERS_EVENT, SampleKind.CONNECTION_END, SampleKind.COUNTERS_POLL,
                              SampleKind.STORAGE_POLL, SampleKind.CONNECTION_END] * 3):
        MeterSample.objects.create(key=f"S1:{i}", kind=kind, account_public_key=ACC, server_id="S1", observed_at=at)
    monkeypatch.setattr(migration, "CHUNK", 4)  # several ranges, one ending inside the table
    migration.forwards(apps, None)
    assert sorted(MeterSample.objects.values_list("key", flat=True)) == sorted(
        f"S1:{i}" for i in range(15) if i % 5 in (1, 4))
