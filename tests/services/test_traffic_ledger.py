"""The ledger's traffic by node (the same deltas as the account's hours, split by the server that counted them) and
by export (SUBSZ readings applied as deltas per subscription, exactly once)."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from django.db.models import Sum

from billing.metering import Counters, CountersSample, SampleKind
from billing.models import ExportUseCounter, ExportUseHour, NodeUsageHour, UsageHour
from billing.services import samples_ingest
from billing.traffic import ExportUseSample, export_use_counters_prune, export_use_ingest, use_step
from broker_gateway.export_meter import Tracked, connz_is_connection, subsz_read

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 22, 10, 59, 30, tzinfo=dt.UTC)
A, B, E = "A" + "A" * 55, "A" + "B" * 55, "A" + "E" * 55


def counters(server, name, seq, at, sent, received, account=A):
    return CountersSample(key=f"{server}:{seq}", kind=SampleKind.COUNTERS_POLL, account=account, server_id=server,
                          server_name=name, seq=seq, at=at, counters=Counters(sent // 10, sent, received // 10,
                                                                              received), conns=1)


def node_bytes():
    rows = NodeUsageHour.objects.values("node", "hour").annotate(s=Sum("sent_bytes"), r=Sum("received_bytes"))
    return {(row["node"], row["hour"].hour): (row["s"], row["r"]) for row in rows}


def test_each_node_keeps_what_it_counted_per_hour_and_the_sum_is_the_accounts(operator_setup):
    from accounts_service.services import system_account_ensure

    later = T0 + dt.timedelta(minutes=1)  # the next hour
    samples_ingest([counters("S1", "n1", 1, T0, 100, 10), counters("S2", "n2", 1, T0, 0, 300),
                    counters("S1", "n1", 2, later, 150, 10), counters("S2", "n2", 2, later, 0, 350)])
    # Replayed (same key) and stale (older sequence) samples count nothing, on the node as on the account.
    samples_ingest([counters("S1", "n1", 2, later, 150, 10), counters("S1", "n1", 1, T0, 999, 999)])
    # The node restarted: a new server id under the same name starts from zero; its hours are the same node's.
    samples_ingest([counters("S9", "n1", 1, later + dt.timedelta(seconds=5), 40, 0)])
    # Another tenant on the same node and hour adds to it; the system account's own traffic (the collector's
    # polls) is no tenant's: the account's hours have it, the node's not.
    samples_ingest([counters("S2", "n2", 3, later, 5, 5, account=B),
                    counters("S2", "n2", 4, later, 10**6, 10**6, account=system_account_ensure().public_key)])
    assert node_bytes() == {("n1", 10): (100, 10), ("n2", 10): (0, 300), ("n1", 11): (50 + 40, 0),
                            ("n2", 11): (5, 50 + 5)}
    tenants = UsageHour.objects.filter(account_public_key__in=[A, B]).aggregate(s=Sum("sent_bytes"),
                                                                               r=Sum("received_bytes"))
    nodes = NodeUsageHour.objects.aggregate(s=Sum("sent_bytes"), r=Sum("received_bytes"))
    assert tenants == nodes == {"s": 195, "r": 365}
    assert not NodeUsageHour.objects.filter(sent_bytes=0, received_bytes=0).exists()  # no row for nothing


def reading(seq, msgs, *, cid=7, sid="3", at=T0, server="S1"):
    return ExportUseSample(server_id=server, seq=seq, at=at, account=B, cid=cid, sid=sid, subject="weather.now",
                           msgs=msgs, exporter=E, export_subject="weather.*", importer=B, kind="service")


def test_use_is_applied_as_deltas_per_subscription_once():
    assert use_step(previous_seq=None, previous_msgs=0, seq=5, msgs=9) == 9
    assert use_step(previous_seq=5, previous_msgs=9, seq=5, msgs=12) is None  # not newer: nothing
    assert use_step(previous_seq=5, previous_msgs=9, seq=6, msgs=12) == 3
    assert use_step(previous_seq=6, previous_msgs=12, seq=7, msgs=2) == 2  # went down: the sid was reused

    assert export_use_ingest([reading(1, 4)]) == 4
    assert export_use_ingest([reading(1, 4), reading(2, 4)]) == 0  # replayed, then unchanged
    assert export_use_ingest([reading(3, 10, at=T0 + dt.timedelta(minutes=1))]) == 6  # the next hour
    assert export_use_ingest([reading(2, 99)]) == 0  # a late reply of an older poll
    # Another subscription (a re-created service import: new sid), and another server (a new server id).
    assert export_use_ingest([reading(4, 2, sid="9"), reading(1, 5, server="S2")]) == 7
    assert dict(ExportUseHour.objects.values_list("hour__hour", "msgs")) == {10: 4 + 2 + 5, 11: 6}
    assert export_use_counters_prune(before=T0 + dt.timedelta(days=2)) == 3  # (S1, 3), (S1, 9), (S2, 3)
    assert not ExportUseCounter.objects.exists()


def subsz_reply(entries, *, total=None, server="S1", seq=40):
    return orjson.dumps({"server": {"name": "n1", "id": server, "seq": seq, "time": "2026-11-22T10:59:30Z"},
                         "data": {"now": "2026-11-22T10:59:31.123456789Z", "total": total or len(entries),
                                  "subscriptions_list": entries}})


def test_a_subsz_reply_is_read_into_stream_samples_and_service_candidates():
    tracked = Tracked(account=E, services={"pubsvc.a": ("A" + "X" * 55, "svc.a")},
                      streams={B: [("feed.>", "feed.>")]})
    entries = [
        {"account": B, "subject": "feed.>", "sid": "1", "msgs": 5, "cid": 22},  # B's shadow subscription
        {"account": B, "subject": "feed.x.y", "sid": "2", "msgs": 3, "cid": 22},  # narrower: still the import's
        {"account": A, "subject": "feed.>", "sid": "1", "msgs": 8, "cid": 30},  # A imports nothing from E
        {"account": E, "subject": "pubsvc.a", "sid": "6", "msgs": 7, "cid": 19},  # E's service import (or a client)
        {"account": E, "subject": "pubsvc.a", "sid": "7", "qgroup": "q", "msgs": 7, "cid": 17},  # a queue sub
        {"account": E, "subject": "other", "sid": "8", "msgs": 1, "cid": 19},
    ]
    samples, candidates = subsz_read(subsz_reply(entries), tracked)
    assert [(s.importer, s.subject, s.msgs, s.kind, s.exporter) for s in samples] == [
        (B, "feed.>", 5, "stream", E), (B, "feed.x.y", 3, "stream", E)]
    assert samples[0].at == dt.datetime(2026, 11, 22, 10, 59, 31, 123456, tzinfo=dt.UTC) and samples[0].seq == 40
    assert [(c.server_id, c.sample.cid, c.sample.exporter, c.sample.importer, c.sample.kind) for c in candidates] == [
        ("S1", 19, "A" + "X" * 55, E, "service")]
    assert subsz_read(orjson.dumps({"server": {"id": "S1"}, "error": {"code": 500}}), tracked) == ([], [])
    assert connz_is_connection(orjson.dumps({"data": {"connections": [{"cid": 17}]}}))
    assert not connz_is_connection(orjson.dumps({"data": {"connections": []}}))
