"""The fleet as real processes: ``manage.py fleet run`` ended by every signal, nodes added, stopped, started and
removed while it runs, and a Celery worker SIGKILLed in the middle of a burst of pushes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from accounts_service.rights import PLATFORM
from tests.fleet import celery_py, manage_py, nodes_add, stop_process, subprocess_env
from tests.natsproc import free_port
from tests.waiting import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),  # the subprocesses share the database file: rows must be committed
    pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; nodes die with `fleet run` by PR_SET_PDEATHSIG"),
]

# `fleet run` reads its timings from settings; these make a test fleet quick to stop. nats-server refuses a
# lame duck duration under 30s, so that one stays. A long resolver interval keeps the nodes' own resolver sync
# (a second path behind our pushes) out of the way: what reaches a node here reached it through a push.
FLEET_ENV = {"FLEET_STOP_GRACE": "5", "FLEET_BACKOFF_BASE": "0.1", "FLEET_BACKOFF_MAX": "1",
             "NATS_RESOLVER_INTERVAL": "10m"}


# ------------------------------------------------------------------------------------------------
# Processes of a test, stopped in reverse order whatever happens
# ------------------------------------------------------------------------------------------------


@dataclass
class Procs:
    tmp_path: Path
    started: list[tuple[subprocess.Popen, Path]] = field(default_factory=list)

    @property
    def fleet_dir(self) -> Path:
        return self.tmp_path / "fleet"

    def env(self, **extra: str) -> dict[str, str]:
        # Tasks enqueued by a `manage.py` process run in it, unless a test brings a broker (test 3).
        return subprocess_env(**{"FLEET_DIR": str(self.fleet_dir), "CELERY_TASK_ALWAYS_EAGER": "true",
                                 **FLEET_ENV, **extra})

    def manage(self, *args: str, log: str, **env: str) -> subprocess.Popen:
        log_path = self.tmp_path / f"{log}.log"
        proc = manage_py(*args, env=self.env(**env), log_path=log_path)
        self.started.append((proc, log_path))
        return proc

    def command(self, *args: str, **env: str) -> str:
        """``manage.py ARGS`` to completion; its output (it must succeed)."""
        log = "-".join(a for a in args if not a.startswith("-"))[:40]
        proc = self.manage(*args, log=log, **env)
        assert proc.wait(timeout=60) == 0, self.log(proc)
        return self.log(proc)

    def celery(self, *args: str, log: str, **env: str) -> subprocess.Popen:
        log_path = self.tmp_path / f"{log}.log"
        proc = celery_py(*args, env=self.env(**env), log_path=log_path)
        self.started.append((proc, log_path))
        return proc

    def log(self, proc: subprocess.Popen) -> str:
        path = next(p for q, p in self.started if q is proc)
        return path.read_text(errors="replace")[-6000:] if path.exists() else ""

    def stop_all(self) -> None:
        from broker_gateway.services import gateway_reset

        gateway_reset()  # this process's fleet connection would only log reconnect errors once the nodes go
        for proc, _ in reversed(self.started):
            stop_process(proc, timeout=30)
        # A safety net, not part of any assertion: no node of this test may outlive it even if the product failed.
        for pid in node_processes(self.fleet_dir):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def procs(tmp_path):
    p = Procs(tmp_path)
    yield p
    p.stop_all()


def node_processes(fleet_dir: Path) -> list[int]:
    """Live nats-server processes started with a config under ``fleet_dir`` (zombies have exited: not live)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process_alive(int(entry.name), fleet_dir):
            found.append(int(entry.name))
    return found


def process_alive(pid: int, fleet_dir: Path) -> bool:
    """Is ``pid`` a running nats-server of this fleet? (False once it exited, even if not yet reaped, and when
    the pid now belongs to another process.)"""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and "nats-server" in cmdline and str(fleet_dir) in cmdline


def healthy_pids(names: list[str]) -> dict[str, int] | None:
    """Pids of ``names`` once every one is healthy by the supervisor's records."""
    from broker_gateway.models import BrokerNode

    rows = dict(BrokerNode.objects.filter(name__in=names, observed_state=BrokerNode.Observed.HEALTHY,
                                          pid__isnull=False).values_list("name", "pid"))
    return rows if set(rows) == set(names) else None


def fleet_up(procs: Procs, names: list[str], **env: str) -> tuple[subprocess.Popen, dict[str, int]]:
    """``manage.py fleet run`` as a process; returns it with its nodes' pids once all are healthy."""
    run = procs.manage("fleet", "run", "--interval", "0.1", log="fleet-run", **env)
    wait_for(lambda: run.poll() is not None or healthy_pids(names), timeout=30, what=f"{names} healthy")
    assert run.poll() is None, procs.log(run)
    pids = healthy_pids(names)
    for name, pid in pids.items():
        assert process_alive(pid, procs.fleet_dir), f"{name}: pid {pid} is not our nats-server"
    return run, pids


def push_replies(account, node) -> set[str]:
    """Servers that acknowledge a push of ``account`` sent to ``node`` (every node of the cluster answers)."""
    from broker_gateway.gateway import reply_ok, reply_server
    from broker_gateway.propagation import account_jwt_send

    result = account_jwt_send(account=account, url=node.client_url, expect=10_000, timeout=1.0)
    return {reply_server(r) for r in result.replies if reply_ok(r)}


# ------------------------------------------------------------------------------------------------
# 1. `fleet run` ended by SIGTERM, SIGINT or SIGKILL leaves no node behind
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_fleet_run_leaves_no_node_behind(operator_setup, procs, signum):
    from broker_gateway.models import BrokerNode

    names = [n.name for n in nodes_add(3)]
    run, pids = fleet_up(procs, names)

    os.killpg(run.pid, signum)  # `fleet run`'s own group: each node runs in a session of its own
    code = run.wait(timeout=30)

    # SIGTERM/SIGINT: the supervisor stops every node itself (SIGTERM, SIGKILL after FLEET_STOP_GRACE) before it
    # exits. SIGKILL: nothing runs in `fleet run` any more; each node was started with PR_SET_PDEATHSIG=SIGKILL,
    # so the kernel kills it when its parent dies (Linux only, see broker_gateway/fleet/local.py).
    wait_for(lambda: not any(process_alive(pid, procs.fleet_dir) for pid in pids.values()), timeout=10,
             what=f"node processes {pids} gone after {signum.name}")
    assert node_processes(procs.fleet_dir) == [], "a nats-server of this fleet is still running"
    for name, pid in pids.items():
        assert not process_alive(pid, procs.fleet_dir), f"{name} (pid {pid}) survived {signum.name}"

    nodes = list(BrokerNode.objects.order_by("name"))
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        # Nobody was left to record it: the rows still show the dead pids until the next `fleet run` adopts them.
        assert {n.name: n.pid for n in nodes} == pids
    else:
        assert code == 0, procs.log(run)
        assert "fleet stopped" in procs.log(run)
        assert [(n.observed_state, n.pid) for n in nodes] == [("stopped", None)] * 3


# ------------------------------------------------------------------------------------------------
# 2. Adding, stopping, starting and removing a node while `fleet run` runs; the others are not restarted
# ------------------------------------------------------------------------------------------------


def test_node_added_stopped_started_and_removed_while_fleet_runs(operator_setup, procs, team):
    from accounts_service.services import account_create
    from broker_gateway.models import BrokerNode

    names = [n.name for n in nodes_add(3)]
    account = account_create(actor=PLATFORM, team=team, name="probe")  # no supervisor yet, so nothing pushes it
    run, pids = fleet_up(procs, names)
    first = BrokerNode.objects.get(name="node-1")
    assert wait_for(lambda: push_replies(account, first) == set(names), what="3 nodes answer a push")

    ports = {kind: free_port() for kind in ("client", "cluster", "monitoring", "leafnode")}
    out = procs.command("fleet", "add", "node-4", *[a for k, p in ports.items() for a in (f"--{k}-port", str(p))])
    assert f"added node-4 to us-east: nats://127.0.0.1:{ports['client']}" in out
    new_pid = wait_for(lambda: healthy_pids(["node-4"]), timeout=20, what="node-4 healthy")
    # It joined the cluster (routes are gossiped): a push sent to node-1 now gets node-4's reply too.
    wait_for(lambda: push_replies(account, first) == {*names, "node-4"}, timeout=15, what="node-4 answers pushes")
    assert healthy_pids(names) == pids, "adding a node restarted another"
    assert all(process_alive(pid, procs.fleet_dir) for pid in pids.values())
    assert BrokerNode.objects.filter(restarts__gt=0).count() == 0

    # Stop and start it again: a new process, the same node; the others untouched.
    procs.command("fleet", "stop", "node-4")
    wait_for(lambda: BrokerNode.objects.filter(name="node-4", observed_state="stopped", pid=None).exists(),
             timeout=30 + 5 + 5, what="node-4 stopped")
    assert not process_alive(new_pid["node-4"], procs.fleet_dir)
    procs.command("fleet", "start", "node-4")
    new_pid = wait_for(lambda: healthy_pids(["node-4"]), timeout=20, what="node-4 healthy again")
    assert BrokerNode.objects.get(name="node-4").restarts == 0  # an operator's start is not a restart
    wait_for(lambda: push_replies(account, first) == {*names, "node-4"}, timeout=15, what="node-4 back in the cluster")

    procs.command("fleet", "remove", "node-4")
    # Lame duck: a node with no clients shuts down at once, one with clients spreads them over the lame duck
    # duration (30s); the supervisor kills it FLEET_STOP_GRACE (5s) after that. Either way it is bounded.
    wait_for(lambda: not process_alive(new_pid["node-4"], procs.fleet_dir), timeout=30 + 5 + 5,
             what="node-4 gone after remove")
    wait_for(lambda: push_replies(account, first) == set(names), timeout=10, what="node-4 left the cluster")
    wait_for(lambda: not (procs.fleet_dir / "node-4").exists(), what="node-4's data removed")
    assert healthy_pids(names) == pids, "removing a node restarted another"
    assert run.poll() is None, procs.log(run)


# ------------------------------------------------------------------------------------------------
# 3. A Celery worker SIGKILLed in the middle of a burst of pushes: no push is lost
# ------------------------------------------------------------------------------------------------

ACCOUNTS = 300


def _lookup_mismatches(accounts: dict[str, str]) -> list[str]:
    """Accounts some of the 3 nodes does not hold at their latest JWT, by LOOKUP (what the nodes really hold)."""
    from broker_gateway.services import gateway_get

    keys = sorted(accounts)
    held = gateway_get().lookup(keys, expect=3, timeout=2.0)
    return [key for key, jwts in zip(keys, held, strict=True) if len(jwts) != 3 or set(jwts) != {accounts[key]}]


def test_worker_sigkilled_mid_push_loses_no_push(operator_setup, redis_broker, procs, team):
    # (redis_broker, tests/integration/conftest.py, before procs: the workers are stopped before Redis is.)
    import redis as redis_py
    from django.conf import settings

    from accounts_service.models import Account
    from accounts_service.services import account_create
    from broker_gateway.selectors import accounts_behind_ids, healthy_nodes
    from broker_gateway.tasks import fleet_reconcile_task

    broker = redis_py.Redis.from_url(redis_broker.url)
    worker_env = {"REDIS_URL": redis_broker.url, "CELERY_TASK_ALWAYS_EAGER": "false"}
    # The pushes go to the propagation queue (broker_gateway.tasks); these workers consume every queue there is.
    worker_args = ["worker", "--pool=solo", "--loglevel=INFO", "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "-Q", ",".join(settings.WORKER_QUEUES)]  # as `manage.py up` and the chart

    names = [n.name for n in nodes_add(3)]
    fleet_up(procs, names)

    # Each account's JWT is enqueued for a push on commit (broker_gateway.signals): ACCOUNTS messages in Redis.
    created = [account_create(actor=PLATFORM, team=team, name=f"acct-{i}") for i in range(ACCOUNTS)]
    ids = [a.pk for a in created]
    assert broker.llen("propagation") == ACCOUNTS, "the pushes were not enqueued in Redis"

    first = procs.celery(*worker_args, "-n", "first@%h", log="worker-1", **worker_env)
    wait_for(lambda: first.poll() is not None or broker.llen("propagation") <= ACCOUNTS - 20, timeout=30,
             interval=0.005, what="the worker pushing")
    os.killpg(first.pid, signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL, procs.log(first)
    backlog, parked = broker.llen("propagation"), broker.hlen("unacked")
    assert backlog > 0, "the worker finished every push before it was killed: nothing was tested"

    # A new worker takes the backlog (the messages the dead worker never received). The message it was working
    # on is not lost either: with acks_late it stays in Redis's "unacked" hash, but kombu restores it only after
    # the visibility timeout (CELERY_VISIBILITY_TIMEOUT, 300s), so here it is not what brings that account back.
    second = procs.celery(*worker_args, "-n", "second@%h", log="worker-2", **worker_env)
    wait_for(lambda: second.poll() is not None or broker.llen("propagation") == 0, timeout=30, what="backlog taken")
    stop_process(second)  # warm shutdown: it finishes (and acks) the push in hand, so what follows is settled
    assert second.returncode == 0, procs.log(second)
    nodes = healthy_nodes()
    assert len(nodes) == 3
    lost = sorted(set(accounts_behind_ids(nodes)) & set(ids))
    print(f"killed with {backlog} queued, {parked} unacked; {len(lost)} account(s) behind after the backlog: {lost}")

    # The reconciler recovers the rest: the fleet_reconcile task (beat runs it every FLEET_BEAT_RECONCILE_SECONDS)
    # re-pushes every account whose latest JWT (jti) some healthy node has not acknowledged (NodeClaim).
    third = procs.celery(*worker_args, "-n", "third@%h", log="worker-3", **worker_env)
    fleet_reconcile_task.delay()
    wait_for(lambda: len(nodes := healthy_nodes()) == 3 and not accounts_behind_ids(nodes), timeout=30, interval=0.2,
             what="every account acknowledged by the 3 nodes")
    assert third.poll() is None, procs.log(third)

    # What the nodes hold, asked of each node (LOOKUP), not what our records say.
    latest = dict(Account.objects.filter(pk__in=ids).values_list("public_key", "jwt"))
    assert len(latest) == ACCOUNTS
    mismatches = _lookup_mismatches(latest)
    assert mismatches == [], f"{len(mismatches)} accounts not at their latest JWT on every node"
