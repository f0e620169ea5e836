"""Metering against ground truth: real clustered nodes, real clients, the real collector."""

from __future__ import annotations

import asyncio
import datetime
import threading

import pytest

from accounts_service.rights import PLATFORM
from tests.fleet import running_fleet
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

N, M = 200, 100  # messages, bytes each


@pytest.fixture
def fleet2(operator_setup, tmp_path):
    with running_fleet(2, tmp_path / "fleet") as (nodes, _):
        yield nodes


class CollectorThread:
    """The collector on its own event loop and thread, as ``manage.py collector`` runs it."""

    def __init__(self, urls, poll_seconds=0.5, writers=2):
        from broker_gateway.collector import Collector

        # The writers on threads of this process (production runs them as processes): they must see the test
        # database. Two of them over the partitions, so a test also crosses writers.
        self.collector = Collector(urls, poll_seconds=poll_seconds, statz_timeout=0.3, writers=writers,
                                   writer_mode="thread")
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def _run(self):
        async def main():
            self.stop_event = asyncio.Event()
            await self.collector.run(self.stop_event)

        self.loop.run_until_complete(main())

    def start(self):
        self.thread.start()
        wait_for(lambda: self.stop_event is not None, what="collector loop")
        # subscribed before the test's clients connect: their CONNS events (the peak) are not missed
        wait_for(self.collector.ready.is_set, timeout=30, what="the collector's subscriptions")
        return self

    def stop(self):
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=30)
        from django.db import connection

        connection.close()


def _route_has_interest(monitoring_url: str, subject: str) -> bool:
    """The publisher's node knows the remote subscription (it came over the route), from its /routez."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{monitoring_url}/routez?subs=1", timeout=1) as response:
        routes = json.load(response).get("routes") or []
    return any(subject in (r.get("subscriptions_list") or []) for r in routes)


def _traffic(pub_node, sub_node, creds: str, *, n: int = N, m: int = M) -> int:
    """A subscriber on one node and a publisher on another exchange n messages of m bytes; returns how many
    the subscriber got. Nothing else is published in the account, so the ground truth is exactly n and n*m."""
    from broker_gateway import nats_client

    async def main() -> int:
        sub_nc = await nats_client.connect_creds(sub_node.client_url, creds, name="sub")
        got = 0
        done = asyncio.Event()

        async def cb(msg):
            nonlocal got
            got += 1
            if got == n:
                done.set()

        await sub_nc.subscribe("metered.x", cb=cb)
        await sub_nc.flush()
        for _ in range(200):
            if await asyncio.to_thread(_route_has_interest, pub_node.monitoring_url, "metered.x"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the subscription never reached the publisher's node")
        pub_nc = await nats_client.connect_creds(pub_node.client_url, creds, name="pub")
        payload = b"x" * m
        for _ in range(n):
            await pub_nc.publish("metered.x", payload)
        await pub_nc.flush()
        await asyncio.wait_for(done.wait(), 10)
        await pub_nc.close()
        await sub_nc.close()
        return got

    return asyncio.run(main())


def _usage_requests(url: str, creds: str, nosy_creds: str, target: str):
    import json

    import nats.errors

    from broker_gateway import nats_client

    async def main():
        nc = await nats_client.connect_creds(url, creds, name="asker")
        own = json.loads((await nc.request("ngs.usage", b"", timeout=5)).data)
        bad = json.loads((await nc.request("ngs.usage", b"2h", timeout=5)).data)
        await nc.close()
        nosy = await nats_client.connect_creds(url, nosy_creds, name="nosy")
        nosy_own = json.loads((await nosy.request("ngs.usage", b"1h", timeout=5)).data)
        try:
            await nosy.request(f"ngs.usage.{target}", b"", timeout=1)
            peek = "answered"
        except nats.errors.NoRespondersError:
            peek = "refused: no responders (the account imports nothing under that subject)"
        except nats.errors.TimeoutError:
            peek = "refused: unanswered"
        finally:
            await nosy.close()
        return own, bad, nosy_own, peek

    return asyncio.run(main())


def test_route_traffic_is_counted_once_as_sent_and_received(fleet2, team):
    from django.utils import timezone

    from accounts_service.services import account_create, usage_service_ensure, user_create, user_creds_get
    from billing.models import Plan
    from billing.selectors import usage_totals
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import running_node_urls

    usage_service_ensure()  # the platform's ngs.usage export: new accounts import it at creation
    Plan.objects.filter(name="free").update(base_price_cents=100_000)  # a price, so the bill says something
    account = account_create(actor=PLATFORM, team=team, name="metered", plan="free")
    other = account_create(actor=PLATFORM, team=team, name="nosy", plan="free")
    fleet_reconcile()
    user = user_create(actor=PLATFORM, account=account, name="app")
    creds = user_creds_get(user=user)
    collector = CollectorThread(running_node_urls()).start()
    try:
        assert _traffic(fleet2[0], fleet2[1], creds) == N

        def counted():
            totals = usage_totals(account_public_key=account.public_key, start=timezone.now().replace(minute=0),
                                  end=timezone.now())
            return totals if totals["sent_msgs"] >= N and totals["received_msgs"] >= N else None

        totals = wait_for(counted, timeout=15, what="the ledger to count the traffic")
        # Over NATS: the account's own creds ask ngs.usage and get the same numbers; asking for another
        # account's usage by its key is refused by the servers (no import covers it).
        nosy_creds = user_creds_get(user=user_create(actor=PLATFORM, account=other, name="nosy"))
        answers = _usage_requests(fleet2[1].client_url, creds, nosy_creds, account.public_key)
    finally:
        collector.stop()
    own, bad_window, nosy_own, nosy_peek = answers
    assert own["account"] == account.public_key and own["window"] == "24h" and own["plan"] == "free"
    # ngs.usage requests and their answers are the account's traffic too: a poll may already have seen the
    # first request (0 bytes) and its answer when the answer is computed.
    assert N <= own["sent"]["msgs"] <= N + 1 and own["sent"]["bytes"] == N * M
    assert N <= own["received"]["msgs"] <= N + 1 and own["received"]["bytes"] >= N * M
    assert own["quota"]["data_bytes"] == 1024**3 and own["quota"]["used_bytes"] >= 2 * N * M
    assert set(own["connections"]) == {"current", "peak", "leafnodes"} and own["connections"]["peak"] >= 1
    assert "error" in bad_window and "window must be one of" in bad_window["error"]
    assert nosy_own["account"] == other.public_key and nosy_own["sent"]["msgs"] == 0
    assert nosy_peek.startswith("refused")
    # The month's bill rides along: the plan's price for the seconds held so far, and the estimate to the month's
    # end, exactly what billing computes for the moment of the answer (only the base price is priced here, so the
    # traffic that followed the answer changes nothing).
    from billing.bills import account_bill

    for answer in (own, nosy_own):
        at = datetime.datetime.fromisoformat(answer["end"].replace("Z", "+00:00"))
        bill, _ = account_bill(account_public_key=answer["account"], now=at)
        assert answer["bill"] == {"to_date": bill.to_date_cents, "estimate": bill.estimate_cents,
                                  "currency": "USD"}, answer
    assert own["bill"]["estimate"] > own["bill"]["to_date"] >= 0
    assert (totals["sent_msgs"], totals["sent_bytes"]) == (N, N * M)
    assert (totals["received_msgs"], totals["received_bytes"]) == (N, N * M)

    # The REST API answers the same numbers to a member of the team, and a 404 to anyone else.
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from accounts_service.services import team_member_add

    member = get_user_model().objects.create_user(username="m@example.com", email="m@example.com", password="x")
    team_member_add(team=team, user=member)
    api = APIClient()
    api.force_authenticate(member)
    doc = api.get(f"/api/v1/accounts/{account.public_key}/usage?window=1h").json()
    assert doc["account"] == account.public_key and doc["window"] == "1h" and doc["plan"] == "free"
    # The collector polls once more as it stops, so the ledger now also holds the account's two ngs.usage
    # requests (0 and 2 bytes) and the two answers delivered to it.
    assert doc["sent"] == {"msgs": N + 2, "bytes": N * M + 2}
    assert doc["received"]["msgs"] == N + 2 and doc["received"]["bytes"] > N * M
    assert doc["quota"] == {"data_bytes": 1024**3, "used_bytes": doc["sent"]["bytes"] + doc["received"]["bytes"]}
    assert set(doc["bill"]) == {"to_date", "estimate", "currency"} and doc["bill"]["estimate"] >= own["bill"]["to_date"]
    assert api.get(f"/api/v1/accounts/{account.public_key}/usage?window=2h").status_code == 400
    stranger = get_user_model().objects.create_user(username="s@example.com", email="s@example.com", password="x")
    api.force_authenticate(stranger)
    assert api.get(f"/api/v1/accounts/{account.public_key}/usage").status_code == 404


def test_collector_restarts_and_gaps_lose_nothing(fleet2, team):
    """Traffic while the collector runs, while it is down, and after a new one starts: exactly all of it,
    because the ledger keeps each node's last counters and the next poll bills the difference."""
    from django.utils import timezone

    from accounts_service.services import account_create, user_create, user_creds_get
    from billing.selectors import usage_totals
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import running_node_urls

    account = account_create(actor=PLATFORM, team=team, name="steady", plan="free")
    fleet_reconcile()
    creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))
    urls = running_node_urls()

    first = CollectorThread(urls).start()
    try:
        assert _traffic(fleet2[0], fleet2[1], creds, n=100) == 100
    finally:
        first.stop()
    assert _traffic(fleet2[1], fleet2[0], creds, n=100) == 100  # no collector at all
    second = CollectorThread(urls).start()
    try:
        assert _traffic(fleet2[0], fleet2[1], creds, n=100) == 100
    finally:
        second.stop()  # its last poll bills everything counted so far
    now = timezone.now()
    totals = usage_totals(account_public_key=account.public_key, start=now - datetime.timedelta(hours=1), end=now)
    assert (totals["sent_msgs"], totals["sent_bytes"]) == (300, 300 * M)
    assert (totals["received_msgs"], totals["received_bytes"]) == (300, 300 * M)


def test_quota_cycle_warns_suspends_and_an_upgrade_restores(fleet2, team):
    """Warn at 80/90/100 %, suspend past the allowance of a plan without overage (new connections refused on
    the real nodes), and restore on upgrade."""
    import nats.errors
    from django.contrib.auth import get_user_model
    from django.core import mail

    from accounts_service.models import TeamMembership
    from accounts_service.services import account_create, account_plan_set, user_create, user_creds_get
    from billing.models import Plan, QuotaNotice
    from billing.quotas import quota_evaluate
    from broker_gateway import nats_client
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import running_node_urls

    Plan.objects.filter(name="free").update(data_bytes=30_000)  # the traffic below is 40,000 bytes
    owner = get_user_model().objects.create_user(username="o@example.com", email="o@example.com", password="x")
    TeamMembership.objects.create(team=team, user=owner, role=TeamMembership.Role.OWNER)
    account = account_create(actor=PLATFORM, team=team, name="chatty", plan="free")
    fleet_reconcile()
    creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))
    collector = CollectorThread(running_node_urls()).start()
    try:
        assert _traffic(fleet2[0], fleet2[1], creds) == N
    finally:
        collector.stop()

    result = quota_evaluate(account=account)
    assert result["notices"] == [80, 90, 100] and result["suspended"] is True
    assert quota_evaluate(account=account)["notices"] == []  # once per period
    assert QuotaNotice.objects.filter(account_public_key=account.public_key).count() == 3
    assert [m.to for m in mail.outbox[-3:]] == [["o@example.com"]] * 3
    assert "100% of its monthly data" in mail.outbox[-1].subject
    fleet_reconcile()

    async def try_connect() -> str:
        try:
            nc = await nats_client.connect_creds(fleet2[0].client_url, creds)
        except (nats.errors.Error, OSError) as exc:
            return f"refused: {exc}"
        await nc.close()
        return "connected"

    refused = asyncio.run(try_connect())
    assert "maximum account active connections exceeded" in refused, refused

    account_plan_set(actor=PLATFORM, account=account, plan="developer")  # billing re-evaluates the quota on commit
    account.refresh_from_db()
    assert account.suspended_at is None and account.plan == "developer" and account.conn == 250
    fleet_reconcile()
    assert asyncio.run(try_connect()) == "connected"


def test_jetstream_storage_is_metered_from_the_nodes(fleet2, team):
    """A replicated stream on the real clustered nodes: the collector's JSZ polls see every replica's bytes
    (the stream's own state times its replicas; each server reports the account's cluster-wide usage, so it is
    counted once, not once per server) and bill GiB-hours over time; ngs.usage reports both."""
    import json

    from django.db.models import Sum

    from accounts_service.services import account_create, usage_service_ensure, user_create, user_creds_get
    from billing.models import AccountStorage, UsageHour
    from broker_gateway import nats_client
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import running_node_urls

    usage_service_ensure()
    account = account_create(actor=PLATFORM,
                             team=team, name="streams", plan="free")  # the free plan has 256 MiB of disk
    fleet_reconcile()
    creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))

    async def fill() -> int:
        nc = await nats_client.connect_creds(fleet2[0].client_url, creds, name="js")
        js = nc.jetstream()
        for _ in range(100):  # the new account's JetStream may take a moment to be enabled cluster-wide
            try:
                await js.add_stream(name="ORDERS", subjects=["orders.>"], num_replicas=2)
                break
            except Exception:
                await asyncio.sleep(0.1)
        for i in range(50):
            await js.publish("orders.new", b"o" * 1000)
        info = await js.stream_info("ORDERS")
        await nc.close()
        return info.state.bytes

    stream_bytes = asyncio.run(fill())
    assert stream_bytes > 50 * 1000
    collector = CollectorThread(running_node_urls(), poll_seconds=0.3).start()
    try:
        def stored():
            row = AccountStorage.objects.filter(account_public_key=account.public_key).first()
            return row if row is not None and row.bytes == 2 * stream_bytes else None

        wait_for(stored, timeout=20, what="both replicas' bytes in the ledger")

        def billed():
            seconds = UsageHour.objects.filter(account_public_key=account.public_key).aggregate(
                n=Sum("storage_byte_seconds"))["n"] or 0
            return seconds if seconds >= 2 * stream_bytes else None  # at least a second of both replicas

        wait_for(billed, timeout=20, what="storage byte-seconds")

        async def ask():
            nc = await nats_client.connect_creds(fleet2[1].client_url, creds, name="asker")
            answer = json.loads((await nc.request("ngs.usage", b"1h", timeout=5)).data)
            await nc.close()
            return answer

        doc = asyncio.run(ask())
    finally:
        collector.stop()
    assert doc["jetstream"]["storage_bytes"] == 2 * stream_bytes
    assert doc["jetstream"]["gib_hours"] > 0
