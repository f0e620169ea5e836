"""The fleet supervisor: drives every node toward its desired state, one short tick at a time.

Each tick reads the nodes from the database (so `fleet add/remove/start/stop/scale` from any process
takes effect without restarting anything else), looks at each node's instance, and takes at most one
step: start, probe, mark healthy or unhealthy, restart with exponential backoff, give up after
``max_failures`` straight failures, or stop (lame duck, then kill after a grace period).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from broker_gateway.fleet.driver import FleetDriver, NodeSpec
from broker_gateway.fleet.node_sync import NodeSyncer
from broker_gateway.fleet.reconciler import Reconciler
from broker_gateway.models import BrokerNode
from broker_gateway.nodes import node_add, node_config_build, node_store_rows
from broker_gateway.propagation import node_claims_primed
from core.errors import ApplicationError

__all__ = ["NodeSyncer", "Policy", "Supervisor"]  # (NodeSyncer lives in fleet/node_sync.py)

log = logging.getLogger(__name__)

Observed = BrokerNode.Observed


@dataclass(frozen=True)
class Policy:
    """Timings of supervision, in seconds (settings FLEET_*)."""

    start_timeout: float = 15.0  # starting longer than this without a healthy probe: unhealthy
    liveness_timeout: float = 30.0  # unhealthy longer than this (e.g. frozen): killed and restarted
    max_failures: int = 5  # straight failures before a node is marked failed
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    stable_after: float = 10.0  # healthy this long: the failure count starts again from zero
    stop_grace: float = 10.0  # after lame duck (or SIGTERM) ends, wait this long before SIGKILL
    lame_duck: float = 30.0
    heartbeat: float = 5.0  # how often a healthy node's last_healthy_at is refreshed
    discover_every: float = 30.0  # how often a driver that can discover nodes (Kubernetes) is asked for new ones

    @classmethod
    def from_settings(cls) -> Policy:
        from broker_gateway.config import _seconds

        return cls(
            start_timeout=settings.FLEET_START_TIMEOUT,
            liveness_timeout=settings.FLEET_LIVENESS_TIMEOUT,
            max_failures=settings.FLEET_MAX_FAILURES,
            backoff_base=settings.FLEET_BACKOFF_BASE,
            backoff_max=settings.FLEET_BACKOFF_MAX,
            stable_after=settings.FLEET_STABLE_SECONDS,
            stop_grace=settings.FLEET_STOP_GRACE,
            lame_duck=_seconds(settings.FLEET_LAME_DUCK_DURATION),
            discover_every=settings.FLEET_DISCOVER_SECONDS,
        )

    def backoff(self, failures: int) -> float:
        """Delay before restart number ``failures`` (1, 2, ...): base, 2·base, 4·base, ... capped."""
        return min(self.backoff_base * (2 ** max(failures - 1, 0)), self.backoff_max)


@dataclass
class _Runtime:
    """What the supervisor remembers about a node between ticks (not worth a database write)."""

    instance: bool = False  # we started an instance and have not yet seen it end
    ever_started: bool = False
    started_at: float = 0.0
    healthy_since: float | None = None
    unhealthy_since: float | None = None
    backoff_until: float = 0.0
    stop_deadline: float | None = None
    last_beat: float = 0.0
    refusal: str = ""  # the driver's last refusal, logged once
    primed: bool | None = None  # this tick's store write, done ahead for nodes starting together (None: not yet)
    checked: tuple[str, str | None] | None = None  # (config, its `nats-server -t` error), checked ahead likewise


class Supervisor:
    def __init__(self, driver: FleetDriver, *, policy: Policy | None = None,
                 on_healthy: Callable[[BrokerNode], None] | None = None,
                 on_lame_duck: Callable[[BrokerNode], object] | None = None,
                 reconciler: Reconciler | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.driver = driver
        # Propagation that needs no Celery worker, on a thread of its own that runs as long as the loop does.
        self.reconciler = reconciler
        self.policy = policy or Policy.from_settings()
        self.on_healthy = on_healthy or (lambda node: None)
        if on_lame_duck is None:  # metering: a node in lame duck reports its clients' counters only over HTTP
            from broker_gateway.collector import lame_duck_sample as on_lame_duck
        self.on_lame_duck = on_lame_duck
        self.clock = clock
        self.runtime: dict[str, _Runtime] = {}
        self._store: tuple[list, dict[str, str]] | None = None
        self._next_discover = 0.0
        # What a started node's store was written with is recorded off this thread: 10,000 rows per node would
        # hold up the next node's start and every probe of the tick.
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="primed-claims")

    # -- database ---------------------------------------------------------------------------------

    @staticmethod
    def _update(node: BrokerNode, **fields) -> None:
        if "observed_state" in fields and fields["observed_state"] != node.observed_state:
            fields["state_changed_at"] = timezone.now()
            log.info("node %s: %s -> %s", node.name, node.observed_state, fields["observed_state"],
                     extra={"node": node.name})
        BrokerNode.objects.filter(pk=node.pk).update(**fields)
        for key, value in fields.items():
            if not hasattr(value, "resolve_expression"):
                setattr(node, key, value)

    def adopt(self) -> None:
        """At start: kill node processes a previous supervisor left behind, and forget their state."""
        reap = getattr(self.driver, "reap_stale", None)
        for node in BrokerNode.objects.all():
            if reap is not None and node.pid:
                reap(node.pid, self.driver.config_path(node.name))
            if node.observed_state != Observed.FAILED or node.desired_state == BrokerNode.Desired.STOPPED:
                self._update(node, observed_state=Observed.STOPPED, pid=None)

    # -- the loop ---------------------------------------------------------------------------------

    def tick(self) -> None:
        self._store = None  # every account's latest JWT, read at most once a tick, when a node starts
        self._discover()
        nodes = {n.name: n for n in BrokerNode.objects.all()}
        for name in list(self.runtime):
            if name not in nodes:
                try:
                    self._retire(name)
                except ApplicationError as exc:  # refused (or the API server is away): asked again next tick
                    self._refused(name, exc)
                except Exception:  # a driver that talks to an API server can fail here too
                    log.exception("retiring %s failed", name, extra={"node": name})
        self._prime_ahead(list(nodes.values()))
        for node in nodes.values():
            try:
                self._step(node)
            except ApplicationError as exc:
                self._refused(node.name, exc, node)
            except Exception:  # one node's trouble must not stop the others' supervision
                log.exception("supervising %s failed", node.name, extra={"node": node.name})

    def _store_get(self) -> tuple[list, dict[str, str]]:
        if self._store is None:
            rows = node_store_rows()
            self._store = (rows, {pub: jwt for _pk, pub, jwt, _jti, _iat in rows})
        return self._store

    def _starts_now(self, node: BrokerNode) -> bool:
        """``_step`` will start this node in this tick (the same conditions, read without changing anything)."""
        rt = self.runtime.get(node.name) or _Runtime()
        return (node.desired_state == BrokerNode.Desired.RUNNING and rt.stop_deadline is None and not rt.instance
                and node.observed_state != Observed.FAILED and self.clock() >= rt.backoff_until
                and not self.driver.status(node.name).running)

    def _prime_ahead(self, nodes: list[BrokerNode]) -> None:
        """Nodes starting in the same tick (a region coming back) get their stores written and their configs
        checked (``nats-server -t``, a process of its own, 0.1 s on a quiet machine and seconds on a starved one)
        side by side rather than one after another: file work on each node's own directory. The configs are built
        here, on this thread (they read the database); the starts stay on this thread too (a node's death signal
        follows the thread that forked it)."""
        for rt in self.runtime.values():
            rt.primed = rt.checked = None  # work done ahead counts for its own tick only
        due = [n for n in nodes if self._starts_now(n)]
        if len(due) < 2:
            return
        jwts = self._store_get()[1]
        specs: dict[str, NodeSpec] = {}
        for node in due:
            try:
                specs[node.name] = self._spec(node, node_config_build(node=node,
                                                                      dirs=self.driver.data_dirs(node.name)))
            except (ApplicationError, ValueError):
                pass  # _start builds it again and records the failure as the node's own

        def ahead(node: BrokerNode) -> tuple[bool | None, tuple[str, str | None] | None]:
            primed = checked = None
            # A failure here is not the node's yet: _start does the work again, on this thread, and records it.
            with contextlib.suppress(Exception):
                primed = bool(self.driver.prime(node.name, jwts))
            spec = specs.get(node.name)
            if spec is not None:
                with contextlib.suppress(Exception):
                    checked = (spec.config, self.driver.check_config(spec))
            return primed, checked

        with ThreadPoolExecutor(max_workers=min(8, len(due)), thread_name_prefix="prime") as pool:
            done = list(pool.map(ahead, due))
        for node, (primed, checked) in zip(due, done, strict=True):
            rt = self.runtime.setdefault(node.name, _Runtime())
            rt.primed, rt.checked = primed, checked

    def _refused(self, name: str, exc: ApplicationError, node: BrokerNode | None = None) -> None:
        """A driver's refusal (e.g. Kubernetes cannot stop a pod below the StatefulSet's highest ordinal, or its
        API server is unreachable): logged once, kept as the node's last error, and tried again next tick."""
        rt = self.runtime.setdefault(name, _Runtime())
        if rt.refusal != exc.message:
            rt.refusal = exc.message
            log.warning("node %s: %s", name, exc.message, extra={"node": name})
        if node is not None and node.last_error != exc.message[:2000]:
            self._update(node, last_error=exc.message[:2000])

    def _discover(self) -> None:
        """Register the nodes a driver finds that the database lacks (Kubernetes: the StatefulSet's pods). A node
        being retired is not one of them."""
        discover = getattr(self.driver, "discover", None)
        if discover is None or self.clock() < self._next_discover:
            return
        self._next_discover = self.clock() + self.policy.discover_every
        try:
            known = set(BrokerNode.objects.values_list("name", flat=True)) | set(self.runtime)
            for found in discover():
                if found.name not in known:
                    node_add(name=found.name, host=found.host, ports=found.ports,
                             region=getattr(found, "region", None))
                    log.info("node %s discovered at %s", found.name, found.host, extra={"node": found.name})
        except Exception as exc:  # the next discovery tries again
            log.warning("node discovery failed: %s", exc)

    def run(self, stop: threading.Event, *, interval: float = 0.25) -> None:
        self.adopt()
        if self.reconciler is not None:
            self.reconciler.start()
        try:
            while not stop.is_set():
                self.tick()
                stop.wait(interval)
        finally:
            if self.reconciler is not None:
                self.reconciler.stop()  # before the nodes go: its pushes would only fail
            self.shutdown()

    def start_background(self, *, interval: float = 0.25) -> None:
        """Run the loop in a thread of this process (tests, benchmarks, embedding); see stop_background.

        The thread lives as long as the loop: nodes are started from it, and their death signal
        (PR_SET_PDEATHSIG) follows the thread that forked them.
        """
        self._bg_stop = threading.Event()
        self.error: BaseException | None = None

        def body() -> None:
            try:
                self.run(self._bg_stop, interval=interval)
            except BaseException as exc:  # surfaced by stop_background
                self.error = exc
            finally:
                connection.close()

        self._bg_thread = threading.Thread(target=body, name="fleet-supervisor", daemon=True)
        self._bg_thread.start()

    def stop_background(self, *, timeout: float = 60) -> None:
        """Stop the background loop (every node stops with it) and re-raise what ended it, if anything."""
        self._bg_stop.set()
        self._bg_thread.join(timeout=timeout)
        if self.error is not None:
            raise self.error

    @staticmethod
    def _claims_primed(node_id: int, name: str, rows: list) -> None:
        try:
            node_claims_primed(node_id=node_id, rows=rows)
        except Exception:  # the full sync records the same from the node's own acknowledgements
            log.exception("recording what %s was started with failed", name)
        finally:
            connection.close()  # this thread's own connection

    def shutdown(self) -> None:
        """Stop every node (SIGTERM, SIGKILL after the grace period) and record it."""
        self._recorder.shutdown(wait=True)
        self._recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="primed-claims")
        self.driver.close(self.policy.stop_grace)
        BrokerNode.objects.exclude(observed_state=Observed.FAILED).update(
            observed_state=Observed.STOPPED, pid=None, state_changed_at=timezone.now())
        self.runtime.clear()

    # -- one node ---------------------------------------------------------------------------------

    @staticmethod
    def _spec(node: BrokerNode, config: str = "") -> NodeSpec:
        return NodeSpec(name=node.name, config=config, host=node.host, client_port=node.client_port,
                        monitoring_port=node.monitoring_port)

    def _step(self, node: BrokerNode) -> None:
        rt = self.runtime.setdefault(node.name, _Runtime())
        status = self.driver.status(node.name)
        if node.desired_state == BrokerNode.Desired.STOPPED or rt.stop_deadline is not None:
            self._step_stopping(node, rt, status.running)
        elif status.running:
            rt.instance = True  # also an instance found running (Kubernetes adopts pods): its end is a failure
            self._step_running(node, rt)
        elif rt.instance:
            self._ended(node, rt, status.exit_code, status.error)
        elif node.observed_state != Observed.FAILED and self.clock() >= rt.backoff_until:
            self._start(node, rt)

    def _step_stopping(self, node: BrokerNode, rt: _Runtime, running: bool) -> None:
        now = self.clock()
        if running:
            if rt.stop_deadline is None:
                self.driver.stop(node.name, graceful=True)
                rt.stop_deadline = now + self.policy.lame_duck + self.policy.stop_grace
                self._update(node, observed_state=Observed.STOPPING)
            elif now >= rt.stop_deadline:
                log.warning("node %s outlived its lame duck period; killing it", node.name, extra={"node": node.name})
                self.driver.kill(node.name)
            else:
                self.on_lame_duck(node)
            return
        rt.instance, rt.stop_deadline, rt.healthy_since, rt.unhealthy_since = False, None, None, None
        if node.desired_state == BrokerNode.Desired.STOPPED and node.observed_state != Observed.STOPPED:
            self._update(node, observed_state=Observed.STOPPED, pid=None)

    def _step_running(self, node: BrokerNode, rt: _Runtime) -> None:
        now = self.clock()
        health = self.driver.probe(self._spec(node))
        if health.healthy:
            rt.unhealthy_since = None
            if node.observed_state != Observed.HEALTHY:
                rt.healthy_since, rt.last_beat = now, now
                self._update(node, observed_state=Observed.HEALTHY, last_healthy_at=timezone.now(),
                             server_id=health.server_id or node.server_id, version=health.version or node.version,
                             last_error="")
                self.on_healthy(node)
                return
            if now - rt.last_beat >= self.policy.heartbeat:
                rt.last_beat = now
                fields = {"last_healthy_at": timezone.now()}
                if node.consecutive_failures and now - (rt.healthy_since or now) >= self.policy.stable_after:
                    fields["consecutive_failures"] = 0
                self._update(node, **fields)
            return
        if node.observed_state == Observed.STARTING and now - rt.started_at < self.policy.start_timeout:
            return
        if rt.unhealthy_since is None:
            rt.unhealthy_since, rt.healthy_since = now, None
            self._update(node, observed_state=Observed.UNHEALTHY, last_error=health.detail[:2000])
        elif now - rt.unhealthy_since >= self.policy.liveness_timeout:
            log.warning("node %s unhealthy for %.0fs; killing it", node.name, now - rt.unhealthy_since,
                        extra={"node": node.name})
            self.driver.kill(node.name)

    def _ended(self, node: BrokerNode, rt: _Runtime, exit_code: int | None, error: str) -> None:
        """The instance ended while it should run: a failure. Restart after a backoff, or give up."""
        rt.instance, rt.healthy_since, rt.unhealthy_since = False, None, None
        failures = node.consecutive_failures + 1
        error = (error or f"exited with status {exit_code}")[-2000:]
        if failures >= self.policy.max_failures:
            log.error("node %s failed %d times in a row; not restarting it: %s", node.name, failures, error,
                      extra={"node": node.name})
            self._update(node, observed_state=Observed.FAILED, consecutive_failures=failures, pid=None,
                         last_error=error)
            return
        delay = self.policy.backoff(failures)
        rt.backoff_until = self.clock() + delay
        log.warning("node %s ended (%s); restarting in %.1fs", node.name, error.splitlines()[-1] if error else "",
                    delay, extra={"node": node.name})
        self._update(node, observed_state=Observed.UNHEALTHY, consecutive_failures=failures, pid=None,
                     last_error=error)

    def _start(self, node: BrokerNode, rt: _Runtime) -> None:
        try:
            config = node_config_build(node=node, dirs=self.driver.data_dirs(node.name))
        except (ApplicationError, ValueError) as exc:
            self._update(node, observed_state=Observed.FAILED, last_error=f"config: {exc}")
            return
        spec = self._spec(node, config)
        checked, rt.checked = rt.checked, None
        # The check made ahead this tick stands if it checked this very config (it is rebuilt here from the
        # database, so a change in between is checked again).
        error = checked[1] if checked is not None and checked[0] == config else self.driver.check_config(spec)
        if error:
            log.error("node %s has an invalid config: %s", node.name, error, extra={"node": node.name})
            self._update(node, observed_state=Observed.FAILED, last_error=error[-2000:], pid=None)
            return
        rows, jwts = self._store_get()
        primed = rt.primed if rt.primed is not None else self.driver.prime(node.name, jwts)
        rt.primed = None
        if primed:
            self._recorder.submit(self._claims_primed, node.pk, node.name, rows)
        status = self.driver.start(spec)
        # A restart is a start after a failure (the instance ended while it should run); an operator's start of a
        # node they stopped is not one.
        restart = node.consecutive_failures > 0
        rt.instance, rt.ever_started, rt.started_at = True, True, self.clock()
        rt.unhealthy_since = rt.healthy_since = None
        fields = {"observed_state": Observed.STARTING, "pid": status.pid}
        if restart:
            fields["restarts"] = F("restarts") + 1
        self._update(node, **fields)
        if restart:
            node.refresh_from_db(fields=["restarts"])

    def _retire(self, name: str) -> None:
        """A node removed from the database: lame duck it, kill it after the grace period, drop its data."""
        rt = self.runtime[name]
        now = self.clock()
        if self.driver.status(name).running:
            if rt.stop_deadline is None:
                self.driver.stop(name, graceful=True)
                rt.stop_deadline = now + self.policy.lame_duck + self.policy.stop_grace
            elif now >= rt.stop_deadline:
                self.driver.kill(name)
            return
        self.driver.forget(name)
        del self.runtime[name]
