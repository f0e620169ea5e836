"""Pushing accounts to the fleet: accounts_push() against a raw nats-py loop over the same requests.

Run from the repo root::

    .venv/bin/python bench/push.py                   # full run: 10,000 accounts, 3 nodes (~4 min)
    .venv/bin/python bench/push.py --quick           # 2,000 accounts, 3 rounds, 1 restart (~1 min)
    .venv/bin/python bench/push.py --accounts 5000 --rounds 3 --restarts 1 --profile
    .venv/bin/python bench/push.py --var-dir /tmp/pb10k   # keep the accounts for the next run (iterating)

Creating the accounts through ``account_create`` is most of a full run's time (~100/s here); with
``--var-dir`` they are created once and reused, and only the nodes are thrown away after each run.

Everything happens in a throw-away directory (``NATSCTL_VAR_DIR``, its own SQLite file, fleet
directory and seed-encryption key): migrate, ``operator_init``, N accounts created through
``account_create`` *before* any node exists (so creating them pushes nothing), then a real
3-node cluster started by the real supervisor (local process driver, production policy, free
ports). Every node process is stopped at the end, also on Ctrl-C, SIGTERM and errors.

Four figures:

1. product: ``broker_gateway.propagation.accounts_push()`` of every account to the 3 healthy nodes,
   in accounts/s, wall time of the whole call (DB reads, the pipelined UPDATE requests through the
   long-lived gateway, reply parsing, the NodeClaim upserts, the re-signed-meanwhile check);
2. floor, same run: a raw nats-py loop sending the same N ``$SYS.REQ.CLAIMS.UPDATE`` requests (the
   same JWT bytes) over its own connection as the same control-plane user to the same server, with
   the same window (``FLEET_PUSH_CONCURRENCY``) and waiting for every node's reply (3 per request),
   as the product must. (1) and (2) alternate, swapping which goes first each round; medians are
   reported, and the headline ratio is the median of the per-round ratios. Targets: ratio >= 0.8
   and product >= 1,000 accounts/s;
3. restart: SIGKILL one node (not the one the product's gateway is connected to), empty its resolver
   directory (a lost disk: the directory is renamed away the moment the process is gone), let the
   supervisor restart it, and time from the kill until LIST (``Gateway.list_claims``, on a connection
   of its own) shows that node holding every account plus the system account. LIST makes every node
   read every JWT file it holds, so it is not polled blindly: the victim's directory is counted
   locally and LIST is asked once it could be complete (then every second); the figure is when the
   confirming LIST answer arrived. Target <= 10 s;
4. fleet start: supervisor start until all 3 nodes are healthy (and, informational, until all 3
   hold every account through the supervisor's initial full syncs).

This is a measurement, not a test: it exits 0 and prints PASS or FAIL against each target (it exits
1 only when the setup itself fails).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import shutil
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchenv import bench_dir, bench_dir_close, db_argument, django_setup, fmt, sigterm_unwinds, verdict  # noqa: E402 (bench/ is the script's own folder)

from tests.fleet import nodes_add  # noqa: E402  (the repository root is on sys.path only now)
from tests.waiting import wait_for  # noqa: E402

TARGET_RATIO = 0.8
TARGET_RATE = 1_000.0  # accounts/s
TARGET_RESTART_S = 10.0
NODES = 3


# ---------------------------------------------------------------------------------------------
# Setup: a throw-away Django environment, accounts created before any node exists
# ---------------------------------------------------------------------------------------------


def accounts_create(count: int) -> tuple[float, float, int]:
    """Migrate, init the operator, create the accounts missing to make ``count`` (all of them in a fresh
    directory); (migrate seconds, create seconds, accounts created)."""
    from django.core.management import call_command
    from django.db import transaction

    from accounts_service import services as acc_services
    from accounts_service.rights import PLATFORM
    from broker_gateway.models import BrokerNode
    from broker_gateway.services import control_plane_user_ensure
    from operators import services as op_services

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    migrate_s = time.perf_counter() - t0
    op_services.operator_init(name="bench", identity_seed_out=None, store_identity_key=True)
    acc_services.system_account_ensure()
    control_plane_user_ensure()
    team = acc_services.team_get_or_create(name="bench")
    # With no BrokerNode row, the push-on-issue signal enqueues nothing (broker_gateway/signals.py).
    assert not BrokerNode.objects.exists()
    have = team.accounts.count()
    if have > count:
        raise SystemExit(f"the reused directory holds {have:,} accounts, more than --accounts {count:,}")
    from core.progress import progress_bar

    t0 = time.perf_counter()
    with progress_bar("  creating accounts", total=count - have, unit="accounts") as progress:
        for start in range(have, count, 500):
            with transaction.atomic():  # one fsync per 500 accounts rather than per account
                for i in range(start, min(start + 500, count)):
                    acc_services.account_create(actor=PLATFORM, team=team, name=f"acct-{i:06d}")
            progress(min(start + 500, count) - have)
    return migrate_s, time.perf_counter() - t0, count - have


# ---------------------------------------------------------------------------------------------
# The fleet: the real supervisor (production policy) in a thread, with its events timestamped
# ---------------------------------------------------------------------------------------------


class EventLog(logging.Handler):
    """Timestamps of the supervisor's state changes and of node syncs, captured from their logs."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self._mutex = threading.Lock()  # not self.lock: Handler.handle() holds that one around emit()
        self.transitions: list[tuple[float, str, str]] = []  # (monotonic, node, new state)
        self.syncs: list[tuple] = []  # (monotonic at end, node, seconds, accounts complete, accounts)
        self.sync_failures: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        # record.created is wall-clock; convert to the monotonic clock every other timing here uses.
        at = time.monotonic() - (time.time() - record.created)
        with self._mutex:
            if record.msg == "node %s: %s -> %s":
                self.transitions.append((at, record.args[0], record.args[2]))
            elif record.msg.startswith("full sync of"):
                self.sync_failures.append((at, record.getMessage()))
            elif record.msg == "node synced":
                self.syncs.append((at, getattr(record, "node", "?"), getattr(record, "seconds", 0.0),
                                   getattr(record, "complete", 0), getattr(record, "accounts", 0)))
        if record.levelno >= logging.WARNING:
            error = f" ({record.exc_info[1]!r})" if record.exc_info and record.exc_info[1] else ""
            print(f"  [log] {record.levelname} {record.name}: {record.getMessage()}{error}", file=sys.stderr)

    def first(self, node: str, state: str, after: float) -> float | None:
        with self._mutex:
            return next((t for t, n, s in self.transitions if n == node and s == state and t >= after), None)

    def sync_after(self, after: float) -> tuple | None:
        with self._mutex:
            return next((s for s in self.syncs if s[0] >= after), None)

    def attach(self) -> None:
        for name in ("broker_gateway.fleet.supervisor", "broker_gateway.propagation"):
            logger = logging.getLogger(name)
            logger.setLevel(logging.INFO)
            logger.propagate = False  # ours to print (warnings and up), not the root's INFO noise
            logger.addHandler(self)


@dataclass
class Fleet:
    base_dir: Path
    interval: float = 0.25  # what `manage.py fleet run` uses
    events: EventLog = field(default_factory=EventLog)

    def __post_init__(self) -> None:
        from broker_gateway.fleet.local import LocalProcessDriver
        from broker_gateway.fleet.supervisor import NodeSyncer, Policy, Supervisor

        self.driver = LocalProcessDriver(self.base_dir)
        self.syncer = NodeSyncer()
        self.supervisor = Supervisor(self.driver, policy=Policy.from_settings(), on_healthy=self.syncer)

    def start(self) -> float:
        self.events.attach()
        t0 = time.monotonic()
        self.supervisor.start_background(interval=self.interval)
        return t0

    def syncs_drained(self) -> None:
        """Wait until every full sync the supervisor asked for has run (the syncer is one FIFO worker)."""
        self.syncer._pool.submit(lambda: None).result(timeout=600)

    def stop(self) -> None:
        from broker_gateway.services import gateway_reset

        # Close the product's connection first: it would log every node going away as an error.
        gateway_reset()
        logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)
        with contextlib.suppress(Exception):  # what ended the loop was already reported
            self.supervisor.stop_background(timeout=60)
        # If the supervisor thread is stuck, nothing of ours may outlive us: kill what is left.
        for instance in list(self.driver._instances.values()):
            if instance.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(instance.proc.pid, signal.SIGKILL)
                instance.proc.wait(timeout=10)
        self.syncer.close()
        gateway_reset()


# ---------------------------------------------------------------------------------------------
# 1 + 2: accounts_push() against the raw nats-py floor
# ---------------------------------------------------------------------------------------------


class Floor:
    """The same UPDATE requests over a bare nats-py connection: publish with a reply subject, count
    replies in the subscription callback, release the window slot when all ``expect`` have come."""

    def __init__(self, url: str, *, expect: int, concurrency: int) -> None:
        from broker_gateway import nats_client
        from broker_gateway.services import control_plane_user_ensure
        from operators.services import nonce_signer_get

        user = control_plane_user_ensure()
        self.expect, self.concurrency = expect, concurrency
        self.loop = asyncio.new_event_loop()
        # The gateway's own connection options (pending buffer size), so that the wire work is the same.
        self.nc = self.loop.run_until_complete(nats_client.connect(
            url, user_jwt=user.jwt, sign_nonce=nonce_signer_get(user_seed=user.seed), name="bench-floor",
            pending_size=64 * 1024 * 1024))
        self.runs = 0

    async def _push(self, payloads: list[bytes], timeout: float) -> tuple[int, int]:
        from broker_gateway.gateway import UPDATE

        nc, expect = self.nc, self.expect
        self.runs += 1
        prefix = f"{nc.new_inbox()}."
        window = asyncio.Semaphore(self.concurrency)
        counts: dict[str, int] = {}
        state = {"left": len(payloads), "ok": 0}
        all_done = asyncio.Event()

        async def on_reply(msg) -> None:
            token = msg.subject[len(prefix):]
            n = counts.get(token)
            if n is None:
                return
            if b'"code":200' in msg.data:
                state["ok"] += 1
            if n + 1 >= expect:
                del counts[token]
                window.release()
                state["left"] -= 1
                if not state["left"]:
                    all_done.set()
            else:
                counts[token] = n + 1

        sub = await nc.subscribe(prefix + "*", cb=on_reply, pending_msgs_limit=1_000_000,
                                 pending_bytes_limit=512 * 1024 * 1024)
        try:
            for i, payload in enumerate(payloads):
                await asyncio.wait_for(window.acquire(), timeout)
                token = str(i)
                counts[token] = 0
                await nc.publish(UPDATE, payload, reply=prefix + token)
            await nc.flush(timeout=timeout)
            await asyncio.wait_for(all_done.wait(), timeout)
        finally:
            await sub.unsubscribe()
        return len(payloads) - state["left"], state["ok"]

    def push(self, payloads: list[bytes], timeout: float = 30.0) -> float:
        """Seconds to get every node's reply to every request (raises if replies are missing)."""
        t0 = time.perf_counter()
        done, ok = self.loop.run_until_complete(self._push(payloads, timeout))
        elapsed = time.perf_counter() - t0
        if done != len(payloads) or ok != len(payloads) * self.expect:
            raise RuntimeError(f"floor: {done}/{len(payloads)} requests complete, {ok} ok replies")
        return elapsed

    async def _first_reply(self, payloads: list[bytes], timeout: float) -> None:
        from broker_gateway.gateway import UPDATE

        window = asyncio.Semaphore(self.concurrency)

        async def one(payload: bytes) -> None:
            try:
                await self.nc.request(UPDATE, payload, timeout=timeout)
            finally:
                window.release()

        tasks = []
        for payload in payloads:
            await window.acquire()
            tasks.append(asyncio.ensure_future(one(payload)))
        await asyncio.gather(*tasks)

    def push_first_reply(self, payloads: list[bytes], timeout: float = 5.0) -> float:
        """Informational: nats-py's own ``request()`` (resolves on the first node's reply), same window."""
        t0 = time.perf_counter()
        self.loop.run_until_complete(self._first_reply(payloads, timeout))
        return time.perf_counter() - t0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.loop.run_until_complete(self.nc.close())
        self.loop.close()


def product_push() -> tuple[float, object]:
    from broker_gateway.propagation import accounts_push

    t0 = time.perf_counter()
    report = accounts_push()
    return time.perf_counter() - t0, report


def bench_push(floor: Floor, payloads: list[bytes], rounds: int) -> dict:
    n = len(payloads)
    product_rates: list[float] = []
    floor_rates: list[float] = []
    incomplete = 0
    for r in range(rounds):
        for which in (("product", "floor") if r % 2 == 0 else ("floor", "product")):
            if which == "product":
                elapsed, report = product_push()
                if not report.ok or report.accounts != n:
                    incomplete += 1
                    print(f"  ! product round {r + 1}: {report.complete}/{report.accounts} complete, "
                          f"{len(report.errors)} errors", file=sys.stderr)
                product_rates.append(report.accounts / elapsed)
            else:
                floor_rates.append(n / floor.push(payloads))
        print(f"  round {r + 1}/{rounds}: product {fmt(product_rates[-1])}/s, floor {fmt(floor_rates[-1])}/s",
              flush=True)
    round_ratios = [p / f for p, f in zip(product_rates, floor_rates, strict=True)]
    return {
        "product_rates": product_rates,
        "floor_rates": floor_rates,
        "product": statistics.median(product_rates),
        "floor": statistics.median(floor_rates),
        "round_ratios": round_ratios,
        "ratio": statistics.median(round_ratios),
        "incomplete": incomplete,
    }


def profile_push(gateway) -> None:
    """cProfile one accounts_push(): the calling thread and the gateway's event-loop thread separately
    (cProfile only sees the thread that enabled it)."""
    import cProfile
    import io
    import pstats

    main_prof, loop_prof = cProfile.Profile(), cProfile.Profile()
    gateway._loop.call_soon_threadsafe(loop_prof.enable)
    main_prof.enable()
    elapsed, report = product_push()
    main_prof.disable()
    done = threading.Event()

    def _off() -> None:
        loop_prof.disable()
        done.set()

    gateway._loop.call_soon_threadsafe(_off)
    done.wait(5)
    print(f"cProfile of one accounts_push() ({report.accounts:,} accounts, {elapsed:.2f} s under the profiler)")
    for title, prof in (("calling thread", main_prof), ("gateway event-loop thread", loop_prof)):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        text = out.getvalue()
        print(f"--- {title}, top 18 by own time ---")
        print(text[text.find("   ncalls"):].rstrip())
        print()


# ---------------------------------------------------------------------------------------------
# 3: a node that lost its disk, restarted by the supervisor
# ---------------------------------------------------------------------------------------------


class Monitor:
    """LIST through the product's ``Gateway.list_claims`` on a connection of its own (not the one pushes use).

    nats-py 2.16 stops reading for good when a PONG arrives after its flush() timed out (the cancelled
    future left in its PONG queue raises InvalidStateError in the read loop), and Gateway.request_many
    flushes with the request timeout: on a saturated machine a LIST can do that. Then the watch reconnects
    rather than report a node as empty.
    """

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.reopened = 0
        self.gateway = self._open()

    def _open(self):
        from broker_gateway.services import gateway_open

        return gateway_open(self.urls, name="bench-monitor")

    def _reopen(self) -> None:
        self.gateway.close()
        self.gateway = self._open()
        self.reopened += 1

    def list_claims(self, *, timeout: float) -> dict[str, set[str]] | None:
        """What each node holds, or None when the LIST failed (the connection is then replaced)."""
        from broker_gateway.gateway import GatewayUnavailable

        try:
            return self.gateway.list_claims(expect=NODES, timeout=timeout)
        except GatewayUnavailable:
            self._reopen()
            return None
        finally:
            reader = getattr(self.gateway._nc, "_reading_task", None)
            if reader is not None and reader.done() and self.gateway._nc.is_connected:
                self._reopen()

    def close(self) -> None:
        self.gateway.close()



def _alive(pid: int) -> bool:
    """Still running (a zombie no longer writes: the supervisor reaps it on its next tick)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _resolver_lose(path: Path) -> Path:
    """Empty the resolver directory at once (a lost disk): move it aside and leave an empty one.

    A rename, not a file-by-file delete: deleting 10,000 files can take seconds on a busy machine, and the
    restarted node must not find part of its old store, nor lose what it is sent after it starts.
    """
    lost = path.with_name(f"{path.name}.lost-{time.monotonic_ns()}")
    path.rename(lost)
    path.mkdir(exist_ok=True)
    return lost


def bench_restart(fleet: Fleet, monitor: Monitor, victim: str, wanted: set[str], *, timeout: float = 120.0) -> dict:
    from broker_gateway.models import BrokerNode

    resolver = Path(fleet.driver.data_dirs(victim).resolver)
    node = BrokerNode.objects.get(name=victim)
    old_pid = fleet.driver.status(victim).pid
    before = len((monitor.list_claims(timeout=5.0) or {}).get(victim, set()) & wanted)
    reopened = monitor.reopened
    t_kill = time.monotonic()
    os.killpg(old_pid, signal.SIGKILL)  # a crash: the supervisor finds out on its own
    # Lose the disk once it is dead (the supervisor waits FLEET_BACKOFF_BASE before restarting it).
    while _alive(old_pid):
        time.sleep(0.001)
    lost = _resolver_lose(resolver)
    t_wiped = time.monotonic()
    # LIST is not cheap to poll: every node reads every JWT file it holds to answer, and the reply is ~60
    # bytes per account (600 kB at 10,000), parsed here on CPUs the fleet shares. So watch the victim's
    # resolver directory (a local count of files) and ask LIST once it could be complete, then every second
    # until LIST confirms (and every 5 s meanwhile, in case the files tell us nothing). The figure is when
    # the confirming LIST answer arrived.
    polls = failed_polls = 0
    t_done = t_files = None
    held: set[str] = set()
    next_list = t_kill + 5.0
    while time.monotonic() - t_kill <= timeout:
        now = time.monotonic()
        if t_files is None:
            with contextlib.suppress(OSError):
                if sum(1 for e in os.scandir(resolver) if e.name.endswith(".jwt")) >= len(wanted):
                    t_files = next_list = now
        if now < next_list or fleet.events.first(victim, "healthy", t_kill) is None:
            time.sleep(0.05)  # counting 10,000 directory entries costs ~10 ms of our CPU
            continue
        next_list = now + (1.0 if t_files is not None else 5.0)
        listed = monitor.list_claims(timeout=5.0)
        if listed is None:
            failed_polls += 1
            continue
        polls += 1
        held = listed.get(victim, held)
        if wanted <= held:
            t_done = time.monotonic()
            break

    ev = fleet.events
    t_start = ev.first(victim, "starting", t_kill)
    t_healthy = ev.first(victim, "healthy", t_kill)
    sync = None
    if t_healthy is not None:
        with contextlib.suppress(AssertionError):  # wait_for's timeout
            sync = wait_for(lambda: ev.sync_after(t_healthy), timeout=30 if t_done else 1, what="the sync")
    sync = sync or (t_kill, "?", float("nan"), 0, 0)
    node.refresh_from_db()
    removed = sum(1 for _ in lost.iterdir())
    shutil.rmtree(lost, ignore_errors=True)
    with ev._mutex:
        timeline = sorted([(t - t_kill, f"{n} {state}") for t, n, state in ev.transitions if t >= t_kill]
                          + [(t - t_kill, f"sync({n}) done in {secs:.1f}s, {c:,}/{a:,} on all")
                             for t, n, secs, c, a in ev.syncs if t >= t_kill])
    return {
        "timeline": timeline, "failed_polls": failed_polls, "monitor_reopened": monitor.reopened - reopened,
        "victim": victim, "held_before": before, "removed": removed, "polls": polls, "held_last": len(held & wanted),
        "wiped": t_wiped - t_kill,
        "complete": None if t_done is None else t_done - t_kill,
        "files_complete": None if t_files is None else t_files - t_kill,
        "sync_end": sync[0] - t_kill, "sync_seconds": sync[2], "sync_complete": sync[3], "sync_accounts": sync[4],
        "wiped_before_start": t_start is not None and t_wiped <= t_start, "timeout": timeout,
        "restarts": node.restarts,
    }


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, help="accounts to create and push (default 10000, --quick 2000)")
    parser.add_argument("--quick", action="store_true", help="a short run: 2,000 accounts, 3 rounds, 1 restart")
    parser.add_argument("--rounds", type=int, help="interleaved product/floor rounds (default 5, --quick 3)")
    parser.add_argument("--restarts", type=int, help="kill-and-lose-disk restarts to time (default 3, --quick 1)")
    parser.add_argument("--victim", default="", help="node to kill (default: one the gateway is not connected to)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one accounts_push() and print the top")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (logs, database) at the end")
    parser.add_argument("--var-dir", type=Path, help="use (and keep) this directory instead of a fresh temp dir; "
                        "accounts already in it are reused, which saves their creation when iterating")
    db_argument(parser)
    args = parser.parse_args(argv)
    accounts = args.accounts or (2_000 if args.quick else 10_000)
    rounds = args.rounds or (3 if args.quick else 5)
    restarts = args.restarts if args.restarts is not None else (1 if args.quick else 3)

    sigterm_unwinds()
    var_dir = bench_dir(args.var_dir, "natsctl-pushbench-")
    fleet: Fleet | None = None
    floor: Floor | None = None
    monitor = None
    t_all = time.perf_counter()
    try:
        django_setup(var_dir, args.db)
        import subprocess

        from django.conf import settings
        from nats.aio.client import __version__ as nats_py_version

        from accounts_service.models import Account
        from broker_gateway.fleet.local import nats_server_bin
        from broker_gateway.propagation import fleet_reconcile
        from broker_gateway.selectors import healthy_nodes
        from broker_gateway.services import gateway_get

        concurrency = settings.FLEET_PUSH_CONCURRENCY
        server_bin = nats_server_bin(settings.NATS_SERVER_BIN)
        server_version = subprocess.run([server_bin, "--version"], capture_output=True, text=True,
                                        check=False).stdout.strip()
        print("Fleet push benchmark (bench/push.py)")
        print(f"  Python {platform.python_version()} ({platform.python_implementation()}), nats-py "
              f"{nats_py_version}, {server_version}")
        load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
        print(f"  {platform.machine()}, {os.cpu_count()} CPUs{load}")
        print(f"  {accounts:,} accounts, {NODES} nodes (one machine), FLEET_PUSH_CONCURRENCY={concurrency}, "
              f"{rounds} interleaved rounds, median; {'' if args.var_dir else 'temp '}dir {var_dir}")
        print()

        migrate_s, create_s, created = accounts_create(accounts)
        print(f"Setup: migrate {migrate_s:.1f} s; {created:,} accounts through account_create in {create_s:.1f} s"
              + (f" ({fmt(created / create_s)}/s)" if created else "") + f", {accounts - created:,} reused; "
              "no node existed, so nothing was pushed")

        # 4: fleet start
        nodes_add(NODES)
        names = [f"node-{i + 1}" for i in range(NODES)]
        fleet = Fleet(var_dir / "fleet")
        t0 = fleet.start()
        wait_for(lambda: len(healthy_nodes()) == NODES, timeout=60, interval=0.01, what=f"{NODES} healthy nodes")
        t_healthy = max(fleet.events.first(n, "healthy", t0) for n in names)
        start_s = t_healthy - t0
        print(f"Fleet start: {NODES} nodes healthy {start_s:.2f} s after the supervisor started", flush=True)

        # The supervisor's first full syncs (one per node turning healthy; folded while one waits) push every
        # account. Let them finish without polling, then check with LIST.
        fleet.syncs_drained()
        system = Account.objects.get(is_system=True).public_key
        wanted = set(Account.objects.exclude(jwt="").values_list("public_key", flat=True))
        assert system in wanted and len(wanted) == accounts + 1
        monitor = Monitor([n.client_url for n in healthy_nodes()])

        def all_held() -> bool:
            held = monitor.list_claims(timeout=5.0) or {}
            return len(held) == NODES and all(wanted <= h for h in held.values())

        all_held_s = time.monotonic() - t0 if all_held() else None
        syncs = list(fleet.events.syncs)
        print(f"  full syncs run by the supervisor: {len(syncs)} "
              f"({', '.join(f'{s[2]:.1f} s, {s[3]:,}/{s[4]:,} on all' for s in syncs) or '-'}), "
              f"{len(fleet.events.sync_failures)} postponed or failed")
        reconciles = 0
        while all_held_s is None:  # what the fleet-reconcile beat (every FLEET_RECONCILE_SECONDS) would do
            if reconciles == 5:
                raise RuntimeError("the nodes do not hold every account after 5 reconciles")
            reconciles += 1
            report = fleet_reconcile()
            print(f"  ! not every node holds every account: fleet_reconcile() #{reconciles} pushed {report.accounts:,} "
                  f"({report.complete:,} acknowledged by all) in {report.seconds:.1f} s")
            fleet.syncs_drained()
            if all_held():
                all_held_s = time.monotonic() - t0
        print(f"  every node held all {len(wanted):,} accounts {all_held_s:.1f} s after the start (informational)")

        gateway = gateway_get()  # the product's long-lived connection
        port = gateway._nc.connected_url.port if gateway._nc.connected_url else None
        gateway_node, gateway_url = next(((n.name, n.client_url) for n in healthy_nodes() if n.client_port == port),
                                         ("?", ""))
        victim = args.victim or next(n for n in reversed(names) if n != gateway_node)
        # LIST from a connection to a node other than the victim, so killing it does not disturb the watch.
        monitor.close()
        monitor = Monitor([n.client_url for n in healthy_nodes() if n.name != victim])
        print(f"  the product's gateway is connected to {gateway_node}; the restart victim is {victim}")
        print()

        # 1 + 2
        wanted_push = accounts + 1  # accounts_push() pushes the system account too (it has a JWT)
        payloads = [j.encode("ascii") for j in Account.objects.exclude(jwt="").order_by("-updated_at", "-pk")
                    .values_list("jwt", flat=True)]
        assert len(payloads) == wanted_push
        floor = Floor(gateway_url, expect=NODES, concurrency=concurrency)
        floor.push(payloads)  # warm-up of both paths, untimed
        product_push()
        print("Push, product vs floor (every request gathers all 3 nodes' replies in both)")
        s = bench_push(floor, payloads, rounds)
        first_s = floor.push_first_reply(payloads)
        ok_ratio, ok_rate = s["ratio"] >= TARGET_RATIO, s["product"] >= TARGET_RATE
        jwt_bytes = statistics.median(len(p) for p in payloads)
        print(f"  product accounts_push()             {fmt(s['product']):>8} accounts/s   "
              f"(rounds: {', '.join(fmt(r) for r in s['product_rates'])})")
        print(f"  floor   nats-py, {NODES} replies/request   {fmt(s['floor']):>8} accounts/s   "
              f"(rounds: {', '.join(fmt(r) for r in s['floor_rates'])})")
        print(f"  ratio   product/floor               {s['ratio']:>8.3f}   (median of per-round ratios: "
              f"{', '.join(f'{r:.3f}' for r in s['round_ratios'])}; ratio of medians "
              f"{s['product'] / s['floor']:.3f})")
        print(f"  target ratio >= {TARGET_RATIO}: {verdict(ok_ratio)}")
        print(f"  target product >= {fmt(TARGET_RATE)} accounts/s: {verdict(ok_rate)}")
        print(f"  informational: nats-py request() (first reply only), same window: {fmt(wanted_push / first_s)}/s; "
              f"{wanted_push:,} requests of ~{jwt_bytes:,.0f}-byte JWTs (same bytes in all three), "
              f"{s['incomplete']} incomplete product rounds")
        print(flush=True)
        if args.profile:
            profile_push(gateway)

        # 3
        restart_results = []
        for i in range(restarts):
            if i:  # a fresh failure count (production backoff), as for a node that had been stable
                try:
                    wait_for(lambda: _failures(victim) == 0 and fleet.events.first(victim, "healthy", 0) is not None,
                             timeout=90, interval=0.2, what=f"{victim} stable again")
                except AssertionError as exc:  # wait_for's timeout
                    print(f"  ! {exc}; no more restarts")
                    break
                fleet.syncs_drained()
            res = bench_restart(fleet, monitor, victim, wanted)
            restart_results.append(res)
            done = (f"after {res['complete']:.2f} s" if res["complete"] is not None
                    else f"NOT within {res['timeout']:g} s (LIST last showed {res['held_last']:,})")
            files = ("" if res["files_complete"] is None
                     else f" (its directory had them all at +{res['files_complete']:.2f} s)")
            print(f"Restart {i + 1}/{restarts}: SIGKILL {victim} (held {res['held_before']:,}); LIST shows it holding "
                  f"all {len(wanted):,} again {done}{files}", flush=True)
            print(f"    resolver dir emptied ({res['removed']:,} files) at +{res['wiped']:.3f} s"
                  + ("" if res["wiped_before_start"] else " ! after the restart")
                  + f"; {res['polls']} LIST polls ({res['failed_polls']} failed, monitor reconnected "
                  f"{res['monitor_reopened']}x); the victim's full sync (accounts_push to all healthy nodes) took "
                  f"{res['sync_seconds']:.2f} s, {res['sync_complete']:,}/{res['sync_accounts']:,} acknowledged by all",
                  flush=True)
            horizon = res["complete"] if res["complete"] is not None else res["timeout"]
            print("    timeline: " + "; ".join(f"+{t:.2f} {what}" for t, what in res["timeline"]
                                           if t <= horizon + 1 or "sync" in what), flush=True)
        times = [r["complete"] if r["complete"] is not None else float("inf") for r in restart_results]
        restart_s = statistics.median(times) if times else None
        ok_restart = restart_s is not None and restart_s <= TARGET_RESTART_S
        if restart_results:
            print(f"  median kill -> all held: {restart_s:.2f} s; target <= {TARGET_RESTART_S:g} s: "
                  f"{verdict(ok_restart)}")
        print()

        print(f"RESULT push={fmt(s['product'])}/s floor={fmt(s['floor'])}/s ratio={s['ratio']:.3f} "
              f"(>= {TARGET_RATIO}: {verdict(ok_ratio)}; >= {fmt(TARGET_RATE)}/s: {verdict(ok_rate)}) "
              + (f"restart={restart_s:.2f}s (<= {TARGET_RESTART_S:g}s: {verdict(ok_restart)}) "
                 if restart_s is not None else "")
              + f"fleet_start={start_s:.2f}s  ({accounts:,} accounts; total {time.perf_counter() - t_all:.0f} s)")
        return 0
    finally:
        if monitor is not None:
            monitor.close()
        if floor is not None:
            floor.close()
        if fleet is not None:
            fleet.stop()
        bench_dir_close(var_dir, reuse=bool(args.var_dir), keep=args.keep)


def _failures(name: str) -> int:
    from broker_gateway.models import BrokerNode

    return BrokerNode.objects.filter(name=name).values_list("consecutive_failures", flat=True).first() or 0


if __name__ == "__main__":
    sys.exit(main())
