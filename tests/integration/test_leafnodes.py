"""Tenants' own nats-servers as leafnodes, for real: a leaf started from the issued config joins the fleet, its
local clients (no credentials) exchange messages both ways with hosted clients under the user's permissions,
the traffic is metered once, the leaf shows in ``connections.leafnodes``, and the plan's ``leaf`` limit holds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from accounts_service.rights import PLATFORM
from tests.fleet import running_fleet
from tests.integration.test_metering import CollectorThread
from tests.natsproc import NatsServer, free_port, wait_for_port
from tests.waiting import wait_for, wait_for_async

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

N, M = 100, 64  # messages each way, bytes each


@pytest.fixture
def fleet2(operator_setup, tmp_path):
    with running_fleet(2, tmp_path / "fleet") as (nodes, _):
        yield nodes


def _json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=1) as response:
        return json.load(response)


class Leaf(NatsServer):
    """A tenant's nats-server started from the issued config, in its own directory (its working directory)."""

    def leafnodes(self) -> int:
        return int(_json(f"http://127.0.0.1:{self.http_port}/leafz").get("leafnodes") or 0)

    def has_interest(self, subject: str) -> bool:
        """The fleet told this leaf of a subscription on ``subject`` (over its leafnode connection)."""
        return any(subject in (ln.get("subscriptions_list") or [])
                   for ln in _json(f"http://127.0.0.1:{self.http_port}/leafz?subs=1").get("leafs") or [])


@contextlib.contextmanager
def leaf_running(user, workdir: Path):
    """The API's config (a relative creds file name) and the user's .creds saved beside it, as a tenant does;
    nats-server started in that directory. Yields once it listens; stopped afterwards."""
    from accounts_service.services import user_creds_get
    from broker_gateway.leafnodes import user_leafnode_config

    workdir.mkdir(parents=True)
    port, http_port = free_port(), free_port()
    issued = user_leafnode_config(user=user, actor=PLATFORM, port=port)
    (workdir / issued.creds_filename).write_text(user_creds_get(user=user))
    # The tenant's own addition: a monitoring port, for the test to watch the leaf.
    (workdir / "leaf.conf").write_text(issued.config + f'http: "127.0.0.1:{http_port}"\n')
    with leaf_started(workdir, port=port, http_port=http_port) as leaf:
        yield leaf


@contextlib.contextmanager
def leaf_started(workdir: Path, *, port: int, http_port: int):
    """``nats-server -c leaf.conf`` in ``workdir`` (so a relative credentials path resolves there)."""
    from broker_gateway.fleet.local import nats_server_bin

    with open(workdir / "leaf.log", "ab") as log:
        proc = subprocess.Popen([nats_server_bin(), "-c", "leaf.conf"], cwd=workdir, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    leaf = Leaf(proc=proc, port=port, http_port=http_port, config_path=workdir / "leaf.conf",
                log_path=workdir / "leaf.log")
    try:
        wait_for_port(port, proc=proc)
        yield leaf
    finally:
        leaf.stop()


def _node_leafnodes(node, account_public_key: str) -> int:
    return int(_json(f"{node.monitoring_url}/leafz?acc={account_public_key}").get("leafnodes") or 0)


def _node_has_interest(node, subject: str) -> bool:
    """The node heard of a subscription on ``subject`` from a leaf of its own or over a route."""
    leafs = _json(f"{node.monitoring_url}/leafz?subs=1").get("leafs") or []
    routes = _json(f"{node.monitoring_url}/routez?subs=1").get("routes") or []
    return any(subject in (c.get("subscriptions_list") or []) for c in leafs + routes)


def _setup(team, *, plan: str = "free", **user_spec):
    from accounts_service.services import account_create, usage_service_ensure, user_create, user_creds_get
    from broker_gateway.propagation import fleet_reconcile

    usage_service_ensure()
    account = account_create(actor=PLATFORM, team=team, name="edge", plan=plan)
    edge = user_create(actor=PLATFORM, account=account, name="edge-box", **user_spec)
    app = user_create(actor=PLATFORM, account=account, name="app")
    fleet_reconcile()
    return account, edge, user_creds_get(user=app)


async def _exchange(leaf: Leaf, node, app_creds: str, *, n: int = N, m: int = M) -> tuple[int, int]:
    """A leaf-local publisher (no credentials) to a hosted subscriber on ``node`` (``leaf.up``), and a hosted
    publisher there to a leaf-local subscriber (``leaf.down``): n messages of m bytes each way. Returns how many
    each side got. Nothing else is published in the account, so the ground truth is exactly n and n*m each way."""
    import nats

    from broker_gateway import nats_client

    hosted = await nats_client.connect_creds(node.client_url, app_creds, name="hosted")
    local = await nats.connect(leaf.url, name="local")  # no credentials at all
    got = {"up": 0, "down": 0}
    done = {"up": asyncio.Event(), "down": asyncio.Event()}

    def counter(way: str):
        async def cb(msg) -> None:
            got[way] += 1
            if got[way] == n:
                done[way].set()
        return cb

    await hosted.subscribe("leaf.up", cb=counter("up"))
    await local.subscribe("leaf.down", cb=counter("down"))
    await hosted.flush()
    await local.flush()
    # Interest crossed both ways before anything is published: the leaf learnt the hosted subscription from the
    # hub, and the hosted publisher's node learnt the leaf's (over the leaf connection, then maybe a route).
    await wait_for_async(lambda: leaf.has_interest("leaf.up"), what="the hosted subscription reached the leaf")
    await wait_for_async(lambda: _node_has_interest(node, "leaf.down"),
                         what="the leaf's subscription reached the hosted publisher's node")
    payload = b"x" * m
    for _ in range(n):
        await local.publish("leaf.up", payload)
        await hosted.publish("leaf.down", payload)
    await local.flush()
    await hosted.flush()
    await asyncio.wait_for(asyncio.gather(done["up"].wait(), done["down"].wait()), 10)
    await local.close()
    await hosted.close()
    return got["up"], got["down"]


def test_a_leaf_joins_both_ways_is_metered_once_and_shows_in_usage(fleet2, team, tmp_path):
    from billing.selectors import account_usage, usage_totals
    from broker_gateway.selectors import running_node_urls

    account, edge, app_creds = _setup(team, pub_allow=["leaf.>"], sub_allow=["leaf.>"])
    collector = CollectorThread(running_node_urls()).start()
    try:
        with leaf_running(edge, tmp_path / "leaf") as leaf:
            wait_for(leaf.leafnodes, what="the leaf connected to the fleet")
            hub = wait_for(lambda: [n for n in fleet2 if _node_leafnodes(n, account.public_key)],
                           what="the node holding the leaf, in the account")
            assert len(hub) == 1
            other = next(n for n in fleet2 if n.pk != hub[0].pk)  # hosted clients there: the traffic crosses a route
            assert asyncio.run(_exchange(leaf, other, app_creds)) == (N, N)
            wait_for(lambda: account_usage(account_public_key=account.public_key, plan_name="free", window="1h")
                     ["connections"]["leafnodes"] == 1, what="connections.leafnodes = 1 in the usage document")

            def counted():
                from django.utils import timezone

                totals = usage_totals(account_public_key=account.public_key,
                                      start=timezone.now() - timezone.timedelta(hours=2), end=timezone.now()
                                      + timezone.timedelta(hours=1))
                return (totals["sent_msgs"], totals["sent_bytes"], totals["received_msgs"], totals["received_bytes"])

            # Each way: n messages published by one client of the account (the leaf or the hosted publisher) and
            # delivered to one (the hosted subscriber or the leaf); the route between the nodes counts nothing.
            wait_for(lambda: counted() == (2 * N, 2 * N * M, 2 * N, 2 * N * M), timeout=20,
                     what=f"the ledger at exactly {2 * N} msgs / {2 * N * M} bytes each way")
    finally:
        collector.stop()
    assert counted() == (2 * N, 2 * N * M, 2 * N, 2 * N * M)  # and nothing more once it settled


async def _crosses(leaf: Leaf, node, app_creds: str, subject: str, *, up: bool) -> bool:
    """Whether one message on ``subject`` gets from the leaf to a hosted subscriber on ``node`` (``up``) or from a
    hosted publisher there to a leaf-local subscriber. A refused subject is asserted by a permitted one sent after
    it on the same connection arriving alone (messages keep their order), not by a timeout."""
    import nats

    from broker_gateway import nats_client

    hosted = await nats_client.connect_creds(node.client_url, app_creds, name="hosted")
    local = await nats.connect(leaf.url, name="local")
    pub, sub = (local, hosted) if up else (hosted, local)
    got: list[str] = []
    marker = "leaf.marker.up" if up else "leaf.marker.down"
    arrived = asyncio.Event()

    async def cb(msg) -> None:
        got.append(msg.subject)
        if msg.subject == marker:
            arrived.set()

    for s in (subject, marker):
        await sub.subscribe(s, cb=cb)
    await sub.flush()
    if up:
        await wait_for_async(lambda: leaf.has_interest(marker), what="the marker's interest at the leaf")
    else:
        await wait_for_async(lambda: _node_has_interest(node, marker), what="the marker's interest at the node")
    await pub.publish(subject, b"?")
    await pub.publish(marker, b"!")
    await pub.flush()
    await asyncio.wait_for(arrived.wait(), 10)
    await local.close()
    await hosted.close()
    return subject in got


def test_the_leaf_has_the_users_permissions(fleet2, team, tmp_path):
    _account, edge, app_creds = _setup(team, pub_allow=["leaf.>"], sub_allow=["leaf.>"], sub_deny=["leaf.secret"])
    with leaf_running(edge, tmp_path / "leaf") as leaf:
        wait_for(leaf.leafnodes, what="the leaf connected to the fleet")
        node = fleet2[0]
        assert asyncio.run(_crosses(leaf, node, app_creds, "leaf.open", up=True))
        assert asyncio.run(_crosses(leaf, node, app_creds, "leaf.open", up=False))
        assert not asyncio.run(_crosses(leaf, node, app_creds, "other.x", up=True))  # not in pub allow
        assert not asyncio.run(_crosses(leaf, node, app_creds, "other.x", up=False))  # not in sub allow
        assert not asyncio.run(_crosses(leaf, node, app_creds, "leaf.secret", up=False))  # sub deny


def test_the_plans_leaf_limit_holds(fleet2, team, tmp_path):
    from accounts_service.services import user_create
    from billing.models import Plan
    from billing.plans import plan_save
    from broker_gateway.leafnodes import user_leafnode_config
    from broker_gateway.propagation import fleet_reconcile
    from core.errors import Conflict

    free = Plan.objects.get(name="free")
    Plan.objects.create(**{f.name: getattr(free, f.name) for f in Plan._meta.concrete_fields
                           if f.name not in ("id", "name", "title", "leaf")}, name="one-leaf", title="One leaf", leaf=1)
    account, edge, _ = _setup(team, plan="one-leaf")
    assert account.leaf == 1
    second = user_create(actor=PLATFORM, account=account, name="second-box")
    fleet_reconcile()
    with leaf_running(edge, tmp_path / "leaf1") as first:
        wait_for(first.leafnodes, what="the first leaf admitted")
        with leaf_running(second, tmp_path / "leaf2") as other:
            # The limit is the cluster's: when the two leaves land on different nodes, the servers learn of each
            # other's leaf a moment later and one of the two (not always the newer) is refused and keeps retrying.
            refusal = "maximum account active connections exceeded"
            wait_for(lambda: refusal in first.log() + other.log() and first.leafnodes() + other.leafnodes() == 1,
                     what="one leaf admitted, the other refused by the servers")
    # The plan now allows none: the account is re-signed with leaf 0. No new config is issued, and the one
    # issued before is refused by the servers.
    plan = Plan.objects.get(name="one-leaf")
    plan.leaf = 0
    plan_save(plan=plan)
    account.refresh_from_db()
    assert account.leaf == 0
    with pytest.raises(Conflict) as refused_issue:
        user_leafnode_config(user=edge, actor=PLATFORM)
    assert refused_issue.value.code == "leafnode_limit_zero"
    fleet_reconcile()
    workdir = tmp_path / "leaf1"
    (workdir / "leaf.log").write_text("")
    with leaf_started(workdir, port=first.port, http_port=first.http_port) as again:
        wait_for(lambda: "maximum account active connections exceeded" in again.log(),
                 what="the old config refused under a plan that allows 0 leafnodes")
        assert again.leafnodes() == 0
