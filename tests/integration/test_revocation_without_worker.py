"""A revocation, a suspension and a deletion reach every node within seconds with no Celery worker, and with Redis
down.

Three real nodes under the real supervisor (tests/fleet.py ``running_fleet``), whose reconciler pushes what the
nodes have not acknowledged every FLEET_RECONCILE_SECONDS (the default, 2 s) whatever Celery does. The test's
Celery publishes to a real Redis (``redis_broker``, not eager), so the queued push really waits in Redis for a
worker that is not there; the nodes' own resolver sync is pushed out to 10 minutes. Whatever reaches a node here
came through the supervisor's reconciler. Every wait is "until a condition holds, or a deadline passes".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time

import pytest

from accounts_service.rights import PLATFORM
from tests.fleet import celery_py, running_fleet, stop_process, subprocess_env
from tests.natsproc import creds_knock
from tests.waiting import pending_unless, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),  # the supervisor's threads and the worker read committed rows only
    pytest.mark.skipif(sys.platform != "linux", reason="nodes die with the supervisor by PR_SET_PDEATHSIG"),
    pytest.mark.timeout(120),
]

DEADLINE = 10.0  # seconds from the revocation to every node refusing it
REVOKED = "authorization violation"  # what a node answers a revoked user's new connection
SUSPENDED = "maximum account active connections exceeded"  # and a suspended account's (its JWT allows 0)
WORKER = ["worker", "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
          "-Q", "celery,propagation,billing,mail"]


# ------------------------------------------------------------------------------------------------
# Tenants' connections: new ones knocked on every node, live ones held open to see them closed
# ------------------------------------------------------------------------------------------------


def knock(url: str, creds: str) -> str:
    return asyncio.run(creds_knock(url, creds, name="knock"))


class Held:
    """Live client connections, one per URL, on an event loop thread of their own; each records when the server
    closed it."""

    def __init__(self, urls: list[str], creds: str) -> None:
        from broker_gateway import nats_client

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="held", daemon=True)
        self.thread.start()
        self.closed_at: dict[str, float] = {}
        self.clients = []

        async def connect(url: str):
            async def closed_cb() -> None:
                self.closed_at.setdefault(url, time.monotonic())

            async def error_cb(exc: Exception) -> None:
                pass  # a revoked user is told before it is closed; closed_cb is what counts

            nc = await nats_client.connect_creds(url, creds, name="held", closed_cb=closed_cb, error_cb=error_cb)
            await nc.flush(timeout=2)
            return nc

        for url in urls:
            self.clients.append(asyncio.run_coroutine_threadsafe(connect(url), self.loop).result(10))

    def close(self) -> None:
        async def close_all() -> None:
            for nc in self.clients:
                with contextlib.suppress(Exception):
                    await nc.close()

        asyncio.run_coroutine_threadsafe(close_all(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def refused_everywhere(urls: list[str], creds: str, expected: str, *, since: float, held: Held | None = None,
                       timeout: float = DEADLINE + 5) -> dict[str, float]:
    """Knock on every node until each refuses ``creds`` with ``expected`` (and, given ``held``, each live connection
    was closed); the seconds from ``since`` to each node's first refusal and to each connection's close."""
    refused_at: dict[str, float] = {}
    last: dict[str, str] = {}

    def done():
        for url in urls:
            if url not in refused_at:
                last[url] = knock(url, creds)
                if expected in last[url]:
                    refused_at[url] = time.monotonic()
        closed = held.closed_at if held is not None else dict.fromkeys(urls)
        return pending_unless(len(refused_at) == len(urls) and len(closed) == len(urls),
                              {"still accepted or otherwise refused": {u: last[u] for u in urls if u not in refused_at},
                               "still open": [u for u in urls if u not in closed]})

    wait_for(done, timeout=timeout, interval=0.05, what=f"every node to refuse with {expected!r}")
    seconds = {f"refused on {url}": at - since for url, at in refused_at.items()}
    if held is not None:
        seconds.update({f"closed on {url}": at - since for url, at in held.closed_at.items()})
    return seconds


def assert_within_deadline(what: str, seconds: dict[str, float]) -> None:
    print(f"\n{what}: " + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(seconds.items())))
    late = {k: round(v, 2) for k, v in seconds.items() if v > DEADLINE}
    assert not late, f"{what}: later than {DEADLINE}s: {late}"


# ------------------------------------------------------------------------------------------------
# Fixtures: Redis first (stopped last), then the fleet
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def fleet(redis_broker, operator_setup, settings, tmp_path):
    """Three healthy nodes under the real supervisor (its reconciler on, every FLEET_RECONCILE_SECONDS)."""
    settings.NATS_RESOLVER_INTERVAL = "10m"  # the nodes' own sync among themselves: out of the way
    assert settings.FLEET_RECONCILE_SECONDS == 2.0  # the default is what is proven here
    with running_fleet(3, tmp_path / "fleet") as (nodes, _):
        yield [n.client_url for n in nodes]


@pytest.fixture
def tenant(fleet, team):
    """An account with two users whose creds connect on every node: alice (to be revoked) and bob."""
    from accounts_service.services import account_create, user_create, user_creds_get

    account = account_create(actor=PLATFORM, team=team, name="telemetry")
    alice = user_create(actor=PLATFORM, account=account, name="alice")
    bob = user_create(actor=PLATFORM, account=account, name="bob")
    creds = {"alice": user_creds_get(user=alice), "bob": user_creds_get(user=bob)}
    # Pushed by a worker if one runs, else by the reconciler; either way, on every node before the test goes on.
    wait_for(lambda: pending_unless(all(knock(url, creds["alice"]) == "ok" for url in fleet), "not on every node"),
             timeout=15, what="alice's creds accepted on every node")
    return account, alice, creds


def propagation_queue(redis_broker) -> int:
    import redis as redis_py

    return redis_py.Redis.from_url(redis_broker.url).llen("propagation")


# ------------------------------------------------------------------------------------------------
# 1. A worker was pushing, and is SIGKILLed: the revocation reaches every node without it
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def worker(redis_broker, tmp_path):
    log_path = tmp_path / "worker.log"
    env = subprocess_env(REDIS_URL=redis_broker.url, CELERY_TASK_ALWAYS_EAGER="false")
    proc = celery_py(*WORKER, "-n", "propagation@%h", env=env, log_path=log_path)
    proc.log_path = log_path
    try:
        yield proc
    finally:
        stop_process(proc, timeout=30)


def test_revocation_reaches_every_node_with_the_worker_sigkilled(fleet, redis_broker, worker, tenant):
    from accounts_service.services import user_revoke

    _, alice, creds = tenant
    # The worker is up and taking the queue (the tenant's pushes went through Redis).
    wait_for(lambda: worker.poll() is not None or propagation_queue(redis_broker) == 0, timeout=30,
             what="the worker to drain the propagation queue")
    assert worker.poll() is None, worker.log_path.read_text()[-3000:]
    held = Held(fleet, creds["alice"])
    try:
        os.killpg(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=10) == -signal.SIGKILL

        started = time.monotonic()
        user_revoke(actor=PLATFORM, user=alice)
        committed = time.monotonic() - started
        assert propagation_queue(redis_broker) == 1, "the push was not queued in Redis"

        seconds = refused_everywhere(fleet, creds["alice"], REVOKED, since=started, held=held)
        assert_within_deadline(f"worker SIGKILLed (revoke committed in {committed:.2f}s)", seconds)
        assert propagation_queue(redis_broker) == 1, "a worker took the push: this proves nothing"
    finally:
        held.close()
    assert all(knock(url, creds["bob"]) == "ok" for url in fleet), "bob was not revoked"


# ------------------------------------------------------------------------------------------------
# 2. Redis itself is down: the tenant's change commits, and the nodes refuse the revoked user
# ------------------------------------------------------------------------------------------------


def test_revocation_with_redis_down_commits_and_reaches_every_node(fleet, redis_broker, tenant, caplog):
    from accounts_service.models import NatsUser, Revocation
    from accounts_service.services import user_revoke

    account, alice, creds = tenant
    held = Held(fleet, creds["alice"])
    try:
        redis_broker.stop()
        caplog.set_level("WARNING", logger="broker_gateway.signals")

        started = time.monotonic()
        user_revoke(actor=PLATFORM, user=alice)
        committed = time.monotonic() - started
        # Committed, though nothing could be enqueued: the failure is only logged.
        assert NatsUser.objects.get(pk=alice.pk).revoked_at is not None
        assert Revocation.objects.filter(account=account, public_key=alice.public_key).exists()
        assert any("could not enqueue broker_gateway.tasks.account_push" in r.getMessage() for r in caplog.records), \
            [r.getMessage() for r in caplog.records]

        seconds = refused_everywhere(fleet, creds["alice"], REVOKED, since=started, held=held)
        assert_within_deadline(f"Redis down (revoke committed in {committed:.2f}s)", seconds)
    finally:
        held.close()
    assert all(knock(url, creds["bob"]) == "ok" for url in fleet), "bob was not revoked"


# ------------------------------------------------------------------------------------------------
# 3. A suspension with no worker: new connections refused on every node
# ------------------------------------------------------------------------------------------------


def test_suspension_reaches_every_node_with_no_worker(fleet, redis_broker, tenant):
    from accounts_service.services import account_suspend

    account, _, creds = tenant
    queued = propagation_queue(redis_broker)

    started = time.monotonic()
    account_suspend(account=account, reason="test: no worker", actor=PLATFORM)
    assert propagation_queue(redis_broker) == queued + 1, "the push was not queued in Redis"

    seconds = refused_everywhere(fleet, creds["bob"], SUSPENDED, since=started)
    assert_within_deadline("suspended with no worker", seconds)


# ------------------------------------------------------------------------------------------------
# 4. An account deleted with no worker: gone from every node's store, its clients closed
# ------------------------------------------------------------------------------------------------


def test_deleted_account_is_removed_from_every_node_with_no_worker(fleet, redis_broker, tenant):
    from accounts_service.services import account_delete
    from broker_gateway.services import gateway_get

    account, _, creds = tenant
    held = Held(fleet, creds["bob"])
    try:
        queued = propagation_queue(redis_broker)
        started = time.monotonic()
        account_delete(actor=PLATFORM, account=account)
        assert propagation_queue(redis_broker) == queued + 1, "the delete was not queued in Redis"

        def stored() -> object:
            (jwts,) = gateway_get().lookup([account.public_key], expect=3, timeout=1.0)
            return pending_unless(jwts == ["", "", ""], {"held by": sum(bool(j) for j in jwts), "of": len(jwts)})

        wait_for(stored, timeout=DEADLINE + 5, what="the account gone from every node's store (LOOKUP)")
        seconds = {"gone from every store": time.monotonic() - started}
        seconds.update(refused_everywhere(fleet, creds["bob"], REVOKED, since=started, held=held))
        assert_within_deadline("deleted with no worker", seconds)
    finally:
        held.close()
