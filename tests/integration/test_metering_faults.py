"""Metering under faults, against ground truth: real clustered nodes under the real supervisor, real tenant
clients, the real collector. Nothing is mocked: faults are real signals to real nats-server processes.

What a server counted and never reported is lost with it. nats-server keeps its account counters in memory
(they restart from zero with a new server id) and reports them only in system events and STATZ replies, so:

- a SIGKILLed server's counters since its last report (the collector's last STATZ poll or CONNS event) are
  unobservable, and so are the DISCONNECT events (connection-seconds) of its clients;
- a server in lame duck mode reports **nothing** from the moment it enters it: nats-server publishes its
  ``$SYS.SERVER.<id>.LAMEDUCK`` event as the *last* message of its internal send loop (``events.go``,
  ``sendLDMShutdownEventLocked`` pushes it with ``last=true``), so it neither answers STATZ nor sends the
  CONNS / DISCONNECT events of the clients it then closes (observed with 2.15.1). Its HTTP monitoring stays up,
  so the supervisor reads its ``/accstatz`` on every tick until it exits (the third test).

The tests make each fault land where it is observable and prove the ledger exact around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import random
import signal
import threading
import urllib.request

import pytest

from accounts_service.rights import PLATFORM
from tests.fleet import running_fleet
from tests.integration.test_metering import CollectorThread
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

SUBJECT = "metered.faults"
M = 100  # bytes a message
CONVERGE = 20.0  # only bounds a failure on a busy 2-CPU machine; not an expected duration
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never via a proxy


# ------------------------------------------------------------------------------------------------
# Tenant clients and a recorder, on one event loop thread of their own
# ------------------------------------------------------------------------------------------------


class LoopThread:
    """An event loop on its own thread: its connections stay up (and reconnect by themselves) while the test's
    thread kills and restarts nodes and waits on the database."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tenant-loop", daemon=True)
        self.thread.start()
        self.connections: list = []

    def run(self, coro, *, timeout: float = CONVERGE):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def close_all() -> None:
            for nc in self.connections:
                with contextlib.suppress(Exception):
                    await nc.close()

        with contextlib.suppress(Exception):
            self.run(close_all(), timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class Client:
    """One tenant connection that reconnects to any node when its own dies (what a real client does). A
    subscriber counts what is delivered to it: the ground truth of ``received``."""

    def __init__(self, loop: LoopThread, name: str) -> None:
        self.loop, self.name = loop, name
        self.nc = None
        self.got = self.got_bytes = 0
        self.lame_duck = threading.Event()  # the server sent INFO with "ldm": true

    def connect(self, url: str, creds: str, *, subscribe: bool = False) -> Client:
        from broker_gateway import nats_client

        async def error_cb(exc: Exception) -> None:
            pass  # refused reconnects while a node is down are expected; nats-py would log each with a traceback

        async def lame_duck_cb() -> None:
            self.lame_duck.set()

        async def on_msg(msg) -> None:
            self.got += 1
            self.got_bytes += len(msg.data)

        async def go():
            nc = await nats_client.connect_creds(url, creds, name=self.name, allow_reconnect=True,
                                                 max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                                 error_cb=error_cb, lame_duck_mode_cb=lame_duck_cb)
            self.loop.connections.append(nc)
            if subscribe:
                await nc.subscribe(SUBJECT, cb=on_msg)
            await nc.flush()
            return nc

        self.nc = self.loop.run(go())
        return self

    def burst(self, n: int, m: int = M) -> int:
        """Publish n messages of m bytes; the flush's PONG means the server took in every one of them. Returns
        the reconnect count read in the same loop step as the flush returned: if it did not change, all of
        them went to the server the client was connected to when the burst began."""

        async def go() -> int:
            payload = b"x" * m
            for _ in range(n):
                await self.nc.publish(SUBJECT, payload)
            await self.nc.flush(timeout=5)
            return self.nc.stats["reconnects"]

        return self.loop.run(go())

    @property
    def reconnects(self) -> int:
        return self.nc.stats["reconnects"]

    @property
    def port(self) -> int | None:
        return self.nc.connected_url.port if self.nc.is_connected and self.nc.connected_url else None

    def node(self) -> str:
        from broker_gateway.models import BrokerNode

        return BrokerNode.objects.get(client_port=self.port).name


class Recorder:
    """What the collector sees, captured independently: a second system-account connection with the collector's
    own user, on the same event subjects, plus ``_INBOX.>`` where the servers' STATZ replies to the collector's
    polls pass (same account, so they are delivered to every matching subscription)."""

    def __init__(self, loop: LoopThread, urls: list[str]) -> None:
        self.loop, self.urls = loop, urls
        self.messages: list[tuple[str, bytes]] = []

    def start(self) -> Recorder:
        from broker_gateway import nats_client
        from broker_gateway.collector import collector_user_ensure
        from broker_gateway.events import EVENT_SUBJECTS, STATZ_SUBJECT
        from operators.services import nonce_signer_get

        user = collector_user_ensure()

        async def on_event(msg) -> None:
            self.messages.append((msg.subject, msg.data))

        async def on_inbox(msg) -> None:
            with contextlib.suppress(ValueError):
                if "account_statz" in (json.loads(msg.data).get("data") or {}):
                    self.messages.append((STATZ_SUBJECT, msg.data))

        async def go():
            nc = await nats_client.connect(self.urls, user_jwt=user.jwt,
                                           sign_nonce=nonce_signer_get(user_seed=user.seed), name="metering-recorder")
            self.loop.connections.append(nc)
            for subject in EVENT_SUBJECTS:
                await nc.subscribe(subject, cb=on_event)
            await nc.subscribe("_INBOX.>", cb=on_inbox)
            await nc.flush()

        self.loop.run(go())
        return self

    def snapshot(self) -> list[tuple[str, bytes]]:
        return list(self.messages)  # appended on the loop thread; a copy is a consistent prefix


# ------------------------------------------------------------------------------------------------
# Ledger, nodes
# ------------------------------------------------------------------------------------------------


def ledger(account: str) -> dict:
    """The account's totals over every hour the test could have touched."""
    from django.utils import timezone

    from billing.selectors import usage_totals

    now = timezone.now()
    return usage_totals(account_public_key=account, start=now - datetime.timedelta(hours=2), end=now)


def ledger_reaches(account: str, *, sent: int, received: int, what: str) -> dict:
    """Wait until the ledger has at least this many messages each way (the caller then asserts it exact: a
    doubled count must fail, not satisfy the wait)."""

    def reached():
        totals = ledger(account)
        return totals if totals["sent_msgs"] >= sent and totals["received_msgs"] >= received else None

    try:
        return wait_for(reached, timeout=CONVERGE, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the ledger holds {ledger(account)}") from None


def assert_exact(totals: dict, *, sent: int, received: int, m: int = M) -> None:
    """The ledger's four counters are exactly the ground truth: n messages of m bytes each way."""
    held = (totals["sent_msgs"], totals["sent_bytes"], totals["received_msgs"], totals["received_bytes"])
    assert held == (sent, sent * m, received, received * m), f"ledger {held} != ground truth {sent=}, {received=}"


def node(name: str):
    from broker_gateway.models import BrokerNode

    return BrokerNode.objects.get(name=name)


def _monitor(name: str, path: str) -> dict:
    try:
        with _HTTP.open(f"{node(name).monitoring_url}{path}", timeout=1) as response:
            return json.load(response)
    except OSError:  # the node is down or restarting: nothing known there yet
        return {}


def interest(name: str, account: str) -> bool:
    """Node ``name`` would deliver SUBJECT somewhere: a local subscription of the account (/subsz lists only
    local ones) or one it learned over a route (/routez)."""
    if _monitor(name, f"/subsz?subs=1&acc={account}&test={SUBJECT}").get("total"):
        return True
    routes = _monitor(name, "/routez?subs=1").get("routes") or []
    return any(SUBJECT in (r.get("subscriptions_list") or []) for r in routes)


def server_id(name: str) -> str:
    """The id the node's running nats-server reports itself (/varz): a new one on every start."""
    return _monitor(name, "/varz").get("server_id", "")


def kill_and_wait_restarted(sup, name: str) -> str:
    """SIGKILL a node's process; wait until the supervisor restarted it and it is healthy. Its new server id."""
    from broker_gateway.models import BrokerNode

    before, old_id = node(name), server_id(name)
    os.kill(sup.pid(name), signal.SIGKILL)
    wait_for(lambda: BrokerNode.objects.filter(name=name, observed_state="healthy", restarts=before.restarts + 1)
             .exclude(pid=before.pid).exists(), timeout=CONVERGE, what=f"{name} restarted")
    return wait_for(lambda: (new := server_id(name)) != old_id and new, what=f"{name}'s new server id")


def tenant(team, name: str) -> tuple:
    """A metered account pushed to every node, and a user's creds."""
    from accounts_service.services import account_create, user_create, user_creds_get
    from broker_gateway.propagation import fleet_reconcile

    account = account_create(actor=PLATFORM, team=team, name=name, plan="developer")
    fleet_reconcile()
    return account, user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


# nats-server waits lame_duck_grace_period (10 s by default) before it closes its clients; the lame duck test
# needs only enough of it to publish a burst. Harmless elsewhere: nothing else enters lame duck mode.
LAME_DUCK_GRACE = 'lame_duck_grace_period: "2s"'


@pytest.fixture
def fleet2(operator_setup, tmp_path):
    with running_fleet(2, tmp_path / "fleet", extra_config=LAME_DUCK_GRACE) as (_, sup):
        yield sup


@pytest.fixture
def loop(fleet2):  # after the fleet: torn down before it, so clients close before their nodes stop
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def collector(fleet2):
    from broker_gateway.selectors import running_node_urls

    started = CollectorThread(running_node_urls()).start()
    # Its subscriptions are made before its first poll: once that is ingested, it misses no event.
    wait_for(lambda: started.collector.ingested, what="the collector's first poll")
    yield started
    started.stop()  # again if the test stopped it: a no-op


# ------------------------------------------------------------------------------------------------
# 1. Every real event the collector saw, replayed again and again, in any order
# ------------------------------------------------------------------------------------------------


def replay(messages: list[tuple[str, bytes]]) -> int:
    """Feed captured messages to the collector's own ingest functions, as its writer thread does; how many
    samples were new to the ledger."""
    from broker_gateway.collector import event_ingest, statz_ingest
    from broker_gateway.events import STATZ_SUBJECT

    return sum(statz_ingest(data) if subject == STATZ_SUBJECT else int(event_ingest(subject, data))
               for subject, data in messages)


def captured_for(messages: list[tuple[str, bytes]], account: str) -> tuple[dict[str, int], list[dict]]:
    """Of the captured messages about ``account``: the highest server sequence number seen per server id (a
    CONNS event or a STATZ reply carrying the account), and its DISCONNECT events."""
    from broker_gateway.events import STATZ_SUBJECT

    last: dict[str, int] = {}
    disconnects = []
    for subject, data in messages:
        doc = json.loads(data)
        server = doc.get("server") or {}
        if subject == STATZ_SUBJECT:
            carries = any(s.get("acc") == account for s in (doc.get("data") or {}).get("account_statz") or [])
        elif subject.endswith(".SERVER.CONNS"):
            carries = doc.get("acc") == account
        else:
            carries = False
            if subject.endswith(".DISCONNECT") and (doc.get("client") or {}).get("acc") == account:
                disconnects.append(doc)
        if carries:
            last[server["id"]] = max(last.get(server["id"], 0), int(server.get("seq") or 0))
    return last, disconnects


def usage_numbers(api, account: str) -> dict:
    """The numbers of the usage document, as the REST API and ngs.usage answer them (the same document)."""
    from broker_gateway.collector import usage_answer

    rest = api.get(f"/api/v1/accounts/{account}/usage?window=24h").json()
    over_nats = usage_answer(f"ngs.usage.{account}", b"24h")  # what the ngs.usage responder sends back
    numbers = {key: rest[key] for key in ("sent", "received", "connections", "quota")}
    assert numbers == {key: over_nats[key] for key in numbers}, (numbers, over_nats)
    return numbers


def test_real_events_replayed_twice_and_in_any_order_change_nothing(fleet2, loop, team):
    """Route traffic through two nodes while a recorder (the collector's own user on a second connection)
    captures every CONNECT / DISCONNECT / SERVER.CONNS event and STATZ reply the collector gets. Once the
    ledger is exact against the ground truth, feed all of it to ``event_ingest`` / ``statz_ingest`` again:
    forward, shuffled, reversed. Nothing changes: messages, bytes, connection-seconds, the usage document.
    Then wipe the account's ledger and rebuild it from the capture alone, reversed and shuffled: exact again."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from accounts_service.services import team_member_add
    from billing.metering import SampleKind
    from billing.models import MeterSample, ServerAccountCounter, UsageHour
    from broker_gateway.events import parse_time
    from broker_gateway.selectors import running_node_urls

    account, creds = tenant(team, "replayed")
    acc = account.public_key
    a, b = "node-1", "node-2"
    urls = running_node_urls()
    recorder = Recorder(loop, urls).start()  # before the collector: it misses nothing the collector gets
    collector = CollectorThread(urls).start()
    n = 200
    try:
        wait_for(lambda: collector.collector.ingested, what="the collector's first poll (it is subscribed)")
        sub = Client(loop, "sub").connect(node(b).client_url, creds, subscribe=True)
        pub = Client(loop, "pub").connect(node(a).client_url, creds)
        wait_for(lambda: interest(a, acc), what="the subscription to reach node-1 over the route")
        pub.burst(n)
        wait_for(lambda: sub.got == n, what="the traffic delivered")
        loop.run(pub.nc.close())
        loop.run(sub.nc.close())  # their DISCONNECT events carry the connection-seconds
        ledger_reaches(acc, sent=n, received=n, what="the ledger to count the traffic")
        ended = MeterSample.objects.filter(account_public_key=acc, kind=SampleKind.CONNECTION_END)
        wait_for(lambda: ended.count() == 2, what="both connections' DISCONNECT events ingested")
    finally:
        collector.stop()  # its last poll: the nodes' final counters reach the ledger (and the recorder)

    def covered():
        """The capture holds every server's last applied snapshot and every DISCONNECT the ledger ingested."""
        last, disconnects = captured_for(recorder.snapshot(), acc)
        rows = ServerAccountCounter.objects.filter(account_public_key=acc)
        return rows.exists() and len(disconnects) == 2 and all(last.get(r.server_id, -1) >= r.seq for r in rows)

    wait_for(covered, what="the recorder to hold everything the collector ingested")
    events = recorder.snapshot()
    _, disconnects = captured_for(events, acc)
    seconds = sum((parse_time(d["client"]["stop"]) - parse_time(d["client"]["start"])).total_seconds()
                  for d in disconnects)

    member = get_user_model().objects.create_user(username="m@example.com", email="m@example.com", password="x")
    team_member_add(team=team, user=member)
    api = APIClient()
    api.force_authenticate(member)

    totals = ledger(acc)
    assert_exact(totals, sent=n, received=n)
    # Connection-seconds are what the DISCONNECT events say (float sums in another order: compare to 1 µs).
    assert totals["connection_seconds"] == pytest.approx(seconds, abs=1e-6) and seconds > 0
    document = usage_numbers(api, acc)
    assert document["sent"] == {"msgs": n, "bytes": n * M} and document["received"] == {"msgs": n, "bytes": n * M}
    assert document["connections"]["current"] == 0

    rng = random.Random(20240611)
    orders = {"forward": events, "shuffled": rng.sample(events, len(events)), "reversed": events[::-1]}
    first = replay(events)  # claims what the recorder got after the collector stopped (its own disconnect)
    for name, order in orders.items():
        assert replay(order) == 0, f"a replay ({name}) was ingested again"
        assert ledger(acc) == totals, name
        assert usage_numbers(api, acc) == document, name

    # The capture alone rebuilds the account's ledger, whatever the order the samples arrive in: the newest
    # snapshot per server id decides, an older one is stale. (The hourly peak of connections is sampled at
    # ingestion, so it is not compared.)
    for name in ("reversed", "shuffled"):
        for model in (MeterSample, ServerAccountCounter, UsageHour):
            model.objects.filter(account_public_key=acc).delete()
        assert replay(orders[name]) > 0
        assert replay(orders[name]) == 0
        rebuilt = ledger(acc)
        assert_exact(rebuilt, sent=n, received=n)
        assert rebuilt["connection_seconds"] == pytest.approx(seconds, abs=1e-6), name
    print(f"\n{len(events)} captured messages; {first} new on the first replay")


# ------------------------------------------------------------------------------------------------
# 2. A node SIGKILLed while clients are connected and traffic comes in bursts
# ------------------------------------------------------------------------------------------------


def test_killed_nodes_restart_with_new_ids_and_the_ledger_stays_exact(fleet2, loop, collector, team):
    """Publisher on node-1, subscriber on node-2 (route traffic). Burst 1; once the ledger holds all of it,
    SIGKILL node-1 (the publisher's): the supervisor restarts it with a new server id and zeroed counters,
    the publisher reconnects, burst 2. Once the ledger holds that, SIGKILL node-2 (the subscriber's, and by
    then maybe the publisher's too): both reconnect, burst 3.

    Each kill lands after the ledger caught up with the traffic before it, because what a SIGKILLed server
    counted after its last report (STATZ poll or CONNS event) is lost with it: that window is unobservable,
    and so are the DISCONNECT events (connection-seconds) of its clients. What is proved: the counters
    restarting from zero under a new server id neither double nor go negative, and nothing is lost or counted
    twice across two kills and reconnections."""
    from django.db.models import Q

    from billing.models import ServerAccountCounter, UsageHour
    from billing.selectors import connections_current

    account, creds = tenant(team, "killed")
    acc = account.public_key
    a, b = "node-1", "node-2"
    old_ids = {a: server_id(a), b: server_id(b)}
    sub = Client(loop, "sub").connect(node(b).client_url, creds, subscribe=True)
    pub = Client(loop, "pub").connect(node(a).client_url, creds)
    wait_for(lambda: interest(a, acc), what="the subscription to reach node-1 over the route")

    n1, n2, n3 = 150, 120, 90
    pub.burst(n1)
    wait_for(lambda: sub.got == n1, what="burst 1 delivered")
    totals = ledger_reaches(acc, sent=n1, received=n1, what="the ledger to hold burst 1")
    assert_exact(totals, sent=n1, received=n1)

    new_a = kill_and_wait_restarted(fleet2, a)
    wait_for(lambda: pub.reconnects == 1 and pub.port, what="the publisher to reconnect")
    wait_for(lambda: interest(pub.node(), acc), what="the subscription to be known where the publisher is")
    pub.burst(n2)
    wait_for(lambda: sub.got == n1 + n2, what="burst 2 delivered")
    totals = ledger_reaches(acc, sent=n1 + n2, received=n1 + n2, what="the ledger to hold burst 2")
    assert_exact(totals, sent=n1 + n2, received=n1 + n2)
    print(f"\nafter killing {a}: publisher on {pub.node()}, subscriber on {sub.node()}")

    pub_moves = pub.reconnects + (pub.node() == b)  # the publisher too, if it went to node-2
    new_b = kill_and_wait_restarted(fleet2, b)
    wait_for(lambda: sub.reconnects == 1 and sub.port, what="the subscriber to reconnect")
    wait_for(lambda: pub.reconnects == pub_moves and pub.port, what="the publisher to be connected")
    wait_for(lambda: interest(pub.node(), acc), what="the subscription to be known where the publisher is")
    pub.burst(n3)
    total = n1 + n2 + n3
    wait_for(lambda: sub.got == total, what="burst 3 delivered")
    ledger_reaches(acc, sent=total, received=total, what="the ledger to hold burst 3")
    # The restarted node-2 reports the account (with no connection) once it knows it again: then the killed
    # node-2's last counters stop counting as current connections.
    wait_for(lambda: ServerAccountCounter.objects.filter(account_public_key=acc, server_id=new_b).exists(),
             what="the restarted node-2 to report the account")
    print(f"after killing {b}: publisher on {pub.node()}, subscriber on {sub.node()}")
    current = connections_current(account_public_key=acc)
    collector.stop()  # its last poll: everything counted so far reaches the ledger

    assert_exact(ledger(acc), sent=total, received=total)
    assert sub.got_bytes == total * M
    rows = {r.server_id: r for r in ServerAccountCounter.objects.filter(account_public_key=acc)}
    print({f"{r.server_name}:{sid[:6]}": (r.sent_msgs, r.received_msgs, r.conns, r.resets) for sid, r in rows.items()})
    assert {old_ids[a], new_a, old_ids[b], new_b} <= set(rows), "every server id the account was counted on"
    # Each server id's counters started at zero and are billed once: their last values add up to the ledger.
    assert sum(r.sent_msgs for r in rows.values()) == total
    assert sum(r.received_msgs for r in rows.values()) == total
    assert all(r.resets == 0 for r in rows.values()), "a restart is a new server id, never a reset"
    negative = Q(sent_msgs__lt=0) | Q(sent_bytes__lt=0) | Q(received_msgs__lt=0) | Q(received_bytes__lt=0)
    assert not UsageHour.objects.filter(negative, account_public_key=acc).exists()
    assert rows[old_ids[a]].conns == 0 and rows[old_ids[b]].conns == 0, "a dead server holds no connection"
    assert current == 2, current  # the publisher and the subscriber, wherever they are now


# ------------------------------------------------------------------------------------------------
# 3. A graceful restart (lame duck) of the publisher's node
# ------------------------------------------------------------------------------------------------


def test_lame_duck_restart_is_exact(fleet2, loop, collector, team):
    """Publisher on node-1, subscriber on node-2. Burst 1; once the ledger holds it, node-1 is stopped the
    graceful way (``node_desired_set(stopped)``: the supervisor sends SIGUSR2, lame duck mode). Told so by the
    server (INFO ``ldm``), the publisher sends burst 2 to node-1 during its grace period, then node-1 closes it,
    it reconnects to node-2 and sends burst 3; node-1 is started again.

    A server in lame duck mode sends no system message any more: its LAMEDUCK event is the last message of its
    internal send loop (``sendLDMShutdownEventLocked`` pushes it with ``last=true``), so it answers no STATZ poll
    and sends no CONNS or DISCONNECT event for the clients it closes. Its HTTP monitoring stays up until it exits,
    so the supervisor reads ``/accstatz`` on every tick while the node winds down
    (``broker_gateway.collector.lame_duck_sample``): burst 2 is billed, and the totals are exact. What a client
    sends in the last tick before the server exits is still unobservable; this publisher is idle by then. The
    connection-seconds of the clients it closes are lost (no DISCONNECT event comes)."""
    from billing.metering import SampleKind
    from billing.models import MeterSample, ServerAccountCounter
    from broker_gateway.events import LAME_DUCK_SEQ
    from broker_gateway.nodes import node_desired_set

    account, creds = tenant(team, "lame")
    acc = account.public_key
    a, b = "node-1", "node-2"
    old_a = server_id(a)
    sub = Client(loop, "sub").connect(node(b).client_url, creds, subscribe=True)
    pub = Client(loop, "pub").connect(node(a).client_url, creds)
    wait_for(lambda: interest(a, acc), what="the subscription to reach node-1 over the route")

    n1, n2, n3 = 150, 100, 120
    pub.burst(n1)
    wait_for(lambda: sub.got == n1, what="burst 1 delivered")
    assert_exact(ledger_reaches(acc, sent=n1, received=n1, what="the ledger to hold burst 1"), sent=n1, received=n1)

    node_desired_set(node=node(a), desired="stopped")
    assert pub.lame_duck.wait(CONVERGE), "node-1 never told its clients it entered lame duck mode"
    # Within the grace period, on the connection to node-1 (no reconnect yet), whose PONG says it took it all.
    assert pub.burst(n2) == 0, "burst 2 did not all go to the lame-duck node-1"
    wait_for(lambda: pub.reconnects == 1 and pub.port, what="node-1 to close the publisher and it to reconnect")
    wait_for(lambda: interest(pub.node(), acc), what="the subscription to be known where the publisher is")
    pub.burst(n3)
    total = n1 + n2 + n3
    wait_for(lambda: sub.got == total, what="bursts 2 and 3 delivered")

    wait_for(lambda: node(a).observed_state == "stopped", timeout=CONVERGE, what="node-1 to finish lame duck")
    node_desired_set(node=node(a), desired="running")
    wait_for(lambda: node(a).observed_state == "healthy", timeout=CONVERGE, what="node-1 to start again")
    wait_for(lambda: server_id(a) not in ("", old_a), what="node-1's new server id")
    ledger_reaches(acc, sent=total, received=total, what="the ledger to hold everything, burst 2 included")
    collector.stop()  # its last poll: everything the live nodes counted reaches the ledger

    assert_exact(ledger(acc), sent=total, received=total)
    assert sub.got_bytes == total * M
    # node-1's last counters came over HTTP while it was in lame duck mode; the publisher's DISCONNECT never came.
    last = ServerAccountCounter.objects.get(server_id=old_a, account_public_key=acc)
    assert last.sent_msgs == n1 + n2
    assert last.seq >= LAME_DUCK_SEQ  # the last snapshot applied is the /accstatz read's (its sequence numbers)
    assert not MeterSample.objects.filter(account_public_key=acc, server_id=old_a,
                                          kind=SampleKind.CONNECTION_END).exists()
