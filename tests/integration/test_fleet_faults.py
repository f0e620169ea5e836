"""Fleet faults with real processes: nodes SIGKILLed mid-push, frozen (SIGSTOP), all down while accounts
change, a stale JWT replayed, a revocation missed while down, and nodes that cannot start at all.

Every node is a real nats-server run by the real supervisor (tests/fleet.py SupervisorThread); nothing is
mocked. What a node holds is read back from the nodes themselves with LOOKUP through the gateway: every
server of the cluster answers a LOOKUP, so ``expect=3`` gathers one (anonymous) JWT per node. No fixed
sleeps: every wait is "until a condition holds, or a deadline passes".

Three product bugs found here first (now fixed, and these tests keep them fixed): the control plane's
connection stayed pinned to a frozen node, a restarted node served a missed revocation until its full sync,
and the health probe counted JetStream's meta layer (losing its leader took every survivor out of the push
set).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import nats.errors
import pytest
from django.db import transaction

from accounts_service.rights import PLATFORM
from tests.fleet import FAST, SupervisorThread, nodes_add, nodes_healthy
from tests.natsproc import creds_knock, free_port
from tests.waiting import Pending, pending_unless, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

NODES = ["node-1", "node-2", "node-3"]
# Loopback on a busy 2-CPU machine: these only bound a failure, they are not expected durations.
CONVERGE = 20.0
LOOKUP_TIMEOUT = 1.0


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def node(name: str):
    from broker_gateway.models import BrokerNode

    return BrokerNode.objects.get(name=name)


def latest_jwts() -> dict[str, str]:
    """Every account's latest JWT as the database has it now (public key -> JWT)."""
    from accounts_service.models import Account

    return dict(Account.objects.exclude(jwt="").values_list("public_key", "jwt"))


def lookup(public_keys: list[str], *, expect: int = 3, timeout: float = LOOKUP_TIMEOUT) -> list[list[str]]:
    """What the nodes hold for each account: one JWT ('' when missing) per node that answered."""
    from broker_gateway.services import gateway_get

    return gateway_get().lookup(public_keys, expect=expect, timeout=timeout)


def lookup_behind(expected: dict[str, str], *, nodes: int = 3) -> Any:
    """(every account answered by ``nodes`` nodes, all holding the expected JWT; a sample of the others)."""
    from broker_gateway.gateway import GatewayUnavailable

    pubs = sorted(expected)
    try:
        held = lookup(pubs, expect=nodes)
    except GatewayUnavailable as exc:  # the fleet connection is reconnecting after a node died
        return Pending(f"gateway: {exc}")
    behind = {pub: [("latest" if j == expected[pub] else ("none" if not j else "OTHER")) for j in jwts]
              for pub, jwts in zip(pubs, held, strict=True)
              if len(jwts) != nodes or any(j != expected[pub] for j in jwts)}
    return pending_unless(not behind, {"behind": len(behind), "of": len(pubs),
                                       "sample": dict(list(behind.items())[:3])})


def wait_converged(*, timeout: float = CONVERGE) -> dict[str, str]:
    """Every node holds every account's latest JWT (per LOOKUP), and our records (NodeClaim) agree."""
    from broker_gateway.selectors import accounts_behind_ids, healthy_nodes

    expected = latest_jwts()
    wait_for(lambda: lookup_behind(expected), timeout=timeout, what="every node to hold every latest JWT")

    def claims() -> Any:
        healthy = healthy_nodes()
        behind = accounts_behind_ids(healthy)
        return pending_unless(len(healthy) == 3 and not behind, {"healthy": [n.name for n in healthy],
                                                                 "behind": len(behind)})

    wait_for(claims, timeout=timeout, what="NodeClaim records to agree")
    assert latest_jwts() == expected, "an account changed while the test was checking"
    return expected


def gateway_node() -> str:
    """The node the control plane's fleet connection is attached to (its replies route through it)."""
    from broker_gateway.models import BrokerNode
    from broker_gateway.services import gateway_get

    port = gateway_get()._nc.connected_url.port  # nats-py's own record of the server it is connected to
    return BrokerNode.objects.get(client_port=port).name


def meta_leader() -> str:
    """The node JetStream's meta group elected leader (from any node's /jsz)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never via a proxy

    def ask() -> str:
        with opener.open(node("node-1").monitoring_url + "/jsz", timeout=1) as response:
            return (json.loads(response.read()).get("meta_cluster") or {}).get("leader", "")

    return wait_for(ask, timeout=CONVERGE, what="a JetStream meta leader")


def bystander() -> str:
    """A node that is neither the gateway's nor JetStream's meta leader: losing it disturbs nothing else."""
    busy = {gateway_node(), meta_leader()}
    return next(n for n in NODES if n not in busy)


def lookup_via(url: str, public_keys: list[str], *, expect: int, timeout: float) -> list[list[str]]:
    """LOOKUP over a fresh system-account connection to ``url`` (independent of the control plane's own)."""
    from broker_gateway.services import gateway_open

    gateway = gateway_open([url], name="fault-test-lookup")
    try:
        return gateway.lookup(public_keys, expect=expect, timeout=timeout)
    finally:
        gateway.close()


def stored_latest(base: Path, name: str, latest: dict[str, str]) -> int:
    """How many of ``latest`` (public key -> JWT) a node's full resolver store holds at that version."""
    return sum(1 for pub, jwt in latest.items() if stored_jwt(base, name, pub) == jwt)


def stored_jwt(base: Path, name: str, public_key: str) -> str:
    """The JWT a node's full resolver keeps for an account in its store directory ('' if none)."""
    try:
        return (base / name / "jwt" / f"{public_key}.jwt").read_text()
    except FileNotFoundError:
        return ""


def processes_with(fragment: str) -> list[int]:
    """Pids whose command line mentions ``fragment`` (e.g. a node's config path)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if fragment in Path(entry.path, "cmdline").read_bytes().decode("utf-8", "replace"):
                    pids.append(int(entry.name))
    return pids


def accepting(url: str) -> bool:
    """Something accepts TCP at a nats:// URL. (nats-py retries a refused first connect every
    reconnect_time_wait, forever when max_reconnect_attempts is 0, so knock before connecting.)"""
    host, port = url.removeprefix("nats://").rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.2).close()
    except OSError:
        return False
    return True


class Tenant:
    """A tenant's client connection held open on its own event loop thread, to see the server drop it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tenant", daemon=True)
        self.thread.start()
        self.nc = None
        self.dropped = threading.Event()

    def connect(self, url: str, creds_text: str) -> str:
        """'ok' and keep the connection, or the server's (lower-cased) refusal."""
        from broker_gateway import nats_client

        async def go() -> str:
            async def closed_cb() -> None:
                if self.nc is not None:
                    self.dropped.set()

            async def error_cb(exc: Exception) -> None:
                pass  # read from nc.last_error

            try:
                nc = await nats_client.connect_creds(url, creds_text, name="tenant", allow_reconnect=False,
                                                     connect_timeout=2, max_reconnect_attempts=0,
                                                     closed_cb=closed_cb, error_cb=error_cb)
                await nc.flush(timeout=2)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                return str(exc).lower() or type(exc).__name__
            self.nc = nc
            return "ok"

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(10)

    @property
    def last_error(self) -> str:
        return str(self.nc.last_error).lower() if self.nc is not None else ""

    def close(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.nc.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def connect(url: str, creds_text: str) -> str:
    if not accepting(url):
        return f"nothing accepts connections at {url}"
    return asyncio.run(creds_knock(url, creds_text, name="fault-test", allow_reconnect=False, connect_timeout=2,
                                   max_reconnect_attempts=0))


def stop_nodes(names: list[str]) -> None:
    """Desired state stopped, through the service, and wait until the supervisor saw each process end.

    The control plane's own connection is closed first: nats-server in lame duck mode exits at once when
    it has no client, but waits its grace period (10 s) for any client still attached.
    """
    from broker_gateway.nodes import node_desired_set
    from broker_gateway.services import gateway_reset

    gateway_reset()
    for name in names:
        node_desired_set(node=node(name), desired="stopped")
    wait_for(lambda: all(node(n).observed_state == "stopped" for n in names), timeout=CONVERGE,
             what=f"{names} stopped")


def start_nodes(names: list[str]) -> None:
    from broker_gateway.nodes import node_desired_set

    for name in names:
        node_desired_set(node=node(name), desired="running")
    wait_for(lambda: nodes_healthy(NODES), timeout=CONVERGE, what="3 healthy nodes")


class Fleet:
    """The supervisor thread and its nodes; teardown resumes frozen nodes and stops everything."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.sup: SupervisorThread | None = None
        self.frozen: set[int] = set()

    def start(self, *, reconcile: bool = True, **policy) -> SupervisorThread:
        self.sup = SupervisorThread(self.base, policy=policy, reconcile=reconcile).start()
        return self.sup

    def pid(self, name: str) -> int:
        pid = self.sup.pid(name)
        assert pid, f"{name} has no process"
        return pid

    def freeze(self, name: str) -> int:
        pid = self.pid(name)
        self.frozen.add(pid)
        os.kill(pid, signal.SIGSTOP)
        return pid

    def thaw(self, pid: int) -> None:
        os.kill(pid, signal.SIGCONT)
        self.frozen.discard(pid)

    def close(self) -> None:
        for pid in list(self.frozen):  # a stopped process would sit on SIGTERM until the grace period ends
            with contextlib.suppress(ProcessLookupError):
                self.thaw(pid)
        if self.sup is not None:
            self.sup.stop()


@pytest.fixture
def fleet(operator_setup, tmp_path):
    f = Fleet(tmp_path / "fleet")
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def fleet3(fleet):
    """Three healthy nodes under the real supervisor."""
    nodes_add(3)
    fleet.start()
    wait_for(lambda: nodes_healthy(NODES), timeout=CONVERGE, what="3 healthy nodes")
    return fleet


# ------------------------------------------------------------------------------------------------
# 1. A node SIGKILLed in the middle of a bulk push
# ------------------------------------------------------------------------------------------------


@pytest.mark.timeout(150)  # a hang guard: 1,000 accounts signed and pushed twice take longer on a loaded machine
@pytest.mark.parametrize("killed", ["bystander", "gateway-node"])
def test_node_killed_during_bulk_push_restarts_and_converges(fleet, team, killed, monkeypatch):
    from accounts_service.services import account_create, account_resign
    from broker_gateway import propagation
    from broker_gateway.models import BrokerNode
    from broker_gateway.selectors import account_propagation
    from operators.signals import account_jwt_issued

    accounts = 1000
    with transaction.atomic():  # no node exists yet: nothing is pushed on commit, creation stays fast
        created = [account_create(actor=PLATFORM, team=team, name=f"bulk-{i:04d}") for i in range(accounts)]
    nodes_add(3)
    # Nodes start with their stores primed with these versions. The supervisor's own reconciler is off here: it
    # would push the re-signed accounts below by itself, and its pushes would trip the kill placed in this one.
    sup = fleet.start(reconcile=False)
    wait_for(lambda: nodes_healthy(NODES), timeout=CONVERGE, what="3 healthy nodes")
    # The full syncs the nodes' first health asked for must be over: one still running (or queued) would push the
    # re-signed versions below itself, and the victim would already hold every one when the bulk push began.
    wait_for(sup.syncs_done, timeout=CONVERGE, what="the nodes' first full syncs done")
    # Then every account changes, with the on-commit push muted: a thousand new versions no node holds,
    # which is what a bulk push is for. The victim dies with part of them written.
    account_jwt_issued.disconnect(dispatch_uid="broker_gateway.push_on_issue")
    try:
        with transaction.atomic():
            created = [account_resign(account=a) for a in created]
    finally:
        from broker_gateway.signals import _push_on_issue

        account_jwt_issued.connect(_push_on_issue, dispatch_uid="broker_gateway.push_on_issue")
    latest = {a.public_key: a.jwt for a in created}
    assert stored_latest(fleet.base, "node-1", latest) == 0

    gw = gateway_node()
    victim = gw if killed == "gateway-node" else bystander()
    result: dict[str, object] = {}
    at_kill: dict[str, object] = {}
    record = propagation._replies_record

    # The kill happens inside the push, deterministically: right after the first of ten batches is recorded,
    # while the second is on the wire (batches are pipelined) and eight more are still to be read and sent.
    # Watching the store from another thread instead raced with the push on a loaded machine.
    def record_then_kill(*args, **kwargs):
        record(*args, **kwargs)
        if not at_kill:
            at_kill["pid"] = fleet.pid(victim)
            os.kill(at_kill["pid"], signal.SIGKILL)
            at_kill["held"] = stored_latest(fleet.base, victim, latest)

    monkeypatch.setattr(propagation, "_replies_record", record_then_kill)

    def bulk() -> None:
        try:
            result["report"] = propagation.accounts_push(batch=accounts // 10)
        except Exception as exc:  # the fleet connection may drop with the victim: recorded, not fatal
            result["error"] = exc
        finally:
            from django.db import connection

            connection.close()

    pusher = threading.Thread(target=bulk, name="bulk-push")
    pusher.start()
    pusher.join(timeout=CONVERGE + 10)
    assert not pusher.is_alive(), "the bulk push did not return"
    monkeypatch.undo()
    old_pid, held_at_kill = at_kill["pid"], at_kill["held"]
    assert 0 < held_at_kill < accounts, at_kill

    started = time.monotonic()
    wait_for(lambda: BrokerNode.objects.filter(name=victim, observed_state="healthy", restarts=1)
             .exclude(pid=old_pid).exists(), timeout=CONVERGE, what=f"{victim} restarted")
    wait_converged()
    took = time.monotonic() - started
    report = result.get("report")
    print(f"\nkilled {victim} (gateway on {gw}) holding {held_at_kill}/{accounts}; converged {took:.1f}s after; "
          f"bulk push: {report or result.get('error')!r}")
    for account in (created[0], created[len(created) // 2], created[-1]):
        account.refresh_from_db()
        status = account_propagation(account=account)
        assert status["in_sync"] and status["live_on"] == 3, status


# ------------------------------------------------------------------------------------------------
# 2. A frozen node (SIGSTOP) neither stalls a push past its deadline nor stays behind after SIGCONT
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("frozen", ["bystander", "gateway-node"])
def test_frozen_node_does_not_stall_push_and_catches_up(fleet3, team, settings, frozen):
    from accounts_service.services import account_create, account_update
    from broker_gateway import propagation
    from broker_gateway.selectors import account_propagation

    push_timeout = 1.0
    margin = 1.5  # database work and thread scheduling on a busy 2-CPU machine
    settings.NATS_PUSH_TIMEOUT = push_timeout  # the push on commit, too
    account = account_create(actor=PLATFORM, team=team, name="orders")
    wait_converged()

    # A bystander: freezing JetStream's meta leader would also take the others' /healthz down (see
    # test_meta_leader_killed_survivors_stay_healthy).
    victim = gateway_node() if frozen == "gateway-node" else bystander()
    live = [node(n).client_url for n in NODES if n != victim]
    pid = fleet3.freeze(victim)
    frozen_at = time.monotonic()

    # The tenant's change is pushed on commit: it must come back within the push deadline.
    started = time.monotonic()
    account_update(actor=PLATFORM, account=account, description="changed while a node is frozen")
    on_commit = time.monotonic() - started
    started = time.monotonic()
    report = propagation.accounts_push(account_ids=[account.pk], timeout=push_timeout)
    explicit = time.monotonic() - started
    assert on_commit < push_timeout + margin, on_commit
    assert explicit < push_timeout + margin, explicit
    assert not report.errors, report.errors

    # The two live nodes hold the new JWT (the frozen one cannot answer, so two replies are theirs).
    account.refresh_from_db()

    def live_hold() -> Any:
        (held,) = lookup_via(live[0], [account.public_key], expect=2, timeout=LOOKUP_TIMEOUT)
        return pending_unless(held == [account.jwt] * 2, ["latest" if j == account.jwt else "other" for j in held])

    wait_for(live_hold, timeout=3.0, what="the two live nodes to hold the new JWT")

    # The supervisor's probe (0.5 s) times out on the frozen node: it is marked unhealthy, not killed.
    wait_for(lambda: node(victim).observed_state == "unhealthy", timeout=CONVERGE, what=f"{victim} unhealthy")
    assert fleet3.pid(victim) == pid
    synced_before = node(victim).synced_at
    fleet3.thaw(pid)

    wait_for(lambda: node(victim).observed_state == "healthy", timeout=CONVERGE, what=f"{victim} healthy again")
    wait_for(lambda: node(victim).synced_at and node(victim).synced_at != synced_before, timeout=CONVERGE,
             what=f"the full sync of {victim}")
    wait_converged()
    status = account_propagation(account=account)
    assert status["in_sync"] and status["live_on"] == 3, status
    assert node(victim).restarts == 0 and fleet3.pid(victim) == pid
    print(f"\npush on commit {on_commit:.2f}s, explicit push {explicit:.2f}s (deadline {push_timeout}s); "
          f"{victim} frozen {time.monotonic() - frozen_at:.1f}s in all")


# ------------------------------------------------------------------------------------------------
# 3. Every node down while accounts change
# ------------------------------------------------------------------------------------------------


def test_all_nodes_down_while_accounts_change_then_converge(fleet3, team):
    from accounts_service.models import Account
    from accounts_service.services import (
        account_create,
        account_delete,
        account_update,
        user_create,
        user_creds_get,
        user_revoke,
    )
    from broker_gateway.services import gateway_get

    kept = [account_create(actor=PLATFORM, team=team, name=f"kept-{i}") for i in range(5)]
    doomed = account_create(actor=PLATFORM, team=team, name="doomed")
    users = [user_create(actor=PLATFORM, account=kept[0], name=f"user-{i}") for i in range(3)]
    creds = [user_creds_get(user=u) for u in users]  # a revoked user has none
    wait_converged()

    stop_nodes(NODES)
    before = latest_jwts()
    new = [account_create(actor=PLATFORM, team=team, name=f"new-{i}") for i in range(5)]
    for i, account in enumerate(kept[:3]):
        account_update(actor=PLATFORM, account=account, description=f"changed while down {i}")
    user_revoke(actor=PLATFORM, user=users[0])
    user_revoke(actor=PLATFORM, user=users[1])
    account_delete(actor=PLATFORM, account=doomed)
    after = latest_jwts()
    assert doomed.public_key not in after
    assert {p for p in after if after[p] != before.get(p)} >= {a.public_key for a in [*new, *kept[:3]]}

    start_nodes(NODES)
    expected = wait_converged()
    assert set(expected) == set(Account.objects.values_list("public_key", flat=True))

    # The deleted account is gone from every node's store, not merely unlisted by us.
    system = Account.objects.get(is_system=True).public_key

    def listed() -> Any:
        held = gateway_get().list_claims(expect=3, timeout=LOOKUP_TIMEOUT)
        extra = {name: sorted(pubs - set(expected) - {system}) for name, pubs in held.items()}
        ok = len(held) == 3 and not any(extra.values()) and all(set(expected) <= pubs for pubs in held.values())
        return pending_unless(ok, {"nodes": sorted(held), "extra": extra})

    wait_for(listed, what="every node's LIST to match the database")

    # And the revocations made while every node was down are enforced on each of them.
    for name in NODES:
        url = node(name).client_url
        for revoked in creds[:2]:
            error = connect(url, revoked)
            assert "authorization violation" in error, (name, error)
        assert connect(url, creds[2]) == "ok", name


# ------------------------------------------------------------------------------------------------
# 4. An older JWT arriving late never wins
# ------------------------------------------------------------------------------------------------


def test_stale_jwt_replayed_is_detected_and_repaired_by_verify(fleet3, team):
    from accounts_service.services import account_create, account_update
    from broker_gateway import propagation
    from broker_gateway.services import gateway_get
    from operators.models import IssuedAccountJwt

    account = account_create(actor=PLATFORM, team=team, name="billing")
    account_update(actor=PLATFORM, account=account, description="v2")
    account_update(actor=PLATFORM, account=account, description="v3")
    account.refresh_from_db()
    wait_converged()
    history = list(IssuedAccountJwt.objects.filter(account_public_key=account.public_key).order_by("-iat"))
    assert history[0].jwt == account.jwt and len(history) >= 3
    previous = history[1]
    # A full sync still under way (the nodes' first health asks for one) would push the latest over the replay below.
    wait_for(fleet3.sup.syncs_done, timeout=CONVERGE, what="the nodes' first full syncs done")

    # A late delivery of the previous version (a retried task, a slow queue): nats-server's UPDATE has no
    # age check, so every node takes it and the account is rolled back on all of them.
    replies = gateway_get().push([previous.jwt], expect=3, timeout=LOOKUP_TIMEOUT)[0]
    assert len(replies) == 3 and all(r.get("data", {}).get("code") == 200 for r in replies), replies
    (held,) = lookup([account.public_key])
    assert held == [previous.jwt] * 3, "the replayed JWT did not reach the nodes: the test proves nothing"

    # Our records still say every node is in sync, so reconcile (which trusts them) cannot see it ...
    assert propagation.fleet_reconcile().accounts == 0
    # ... verify asks the nodes, finds the stale account and pushes the latest again.
    report = propagation.fleet_verify(timeout=LOOKUP_TIMEOUT)
    assert report.stale == 1, report
    assert report.repaired is not None and report.repaired.ok, report.repaired
    (held,) = lookup([account.public_key])
    assert held == [account.jwt] * 3
    wait_converged()
    assert propagation.fleet_verify(timeout=LOOKUP_TIMEOUT).stale == 0


# ------------------------------------------------------------------------------------------------
# 5. A user revoked while a node was down is refused by that node once it is back
# ------------------------------------------------------------------------------------------------


def test_user_revoked_while_node_down_is_refused_there_once_back(fleet3, team):
    from accounts_service.services import account_create, user_create, user_creds_get, user_revoke
    from broker_gateway.nodes import node_desired_set

    account = account_create(actor=PLATFORM, team=team, name="telemetry")
    alice = user_create(actor=PLATFORM, account=account, name="alice")
    bob = user_create(actor=PLATFORM, account=account, name="bob")
    alice_creds, bob_creds = user_creds_get(user=alice), user_creds_get(user=bob)  # no creds once revoked
    wait_converged()
    victim = bystander()  # stopping JetStream's meta leader would disturb the other two
    url = node(victim).client_url
    assert connect(url, alice_creds) == "ok"
    assert connect(url, bob_creds) == "ok"

    stop_nodes([victim])
    user_revoke(actor=PLATFORM, user=alice)
    account.refresh_from_db()
    error = connect(node(next(n for n in NODES if n != victim)).client_url, alice_creds)
    assert "authorization violation" in error, error  # the live nodes got the revocation at once
    assert stored_jwt(fleet3.base, victim, account.public_key) != account.jwt  # the victim's store predates it

    # Bring the victim back and knock with alice's creds from the moment it accepts clients until it is
    # healthy and its store holds the revocation (the full sync on becoming healthy pushes it).
    node_desired_set(node=node(victim), desired="running")
    started = time.monotonic()
    slipped: Tenant | None = None
    slipped_after = None
    knocked = False
    attempts: list[Tenant] = []
    try:
        while not (knocked and node(victim).observed_state == "healthy"
                   and stored_jwt(fleet3.base, victim, account.public_key) == account.jwt):
            assert time.monotonic() - started < CONVERGE, f"{victim} did not come back with the revocation"
            if slipped is None and accepting(url):
                knocked = True
                tenant = Tenant()
                attempts.append(tenant)
                if tenant.connect(url, alice_creds) == "ok":
                    slipped, slipped_after = tenant, time.monotonic() - started
        synced_after = time.monotonic() - started

        # Once it is back: alice is refused there, bob is not.
        error = connect(url, alice_creds)
        assert "authorization violation" in error, error
        assert connect(url, bob_creds) == "ok"
        if slipped is not None:
            # The full sync's push carries the revocation: a connection that got in meanwhile is dropped.
            wait_for(slipped.dropped.is_set, timeout=CONVERGE, what=f"alice's connection to {victim} to be dropped")
            assert "revoked" in slipped.last_error, slipped.last_error
    finally:
        for tenant in attempts:
            tenant.close()
    wait_converged()
    # The node's store was primed with every account's latest JWT before it started (Supervisor._start),
    # so the revoked user is refused from its first accepted connection, not only after the full sync.
    assert slipped is None, (
        f"{victim} accepted the revoked user {slipped_after:.2f}s after it was started; the full sync reached "
        f"it {synced_after:.2f}s in"
    )


# ------------------------------------------------------------------------------------------------
# 5b. Losing JetStream's meta leader must not take the survivors out of the push set
# ------------------------------------------------------------------------------------------------


def test_meta_leader_killed_survivors_stay_healthy(fleet3):
    from broker_gateway.models import BrokerNode

    leader = meta_leader()
    survivors = [n for n in NODES if n != leader]
    changed = {n: node(n).state_changed_at for n in survivors}
    seen: dict[str, set[tuple[str, str]]] = {n: set() for n in survivors}

    def watch() -> None:  # what the supervisor recorded for the survivors, sampled while we wait
        for n in survivors:
            row = node(n)
            if row.observed_state != "healthy":
                seen[n].add((row.observed_state, row.last_error))

    old_pid = fleet3.pid(leader)
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: watch() or BrokerNode.objects.filter(name=leader, observed_state="healthy", restarts=1)
             .exclude(pid=old_pid).exists(), timeout=CONVERGE, what=f"{leader} restarted")
    _beats(survivors[0])
    flapped = {n: sorted(seen[n]) for n in survivors if node(n).state_changed_at != changed[n] or seen[n]}
    assert not flapped, f"survivors of the killed meta leader {leader} left the healthy state: {flapped}"


# ------------------------------------------------------------------------------------------------
# 6. Nodes that cannot start: an invalid config fails at once; a taken port crash-loops, boundedly
# ------------------------------------------------------------------------------------------------


def _ports(client_port: int | None = None) -> dict[str, int]:
    return {"client_port": client_port or free_port(), "cluster_port": free_port(), "monitoring_port": free_port(),
            "leafnode_port": free_port()}


def _beats(name: str, count: int = 2) -> None:
    """Let the supervisor run on: wait for ``count`` more heartbeats of a healthy node (Policy.heartbeat)."""
    seen = [node(name).last_healthy_at]

    def beat() -> bool:
        now = node(name).last_healthy_at
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > count

    wait_for(beat, timeout=CONVERGE, what=f"{count} heartbeats of {name}")


# The broken node joins a healthy 3-node fleet: its peers keep their JetStream quorum (a lone node whose
# only peer never starts reports 503 "JetStream is still recovering meta layer" forever), and their
# heartbeats show the supervisor kept ticking after it gave up on the broken one.


def test_invalid_config_fails_at_once_with_the_servers_error_and_is_not_restarted(fleet3):
    from broker_gateway.nodes import node_add

    node_add(name="bad", ports=_ports(), extra_config="this is not valid {{")
    wait_for(lambda: node("bad").observed_state == "failed", timeout=CONVERGE, what="bad failed")
    _beats("node-1")

    bad = node("bad")
    assert bad.restarts == 0 and bad.pid is None, vars(bad)
    assert bad.consecutive_failures == 0, vars(bad)  # it was never started, so nothing crashed
    # nats-server's own words, from `nats-server -t`.
    assert bad.last_error.startswith("nats-server:") and "parse error on line" in bad.last_error.lower(), \
        bad.last_error
    driver = fleet3.sup.driver
    assert not driver.status("bad").running
    assert processes_with(driver.config_path("bad")) == []
    assert nodes_healthy(NODES), "the fleet should be unaffected"
    print(f"\nlast_error: {bad.last_error!r}")


def test_taken_client_port_crash_loops_a_bounded_number_of_times_then_fails(fleet3):
    from broker_gateway.nodes import node_add

    max_failures = FAST["max_failures"]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        node_add(name="squatted", ports=_ports(client_port=taken))
        wait_for(lambda: node("squatted").observed_state == "failed", timeout=CONVERGE, what="squatted failed")
        _beats("node-1")

        bad = node("squatted")
        assert bad.consecutive_failures == max_failures, vars(bad)
        assert bad.restarts == max_failures - 1, vars(bad)  # the first start is not a restart
        assert bad.pid is None and not fleet3.sup.driver.status("squatted").running
        assert processes_with(fleet3.sup.driver.config_path("squatted")) == []
        # The server's own fatal line, e.g. `[FTL] Error listening on port: 127.0.0.1:N, "listen tcp
        # 127.0.0.1:N: bind: address already in use"`.
        assert "address already in use" in bad.last_error and f":{taken}" in bad.last_error, bad.last_error
        assert "[FTL]" in bad.last_error, bad.last_error
        assert nodes_healthy(NODES), "the fleet should be unaffected"
        print(f"\nlast_error: {bad.last_error!r}")
