"""Measured export use against ground truth: real clustered nodes, a publisher's service and stream exports imported
by two other teams, the real export meter (SUBSZ and CONNZ over the system account)."""

from __future__ import annotations

import asyncio

import pytest

from accounts_service.rights import PLATFORM
from tests.fleet import route_interest_wait, running_fleet
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def use(exporter, importer, kind: str) -> int:
    from django.db.models import Sum

    from billing.models import ExportUseHour

    rows = ExportUseHour.objects.filter(exporter_public_key=exporter.public_key,
                                        importer_public_key=importer.public_key, kind=kind)
    return rows.aggregate(n=Sum("msgs"))["n"] or 0


@pytest.fixture
def world(operator_setup, tmp_path, team, other_team):
    from accounts_service.services import (
        account_create,
        export_create,
        import_create,
        team_create,
        usage_service_ensure,
        user_create,
        user_creds_get,
    )
    from broker_gateway.propagation import fleet_reconcile

    usage_service_ensure()
    third = team_create(name="third", actor=PLATFORM)
    with running_fleet(2, tmp_path / "fleet") as (nodes, _):
        pub = account_create(actor=PLATFORM, team=team, name="weather", plan="free")
        export_create(account=pub, actor=PLATFORM, name="now", subject="weather.*", type="service")
        export_create(account=pub, actor=PLATFORM, name="feed", subject="feed.>", type="stream")
        accounts = {"pub": pub}
        for name, owner in (("a", other_team), ("b", third), ("own", team)):  # "own": the publisher's own team
            acc = account_create(actor=PLATFORM, team=owner, name=name, plan="free")
            import_create(account=acc, actor=PLATFORM, exporter_public_key=pub.public_key, subject="weather.now")
            import_create(account=acc, actor=PLATFORM, exporter_public_key=pub.public_key, subject="feed.>")
            accounts[name] = acc
        fleet_reconcile()
        creds = {name: user_creds_get(user=user_create(actor=PLATFORM, account=acc, name="app"))
                 for name, acc in accounts.items()}
        yield {"nodes": nodes, "accounts": accounts, "creds": creds}


async def looped(node1, node2, creds, meter, counted) -> None:
    import threading

    from broker_gateway import nats_client

    sub = await nats_client.connect_creds(node2.client_url, creds["a"], name="a-loop")
    got = asyncio.Event()
    seen = []

    async def cb(msg):
        seen.append(msg)
        if len(seen) == 4:
            got.set()

    await sub.subscribe("feed.>", cb=cb)
    await sub.flush()
    await route_interest_wait((node1, "feed.>"))
    pub = await nats_client.connect_creds(node1.client_url, creds["pub"], name="pub-loop")
    for _ in range(4):
        await pub.publish("feed.loop", b"y" * 10)
    await pub.flush()
    await asyncio.wait_for(got.wait(), 10)
    stop = threading.Event()
    loop = threading.Thread(target=meter.run, args=(stop,), kwargs={"poll_seconds": 0.2}, daemon=True)
    loop.start()
    try:
        await asyncio.to_thread(wait_for, counted, timeout=10, what="the meter's loop to count the deliveries")
    finally:
        stop.set()
        await asyncio.to_thread(loop.join, 10)
    await pub.close()
    await sub.close()


async def resigned_between(node, creds: str, account, meter) -> int:
    from accounts_service.services import account_resign
    from broker_gateway import nats_client
    from broker_gateway.propagation import fleet_reconcile

    # The responder of the first phases is gone: these requests reach the import and are answered by nobody (a
    # request counts whether or not it is answered).
    nc = await nats_client.connect_creds(node.client_url, creds, name="a-again")
    for _ in range(2):
        await nc.publish("weather.now", b"?")
    await nc.flush()
    await asyncio.to_thread(lambda: (account_resign(account=type(account).objects.get(pk=account.pk)),
                                     fleet_reconcile()))
    for _ in range(3):
        await nc.publish("weather.now", b"?")
    await nc.flush()
    added = await asyncio.to_thread(meter.poll)
    await nc.close()
    return added


def test_requests_and_deliveries_through_imports_are_counted_exactly(world):
    from billing.models import ExportUseCounter
    from broker_gateway import nats_client
    from broker_gateway.export_meter import ExportMeter
    from broker_gateway.selectors import running_node_urls

    node1, node2 = world["nodes"]
    acc, creds = world["accounts"], world["creds"]
    meter = ExportMeter(running_node_urls())

    async def traffic(phase: int):
        responder = await nats_client.connect_creds(node1.client_url, creds["pub"], name="responder")

        async def answer(msg):
            await msg.respond(b"sunny")

        await responder.subscribe("weather.*", cb=answer)
        a_req = await nats_client.connect_creds(node2.client_url, creds["a"], name="a-requester")
        # A client of the importer subscribing to the import's own subject: its count is not the import's.
        async def nothing(msg):
            pass

        await a_req.subscribe("weather.now", cb=nothing)
        b_req = await nats_client.connect_creds(node1.client_url, creds["b"], name="b-requester")
        own_req = await nats_client.connect_creds(node2.client_url, creds["own"], name="own-requester")
        got = {"a": 0, "b": 0}
        done = asyncio.Event()

        def counter(name, want):
            async def cb(msg):
                got[name] += 1
                if got["a"] == want["a"] and got["b"] == want["b"]:
                    done.set()
            return cb

        want = {"a": 2 * 5, "b": 5}
        a_subs = await nats_client.connect_creds(node2.client_url, creds["a"], name="a-feed")
        for _ in range(2):  # two subscriptions: each delivery through the import counts
            await a_subs.subscribe("feed.>", cb=counter("a", want))
        b_subs = await nats_client.connect_creds(node2.client_url, creds["b"], name="b-feed")
        await b_subs.subscribe("feed.>", cb=counter("b", want))
        for nc in (responder, a_req, b_req, own_req, a_subs, b_subs):
            await nc.flush()
        await route_interest_wait((node2, "weather.*"), (node1, "feed.>"))
        for nc, n in ((a_req, 7), (b_req, 4), (own_req, 3)):
            for _ in range(n * phase):
                assert (await nc.request("weather.now", b"?", timeout=5)).data == b"sunny"
        for _ in range(5):
            await responder.publish("feed.today", b"x" * 40)
        await responder.flush()
        await asyncio.wait_for(done.wait(), 10)
        return [responder, a_req, b_req, own_req, a_subs, b_subs]

    async def phase(n: int):
        conns = await traffic(n)
        added = await asyncio.to_thread(meter.poll)  # while every subscription is alive
        again = await asyncio.to_thread(meter.poll)
        for nc in conns:
            await nc.close()
        return added, again

    try:
        added, again = asyncio.run(phase(1))
        # 7 + 4 + 3 requests through service imports; 10 + 5 stream deliveries, and "own" subscribed to nothing.
        assert (added, again) == (7 + 4 + 3 + 10 + 5, 0)
        assert use(acc["pub"], acc["a"], "service") == 7
        assert use(acc["pub"], acc["b"], "service") == 4
        assert use(acc["pub"], acc["own"], "service") == 3  # measured; the payouts leave the own team out
        assert use(acc["pub"], acc["a"], "stream") == 10
        assert use(acc["pub"], acc["b"], "stream") == 5
        # The importer's own subscription on weather.now counted 7 too, on another cid: not an import.
        assert ExportUseCounter.objects.filter(subject="weather.now", msgs=7).count() == 1

        # A new round: the services' subscriptions live on, so they add exactly the new requests; the stream
        # subscriptions are new ones (the clients reconnected) and count from zero.
        added, again = asyncio.run(phase(2))
        assert (added, again) == (2 * (7 + 4 + 3) + 10 + 5, 0)
        assert use(acc["pub"], acc["a"], "service") == 3 * 7
        assert use(acc["pub"], acc["b"], "stream") == 2 * 5

        # The meter's own loop (as `manage.py collector` runs it on a thread) picks up what the servers count.
        before = use(acc["pub"], acc["a"], "stream")
        asyncio.run(looped(node1, node2, creds, meter, lambda: use(acc["pub"], acc["a"], "stream") == before + 4))
        assert use(acc["pub"], acc["a"], "stream") == before + 4

        # The limit: a new JWT of the importer re-creates its service imports on every server, so requests sent
        # since the last poll are not counted (2 here); those after it are (3).
        added = asyncio.run(resigned_between(node2, creds["a"], acc["a"], meter))
        assert added == 3
        assert use(acc["pub"], acc["a"], "service") == 3 * 7 + 3
    finally:
        meter.close()
