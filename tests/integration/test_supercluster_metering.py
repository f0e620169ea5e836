"""Metering against ground truth across regions: a publisher in us-east, a subscriber in eu-west and another in
us-east on another node, so every message crosses a route and a gateway (and, in eu-west, possibly a route again);
real nodes, real clients, the real collector. The ledger, ``ngs.usage`` and the REST API count each message once
as sent and once per delivery as received.

What it rests on, read in nats-server (server/events.go ``Account.statz``, server/gateway.go
``sendMsgToGateways`` and ``processInboundGatewayMsg``, server/route.go ``processInboundRoutedMsg``,
server/client.go ``processMsgResults``): a server counts a message taken in over a gateway in ``received`` and in
``received.gateways``, one sent over a gateway in ``sent`` and ``sent.gateways``, and the same for routes, so
``broker_gateway/events.py client_counters`` (the total minus what crossed routes, gateways and leafnodes) leaves
only what the server exchanged with its own clients.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from accounts_service.rights import PLATFORM
from tests.fleet import running_supercluster
from tests.integration.test_metering import CollectorThread
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

N, M = 200, 100  # messages, bytes each
SUBJECT = "metered.x"
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def supercluster(operator_setup, tmp_path):
    with running_supercluster({"us-east": 2, "eu-west": 2}, tmp_path / "fleet") as (regions, _sup):
        yield regions


def _get(url: str) -> dict:
    with _HTTP.open(url, timeout=1) as response:
        return json.load(response)


def _interest_known(pub_node, account: str, region: str) -> bool:
    """The publisher's node knows the subscription of the other region (its outbound gateway to ``region`` has the
    account in interest-only mode with a subscription) and of its own region's other node (over the route)."""
    gatewayz = _get(f"{pub_node.monitoring_url}/gatewayz?accs=1&gw_name={region}")
    outbound = (gatewayz.get("outbound_gateways") or {}).get(region) or {}
    accounts = outbound.get("accounts") or []
    over_gateway = any(a.get("name") == account and a.get("interest_mode") == "Interest-Only"
                       and a.get("num_subs", 0) >= 1 for a in accounts)
    routes = _get(f"{pub_node.monitoring_url}/routez?subs=1").get("routes") or []
    over_route = any(SUBJECT in (r.get("subscriptions_list") or []) for r in routes)
    return over_gateway and over_route


def _traffic(pub_node, west_node, east_node, creds: str, account: str) -> tuple[int, int]:
    """n messages of m bytes from us-east to a subscriber in eu-west and one on the other us-east node; nothing else
    is published in the account before, so the ground truth is n sent, 2n received."""
    from broker_gateway import nats_client

    async def main() -> tuple[int, int]:
        got = {"west": 0, "east": 0}
        done = {k: asyncio.Event() for k in got}

        def counter(key):
            async def cb(msg) -> None:
                got[key] += 1
                if got[key] == N:
                    done[key].set()
            return cb

        west = await nats_client.connect_creds(west_node.client_url, creds, name="west-sub")
        east = await nats_client.connect_creds(east_node.client_url, creds, name="east-sub")
        await west.subscribe(SUBJECT, cb=counter("west"))
        await east.subscribe(SUBJECT, cb=counter("east"))
        await west.flush()
        await east.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 15
        while not await asyncio.to_thread(_interest_known, pub_node, account, west_node.region):
            assert loop.time() < deadline, "the subscriptions never reached the publisher's node"
            await asyncio.sleep(0.05)
        pub = await nats_client.connect_creds(pub_node.client_url, creds, name="east-pub")
        payload = b"x" * M
        for _ in range(N):
            await pub.publish(SUBJECT, payload)
        await pub.flush()
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())), 10)
        for nc in (pub, west, east):
            await nc.close()
        return got["west"], got["east"]

    return asyncio.run(main())


def _usage_request(url: str, creds: str) -> dict:
    from broker_gateway import nats_client

    async def main() -> dict:
        nc = await nats_client.connect_creds(url, creds, name="asker")
        try:
            return json.loads((await nc.request("ngs.usage", b"", timeout=5)).data)
        finally:
            await nc.close()

    return asyncio.run(main())


def test_traffic_across_a_gateway_and_routes_is_counted_once(supercluster, team):
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.test import APIClient

    from accounts_service.services import (
        account_create,
        team_member_add,
        usage_service_ensure,
        user_create,
        user_creds_get,
    )
    from billing.selectors import usage_totals
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import running_node_urls

    east, west = supercluster["us-east"], supercluster["eu-west"]
    usage_service_ensure()  # the platform's ngs.usage export: new accounts import it at creation
    account = account_create(actor=PLATFORM, team=team, name="metered", plan="free")
    fleet_reconcile()
    creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))
    # The collector and its ngs.usage responder connect to us-east: the usage request below, asked in eu-west,
    # crosses the gateway too.
    collector = CollectorThread([n.client_url for n in east] or running_node_urls()).start()
    try:
        assert _traffic(east[0], west[1], east[1], creds, account.public_key) == (N, N)

        def counted():
            totals = usage_totals(account_public_key=account.public_key, start=timezone.now().replace(minute=0),
                                  end=timezone.now())
            return totals if totals["sent_msgs"] >= N and totals["received_msgs"] >= 2 * N else None

        wait_for(counted, timeout=15, what="the ledger to count the traffic")
        own = _usage_request(west[0].client_url, creds)
    finally:
        collector.stop()  # its last poll bills everything the nodes counted so far

    # The ledger: exactly N sent, 2N received (one delivery per subscriber), plus the one ngs.usage request (no
    # payload) and its answer, which the final poll counted too.
    now = timezone.now()
    totals = usage_totals(account_public_key=account.public_key, start=now.replace(minute=0), end=now)
    assert (totals["sent_msgs"], totals["sent_bytes"]) == (N + 1, N * M), totals
    answer_bytes = totals["received_bytes"] - 2 * N * M
    assert totals["received_msgs"] == 2 * N + 1 and answer_bytes > 0, totals

    # ngs.usage, asked in eu-west and answered from us-east: the same numbers up to what the poll had seen when
    # it was computed (the request itself, and perhaps its own answer, are counted after).
    assert own["account"] == account.public_key and own["plan"] == "free"
    assert N <= own["sent"]["msgs"] <= N + 1 and own["sent"]["bytes"] == N * M, own
    assert own["received"]["msgs"] in (2 * N, 2 * N + 1) and own["received"]["bytes"] >= 2 * N * M, own

    # The REST API answers exactly the ledger.
    member = get_user_model().objects.create_user(username="m@example.com", email="m@example.com", password="x")
    team_member_add(team=team, user=member)
    api = APIClient()
    api.force_authenticate(member)
    doc = api.get(f"/api/v1/accounts/{account.public_key}/usage?window=1h").json()
    assert doc["sent"] == {"msgs": N + 1, "bytes": N * M}, doc
    assert doc["received"] == {"msgs": 2 * N + 1, "bytes": 2 * N * M + answer_bytes}, doc
    assert doc["quota"]["used_bytes"] == 3 * N * M + answer_bytes
