"""Regions joined by gateways into one supercluster, with real nats-server nodes: pushes acknowledged by every
node of every region, messages and service requests that cross regions, and what a single node's push reaches.

What these tests rely on, read in nats-server's code (server/gateway.go, server/events.go):
- a claims update published on ``$SYS.REQ.CLAIMS.UPDATE`` reaches every server of every region: the system
  account's subscriptions are in interest-only mode across gateways, and a message a server receives over a
  gateway is delivered to its own subscribers and forwarded over its routes; each server answers from its own
  ``server.name``, so the control plane counts acknowledgements per node across the supercluster;
- a gateway to a server's own region in its list is skipped (``if rgo.Name == gateway.name``), so every region
  can share one gateway list;
- replies cross gateways on ``_GR_.`` prefixed reply subjects, so a requester in one region gets the answer of a
  responder in another.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from accounts_service.rights import PLATFORM
from accounts_service.services import account_create, export_create, import_create, user_create, user_creds_get
from tests.fleet import running_supercluster
from tests.integration.test_nats_trust_chain import (
    DEADLINE,
    REQUEST_TIMEOUT,
    Inbox,
    close_all,
    echo_responder,
    open_conn,
    run,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


@pytest.fixture
def supercluster(operator_setup, tmp_path):
    with running_supercluster({"us-east": 3, "eu-west": 3}, tmp_path / "fleet") as (regions, _sup):
        yield regions


def _in_sync_everywhere(account, nodes: int = 6) -> bool:
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import account_propagation

    status = account_propagation(account=account)
    if not status["in_sync"]:
        fleet_reconcile(quiet=True)
        status = account_propagation(account=account)
    return status["in_sync"] and status["live_on"] == nodes


def test_push_is_acknowledged_by_every_node_of_every_region(supercluster, team):
    from broker_gateway.propagation import account_jwt_send, accounts_push

    account = account_create(actor=PLATFORM, team=team, name="orders")
    wait_for(lambda: _in_sync_everywhere(account), what="the account on all 6 nodes")
    report = accounts_push(account_ids=[account.pk])
    assert report.complete == 1 and len(report.nodes) == 6, report
    # One push sent to a single node of one region is answered by all six servers.
    east = supercluster["us-east"][0]
    result = account_jwt_send(account=account, url=east.client_url, expect=6)
    assert result.ok and sorted(r["server"]["name"] for r in result.replies) == sorted(
        n.name for nodes in supercluster.values() for n in nodes)
    assert {r["server"]["cluster"] for r in result.replies} == {"us-east", "eu-west"}
    # Without --expect, the push counts the servers itself (its ROUTEZ, its GATEWAYZ and each other region's
    # ROUTEZ) and returns as soon as all six answered, well before the timeout.
    started = time.monotonic()
    counted = account_jwt_send(account=account, url=supercluster["eu-west"][1].client_url, timeout=20)
    assert counted.ok and len(counted.replies) == 6 and time.monotonic() - started < 10


def test_messages_and_service_requests_cross_regions(supercluster, team, other_team):
    east, west = supercluster["us-east"][1], supercluster["eu-west"][2]
    exporter = account_create(actor=PLATFORM, team=team, name="weather")
    importer = account_create(actor=PLATFORM, team=other_team, name="app")
    export_create(actor=PLATFORM, account=exporter, name="forecast", subject="weather.forecast", type="service")
    import_create(actor=PLATFORM, account=importer, exporter_public_key=exporter.public_key,
                  subject="weather.forecast")
    exporter.refresh_from_db()
    importer.refresh_from_db()
    wait_for(lambda: _in_sync_everywhere(exporter) and _in_sync_everywhere(importer), what="both accounts on all nodes")
    pub = user_creds_get(user=user_create(actor=PLATFORM, account=exporter, name="pub", pub_allow=[">"],
                                          sub_allow=[">"], allow_responses=True))
    cli = user_creds_get(user=user_create(actor=PLATFORM, account=importer, name="cli",
                                          pub_allow=["weather.forecast"], sub_allow=["_INBOX.>"]))

    async def body() -> None:
        sender = await open_conn(east.client_url, pub, name="east-pub")
        receiver = await open_conn(west.client_url, pub, name="west-sub")
        requester = await open_conn(east.client_url, cli, name="east-requester")
        try:
            inbox = Inbox()
            await receiver.nc.subscribe("orders.>", cb=inbox.cb)
            await receiver.nc.flush()
            # Interest crosses the gateway asynchronously: publish until the first message arrives.
            deadline = asyncio.get_running_loop().time() + DEADLINE * 3
            while not inbox.msgs:
                await sender.nc.publish("orders.new", b"hello from us-east")
                await sender.nc.flush()
                await receiver.nc.flush()  # a round trip to the receiver's server: what crossed has been delivered
                assert asyncio.get_running_loop().time() < deadline, "no message crossed from us-east to eu-west"
            assert inbox.msgs[0].data == b"hello from us-east"
            await echo_responder(receiver, "weather.forecast")  # answered in eu-west, asked from us-east
            while True:
                try:
                    reply = await requester.nc.request("weather.forecast", b"paris", timeout=REQUEST_TIMEOUT)
                    break
                except Exception:
                    assert asyncio.get_running_loop().time() < deadline, "the service did not answer across regions"
            assert reply.data == b"echo:paris"
        finally:
            await close_all(sender, receiver, requester)

    run(body)


def test_jetstream_works_in_the_default_topology_with_a_region_of_one_node(operator_setup, tmp_path, team):
    """The embedded default (us-east=2, eu-west=1): JetStream runs clustered across the supercluster, so a stream
    created from the lone eu-west node is placed and answered, and a client in us-east reads it back."""
    from broker_gateway import nats_client

    with running_supercluster({"us-east": 2, "eu-west": 1}, tmp_path / "fleet") as (regions, _sup):
        account = account_create(actor=PLATFORM, team=team, name="js", plan="free")
        wait_for(lambda: _in_sync_everywhere(account, nodes=3), what="the account on all 3 nodes")
        creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))

        async def body() -> None:
            west = await nats_client.connect_creds(regions["eu-west"][0].client_url, creds, name="js-west")
            east = await nats_client.connect_creds(regions["us-east"][0].client_url, creds, name="js-east")
            try:
                js = west.jetstream(timeout=5)
                deadline = asyncio.get_running_loop().time() + 30
                while True:  # the meta leader is elected once the three servers see each other
                    try:
                        await js.add_stream(name="ORDERS", subjects=["orders.>"])
                        break
                    except Exception:
                        assert asyncio.get_running_loop().time() < deadline, "no JetStream meta leader in 30 s"
                        await west.flush()
                ack = await js.publish("orders.1", b"first")
                assert ack.stream == "ORDERS" and ack.seq == 1
                msg = await east.jetstream(timeout=5).get_msg("ORDERS", 1)
                assert msg.data == b"first"
            finally:
                await west.close()
                await east.close()

        run(body)
