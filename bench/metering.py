"""Metering: system events into the usage ledger against a bare nats-py subscriber, and ngs.usage latency.

Run from the repo root::

    .venv/bin/python bench/metering.py                 # full run: 10,000 accounts x 90 days (21.6 M rows)
    .venv/bin/python bench/metering.py --quick         # 500 accounts x 7 days, 1,000 events, 300 requests
    .venv/bin/python bench/metering.py --only ingest --events 5000 --profile
    .venv/bin/python bench/metering.py --var-dir /tmp/mb10k   # keep accounts and seeded ledger for the next run

Everything happens in a throw-away directory (``NATSCTL_VAR_DIR``, its own SQLite file, fleet directory and
seed-encryption key): migrate, ``operator_init``, the platform's ``ngs.usage`` service, ``--accounts`` tenant
accounts through ``account_create`` (each with its ``ngs.usage`` import) *before* any node exists, then
``--days`` x 24 hourly ``UsageHour`` rows for every account, inserted with ``executemany`` of raw SQL in one
transaction, hour after hour as the collector creates them (so an account's rows are spread over the table as
in production). Then one nats-server node (operator mode, full resolver, free loopback ports) is started by
the real supervisor (local process driver, production policy), as ``manage.py fleet run`` does. The node is
stopped at the end, also on Ctrl-C, SIGTERM and errors.

Two figures:

1. ingest (events/s): a publisher process connected as a system-account user publishes ``--events`` system
   events on the subjects the collector subscribes to: ``$SYS.ACCOUNT.<acc>.SERVER.CONNS`` (75 %) and
   ``$SYS.ACCOUNT.<acc>.DISCONNECT`` (25 %), built from events captured from the node at the start (so the
   shapes and sizes are the server's own), for ``--event-accounts`` accounts on ``--servers`` server ids,
   each server's sequence numbers and each (server, account)'s cumulative counters increasing as a real
   server's do; the stream continues from round to round, so later rounds update counters the ledger holds.
   - floor: a bare nats-py subscriber (a connection of its own, as the collector's user, on its own event
     loop thread) on the same three subjects, counting messages until all have arrived (median of 3 receipts
     of the round's bytes, from the first publish to the last arrival);
   - product: the real ``broker_gateway.collector.Collector`` (its own event loop thread and its writer
     thread, ``METERING_POLL_SECONDS`` STATZ polls, exactly as ``manage.py collector`` runs it), started
     fresh for each round and timed from the first publish until the ledger holds every event of the round:
     each DISCONNECT claimed in ``MeterSample``, each partition's last CONNS applied to its counter row (looked
     for once the writers' shared count of new samples says so; it is read every 5 ms).
   Floor and product alternate over the same bytes, swapping which goes first each round; the headline ratio
   is the median of the per-round ratios. Target: product / floor >= 0.3. At the end the ledger's hourly
   totals of every event account are checked against what the stream carried.
2. ``ngs.usage`` round trip (p50 / p99 ms): ``--requests`` requests, one at a time, each by a user of a different
   random tenant account (its own ``.creds``, through the account's ``ngs.usage`` import) on a new connection,
   as ``nats req ngs.usage 7d`` does: connect, request (timed), close; random window (24h, 7d, 30d), answered by
   the real collector's responder (in this process, beside its writer thread) from the seeded ledger. The
   requests come from a separate process, as tenants' clients do. Floor: the same one-shot pattern from that
   process, a plain nats-py request/reply on the same node to a trivial responder in that process (its own
   connection) answering a fixed document of the real answer's size. The collector's STATZ polls are off here
   (see bench_usage). Before timing, ``--check`` accounts' answers for 1h/24h/7d/30d are compared with the
   seeded sums (computed here from the seed formula, not read back); every timed answer is compared too.

This is a measurement, not a test: it exits 0 and prints PASS or FAIL against the ingest target (it exits 1
only when the setup fails).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import pickle
import platform
import random
import signal
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchenv import (  # noqa: E402 (bench/ is the script's own folder)
    bench_dir,
    bench_dir_close,
    db_argument,
    db_describe,
    django_setup,
    fmt,
    load_average,
    sigterm_unwinds,
    verdict,
)

TARGET_RATIO = 0.3
TENANT_TEAM = "bench-tenants"
TENANT_PLAN = "business"  # no accounts-per-team cap: 10,000 accounts fit in one team
WINDOWS = ("24h", "7d", "30d")
HOUR = dt.timedelta(hours=1)
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never via a proxy


# ---------------------------------------------------------------------------------------------
# Setup: a throw-away Django environment; tenant accounts created before any node exists
# ---------------------------------------------------------------------------------------------


def _user(account, name: str, **perms):
    """The bench's user ``name`` of ``account`` (reused from an earlier run in the same --var-dir)."""
    from accounts_service.models import NatsUser
    from accounts_service.rights import PLATFORM
    from accounts_service.services import user_create

    return (NatsUser.objects.filter(account=account, name=name, revoked_at__isnull=True).first()
            or user_create(actor=PLATFORM, account=account, name=name, **perms))


@dataclass
class Setup:
    tenants: list[str]  # tenant account public keys, sorted: the seed formula's account index
    floor_account: Any
    migrate_s: float = 0.0
    create_s: float = 0.0
    created: int = 0


def setup_create(accounts: int) -> Setup:
    """Migrate, init the operator, the ngs.usage service, the collector's users, a floor account and the tenant
    accounts missing to make ``accounts``; nothing is pushed (no node exists yet)."""
    from django.core.management import call_command
    from django.db import transaction

    from accounts_service import services as acc_services
    from accounts_service.models import Account
    from accounts_service.rights import PLATFORM
    from broker_gateway.collector import collector_user_ensure, usage_responder_user_ensure
    from broker_gateway.models import BrokerNode
    from operators import services as op_services

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    migrate_s = time.perf_counter() - t0
    op_services.operator_init(name="bench", identity_seed_out=None, store_identity_key=True)  # once (idempotent)
    system = acc_services.system_account_ensure()
    acc_services.usage_service_ensure()  # before the tenants: each gets its ngs.usage import at creation
    collector_user_ensure()
    usage_responder_user_ensure()
    _user(system, "bench-events", pub_allow=["$SYS.ACCOUNT.*.SERVER.CONNS", "$SYS.ACCOUNT.*.DISCONNECT"],
          sub_allow=["_INBOX.>"])
    assert not BrokerNode.objects.exists(), "a reused --var-dir must not hold nodes"
    floor_team = acc_services.team_get_or_create(name="bench-floor")
    floor_account = (Account.objects.filter(team=floor_team, name="floor").first()
                     or acc_services.account_create(actor=PLATFORM, team=floor_team, name="floor", plan=TENANT_PLAN))
    team = acc_services.team_get_or_create(name=TENANT_TEAM)
    have = team.accounts.count()
    if have > accounts:
        raise SystemExit(f"the reused directory holds {have:,} accounts, more than --accounts {accounts:,}")
    from core.progress import progress_bar

    t0 = time.perf_counter()
    with progress_bar("  creating accounts", total=accounts - have, unit="accounts") as progress:
        for start in range(have, accounts, 500):
            with transaction.atomic():  # one commit per 500 accounts rather than per account
                for i in range(start, min(start + 500, accounts)):
                    acc_services.account_create(actor=PLATFORM, team=team, name=f"acct-{i:06d}", plan=TENANT_PLAN)
            progress(min(start + 500, accounts) - have)
    create_s = time.perf_counter() - t0
    tenants = sorted(team.accounts.values_list("public_key", flat=True))
    return Setup(tenants=tenants, floor_account=floor_account, migrate_s=migrate_s, create_s=create_s,
                 created=accounts - have)


# ---------------------------------------------------------------------------------------------
# Seeding the ledger: --days x 24 UsageHour rows per tenant account, one formula for rows and checks
# ---------------------------------------------------------------------------------------------


def seeded(i: int, h: int) -> tuple[int, int, int, int, float, int]:
    """(sent msgs, sent bytes, received msgs, received bytes, connection seconds, peak) of account ``i`` in seeded
    hour ``h``. The peak is >= 1, so a bench connection (1 at a time) never raises it."""
    sm = 1 + (i * 31 + h * 17) % 997
    rm = 1 + (i * 13 + h * 29) % 1009
    return sm, sm * (64 + i % 193), rm, rm * (48 + h % 211), float((i * 7 + h * 11) % 3601), 1 + (i + h * 3) % 50


@dataclass
class SeedInfo:
    h0: dt.datetime  # the first seeded hour (UTC)
    hours: int
    accounts: int
    rows: int
    seconds: float
    reused: bool = False

    def hour(self, h: int) -> dt.datetime:
        return self.h0 + h * HOUR


def usage_seed(db_path: Path, tenants: list[str], days: int, info_path: Path) -> SeedInfo:
    """Insert ``days`` x 24 hours of rows for every tenant, ending with the current hour (reused when a --var-dir
    already holds the same seed)."""

    from django.db import connection

    from billing.metering import hour_floor
    from billing.models import UsageHour

    if info_path.exists():
        saved = json.loads(info_path.read_text())
        if saved["accounts"] == len(tenants) and saved["hours"] == days * 24:
            return SeedInfo(h0=dt.datetime.fromisoformat(saved["h0"]), hours=saved["hours"],
                            accounts=saved["accounts"], rows=saved["rows"], seconds=saved["seconds"], reused=True)
        raise SystemExit(f"{info_path} holds another seed ({saved}); use a fresh --var-dir")
    hours = days * 24
    h0 = hour_floor(dt.datetime.now(dt.UTC)) - (hours - 1) * HOUR
    # Django's own storage format for a DateTimeField on SQLite, so the selectors' range queries match.
    hour_text = [connection.ops.adapt_datetimefield_value(h0 + h * HOUR) for h in range(hours)]
    # Any other column of the model (a later release's) gets its field default, as a row the ORM creates would.
    columns = ["account_public_key", "hour", "sent_msgs", "sent_bytes", "received_msgs", "received_bytes",
               "connection_seconds", "peak_connections"]
    others = [f for f in UsageHour._meta.concrete_fields if f.column not in ("id", *columns)]
    extra = tuple(f.get_db_prep_save(f.get_default(), connection) for f in others)
    columns += [f.column for f in others]
    if connection.vendor == "postgresql":
        seconds = _seed_postgres(tenants, hours, h0, columns, extra, days)
    else:
        seconds = _seed_sqlite(db_path, tenants, hours, hour_text, columns, extra, days)
    from billing.services import usage_rollups_rebuild

    t0 = time.perf_counter()
    usage_rollups_rebuild()  # the days and months the write path keeps beside the hours (what migration 0009 does)
    print(f"  rollups: days and months summed from the hours in {time.perf_counter() - t0:.1f} s", flush=True)
    info = SeedInfo(h0=h0, hours=hours, accounts=len(tenants), rows=hours * len(tenants), seconds=seconds)
    info_path.write_text(json.dumps({"h0": h0.isoformat(), "hours": hours, "accounts": len(tenants),
                                     "rows": info.rows, "seconds": seconds}))
    return info


def _seed_sqlite(db_path: Path, tenants: list[str], hours: int, hour_text: list[str], columns: list[str],
                 extra: tuple, days: int) -> float:
    import sqlite3

    from django.db import connections

    from billing.models import UsageHour
    from core.progress import progress_bar

    sql = (f"INSERT INTO {UsageHour._meta.db_table} ({', '.join(columns)}) "
           f"VALUES ({', '.join('?' * len(columns))})")
    connections.close_all()  # the journal mode can only change with no other connection open
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        # A throw-away file: no rollback journal worth keeping, no fsync; WAL again (persistent) afterwards.
        con.execute("PRAGMA journal_mode=DELETE")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA cache_size=-262144")  # 256 MiB: the unique index's hot leaves stay cached
        t0 = time.perf_counter()
        con.execute("BEGIN")
        with progress_bar("  seeding UsageHour", total=hours * len(tenants), unit="rows") as progress:
            for h in range(hours):  # hour-major, the order the collector creates them in
                text = hour_text[h]
                con.executemany(sql, [(key, text, *seeded(i, h), *extra) for i, key in enumerate(tenants)])
                progress((h + 1) * len(tenants))
        con.execute("COMMIT")
        seconds = time.perf_counter() - t0
        con.execute("PRAGMA journal_mode=WAL")  # no ANALYZE: Django never runs it, so production has no stats
    finally:
        con.close()
    return seconds


def _seed_postgres(tenants: list[str], hours: int, h0: dt.datetime, columns: list[str], extra: tuple,
                   days: int) -> float:
    """COPY, hour after hour (the order the collector creates rows in), in one transaction."""
    from django.db import connection, transaction

    from billing.models import UsageHour
    from core.progress import progress_bar

    t0 = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor: COPY FROM STDIN
        with (raw.copy(f"COPY {UsageHour._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy,
              progress_bar("  seeding UsageHour", total=hours * len(tenants), unit="rows") as progress):
            for h in range(hours):
                at = h0 + h * HOUR
                for i, key in enumerate(tenants):
                    copy.write_row((key, at, *seeded(i, h), *extra))
                progress((h + 1) * len(tenants))
    seconds = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {UsageHour._meta.db_table}")  # what autovacuum does after a bulk load
    return seconds


def db_size(db_path: Path) -> int:
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    return sum(p.stat().st_size for p in (db_path, Path(f"{db_path}-wal")) if p.exists())


# ---------------------------------------------------------------------------------------------
# The fleet: the real supervisor (production policy) in a thread; monitoring helpers
# ---------------------------------------------------------------------------------------------


class Fleet:
    def __init__(self, base_dir: Path) -> None:
        from broker_gateway.fleet.local import LocalProcessDriver
        from broker_gateway.fleet.supervisor import NodeSyncer, Policy, Supervisor

        self.driver = LocalProcessDriver(base_dir)
        self.syncer = NodeSyncer()
        self.supervisor = Supervisor(self.driver, policy=Policy.from_settings(), on_healthy=self.syncer)

    def start(self, nodes: int) -> float:
        from broker_gateway.selectors import healthy_nodes
        from tests.fleet import nodes_add
        from tests.waiting import wait_for

        nodes_add(nodes)
        t0 = time.monotonic()
        self.supervisor.start_background(interval=0.25)  # what `manage.py fleet run` uses
        wait_for(lambda: len(healthy_nodes()) == nodes, timeout=120, interval=0.01, what=f"{nodes} healthy nodes")
        started = time.monotonic() - t0
        self.syncer._pool.submit(lambda: None).result(timeout=600)  # the initial full syncs have run
        return started

    def stop(self) -> None:
        from broker_gateway.services import gateway_reset

        gateway_reset()
        logging.getLogger("nats.aio.client").setLevel(logging.CRITICAL)
        with contextlib.suppress(Exception):
            self.supervisor.stop_background(timeout=60)
        for instance in list(self.driver._instances.values()):  # nothing of ours may outlive us
            if instance.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(instance.proc.pid, signal.SIGKILL)
                instance.proc.wait(timeout=10)
        self.syncer.close()
        gateway_reset()


def subscribed(monitoring_url: str, account: str, name: str, subjects: tuple[str, ...]) -> bool:
    """The node holds the subscriptions of the connection called ``name`` (its /connz)."""
    with _HTTP.open(f"{monitoring_url}/connz?subs=1&acc={account}", timeout=2) as response:
        conns = json.load(response).get("connections") or []
    return any(c.get("name") == name and set(subjects) <= set(c.get("subscriptions_list") or []) for c in conns)


class LoopThread:
    """An asyncio event loop on a thread of its own (as the collector runs its loop)."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float | None = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.thread.is_alive():
            self.loop.close()


def _system_user_auth():
    """The collector's user (JWT, nonce signer): the floor subscribes with the same permissions."""
    from broker_gateway.collector import collector_user_ensure
    from operators.services import nonce_signer_get

    user = collector_user_ensure()
    return user.jwt, nonce_signer_get(user_seed=user.seed)


def _creds(account, name: str, **perms) -> str:
    from accounts_service.services import user_creds_get

    return user_creds_get(user=_user(account, name, **perms))


# ---------------------------------------------------------------------------------------------
# The collector, as `manage.py collector` runs it, on a thread
# ---------------------------------------------------------------------------------------------


class CollectorThread:
    def __init__(self, urls: list[str], *, poll_seconds: float, collector_cls=None, writers: int | None = None,
                 writer_mode: str = "process") -> None:
        from broker_gateway.collector import Collector

        self.collector = (collector_cls or Collector)(urls, poll_seconds=poll_seconds, writers=writers,
                                                      writer_mode=writer_mode)
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self.stop_event = asyncio.Event()
            await self.collector.run(self.stop_event)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # reported by the waits below
            self.error = exc

    def start(self) -> CollectorThread:
        from tests.waiting import wait_for

        self.thread.start()
        wait_for(lambda: self.stop_event is not None or self.error, timeout=30, what="the collector's loop")
        # subscribed, the stream there, and every writer process connected to its consumers
        wait_for(lambda: self.collector.ready.is_set() or self.error, timeout=120, what="the collector and writers")
        return self

    def stop(self) -> None:
        if self.stop_event is not None and self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=60)
        if not self.thread.is_alive():
            self.loop.close()


# ---------------------------------------------------------------------------------------------
# 1: the event stream, the publisher process, the floor subscriber
# ---------------------------------------------------------------------------------------------


def templates_capture(url: str, account) -> tuple[dict, dict]:
    """A real SERVER.CONNS event (the one sent at a disconnect, with counters) and a real DISCONNECT event, from
    the node: a client of ``account`` connects, exchanges 5 messages and leaves."""
    from broker_gateway import nats_client

    jwt, sign = _system_user_auth()
    creds = _creds(account, "bench-capture")
    acc = account.public_key

    async def main() -> tuple[dict, dict]:
        watcher = await nats_client.connect(url, user_jwt=jwt, sign_nonce=sign, name="bench-capture")
        got: dict[str, dict] = {}
        done = asyncio.Event()

        async def on_event(msg) -> None:
            event = json.loads(msg.data)
            kind = "disconnect" if msg.subject.endswith(".DISCONNECT") else "conns"
            if kind == "disconnect" or (event.get("sent") or {}).get("msgs"):
                got[kind] = event
            if len(got) == 2:
                done.set()

        await watcher.subscribe(f"$SYS.ACCOUNT.{acc}.SERVER.CONNS", cb=on_event)
        await watcher.subscribe(f"$SYS.ACCOUNT.{acc}.DISCONNECT", cb=on_event)
        await watcher.flush()
        client = await nats_client.connect_creds(url, creds, name="bench-capture-client")
        await client.subscribe("capture.x")
        for _ in range(5):
            await client.publish("capture.x", b"hello")
        await client.flush()
        await client.close()
        await asyncio.wait_for(done.wait(), 10)
        await watcher.close()
        return got["conns"], got["disconnect"]

    return asyncio.run(main())


_NUID = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _ts(at: dt.datetime) -> str:
    """nats-server's RFC 3339 with nanoseconds."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "417Z"


class EventStream:
    """A continuing stream of CONNS and DISCONNECT events of ``accounts`` accounts on ``servers`` servers: each
    server's sequence number and each (server, account)'s cumulative counters only go up, as a real server's do.
    It remembers what the ledger should hold in the end."""

    DISCONNECT_SHARE = 0.25

    def __init__(self, *, conns_tpl: dict, disc_tpl: dict, accounts: int, servers: int, seed: int) -> None:
        from operators import nkeys

        self.rng = random.Random(seed)
        self.conns_tpl, self.disc_tpl = conns_tpl, disc_tpl
        self.accounts = [nkeys.generate(nkeys.KeyType.ACCOUNT).public_key for _ in range(accounts)]
        self.servers = [(nkeys.generate(nkeys.KeyType.SERVER).public_key, f"bench-node-{k + 1}")
                        for k in range(servers)]
        self.server_ids = [s for s, _ in self.servers]
        self.seq = {s: self.rng.randint(100, 10_000) for s in self.server_ids}
        # server's point of view: [received msgs, received bytes, sent msgs, sent bytes] (cumulative)
        self.cum: dict[tuple[str, str], list[int]] = {}
        self.conn_seconds: dict[str, float] = {}
        self.cid = 1000
        self.kinds = {"conns": 0, "disconnect": 0}

    def chunk(self, n: int) -> list[tuple[str, bytes]]:
        rng, out = self.rng, []
        now = dt.datetime.now(dt.UTC)
        for i in range(n):
            server_id, server_name = self.servers[i % len(self.servers)]
            acc = rng.choice(self.accounts)
            self.seq[server_id] += rng.randint(1, 3)  # other accounts' events come in between
            at = now + dt.timedelta(microseconds=i)
            server = {**self.conns_tpl["server"], "id": server_id, "name": server_name, "seq": self.seq[server_id],
                      "time": _ts(at)}
            nuid = "".join(rng.choices(_NUID, k=22))
            if rng.random() < self.DISCONNECT_SHARE:
                self.cid += 1
                start = at - dt.timedelta(seconds=rng.uniform(1, 3 * 3600), microseconds=rng.randint(0, 999_999))
                msgs_out, msgs_in = rng.randint(0, 500), rng.randint(0, 500)
                event = {**self.disc_tpl, "id": nuid, "timestamp": _ts(at), "server": server,
                         "client": {**self.disc_tpl["client"], "start": _ts(start), "stop": _ts(at), "id": self.cid,
                                    "acc": acc, "name": f"app-{self.cid}"},
                         "sent": {"msgs": msgs_out, "bytes": msgs_out * 128},
                         "received": {"msgs": msgs_in, "bytes": msgs_in * 128}}
                self.conn_seconds[acc] = self.conn_seconds.get(acc, 0.0) + (at - start).total_seconds()
                out.append((f"$SYS.ACCOUNT.{acc}.DISCONNECT", json.dumps(event).encode()))
                self.kinds["disconnect"] += 1
            else:
                c = self.cum.setdefault((server_id, acc), [0, 0, 0, 0])
                published, delivered = rng.randint(0, 400), rng.randint(0, 800)
                size = 64 + rng.randint(0, 960)
                c[0] += published
                c[1] += published * size
                c[2] += delivered
                c[3] += delivered * size
                zero = {"msgs": 0, "bytes": 0}
                conns = rng.randint(0, 5)
                event = {**self.conns_tpl, "id": nuid, "timestamp": _ts(at), "server": server, "acc": acc,
                         "name": acc, "conns": conns, "total_conns": conns, "num_subscriptions": rng.randint(0, 50),
                         "sent": {"msgs": c[2], "bytes": c[3], "gateways": zero, "routes": zero, "leafs": zero},
                         "received": {"msgs": c[0], "bytes": c[1], "gateways": zero, "routes": zero, "leafs": zero}}
                out.append((f"$SYS.ACCOUNT.{acc}.SERVER.CONNS", json.dumps(event).encode()))
                self.kinds["conns"] += 1
        return out

    def expected(self) -> dict[str, list[float]]:
        """Client-side totals per account: [sent msgs, sent bytes, received msgs, received bytes, conn seconds]."""
        out: dict[str, list[float]] = {}
        for (_, acc), (rm, rb, sm, sb) in self.cum.items():
            t = out.setdefault(acc, [0, 0, 0, 0, 0.0])
            t[0] += rm  # what the server received from the account's clients is what they sent
            t[1] += rb
            t[2] += sm
            t[3] += sb
        for acc, seconds in self.conn_seconds.items():
            out.setdefault(acc, [0, 0, 0, 0, 0.0])[4] += seconds
        return out


def _publisher_main(url: str, creds_text: str, conn) -> None:
    """The publisher process: loads a round's events from a file, publishes them on "go", reports the times."""
    asyncio.run(_publisher(url, creds_text, conn))


async def _publisher(url: str, creds_text: str, conn) -> None:
    from broker_gateway import nats_client

    nc = await nats_client.connect_creds(url, creds_text, name="bench-events", pending_size=8 * 1024 * 1024)
    loop = asyncio.get_running_loop()
    events: list[tuple[str, bytes]] = []
    try:
        while True:
            try:
                command = await loop.run_in_executor(None, conn.recv)
            except EOFError:  # the parent is gone
                return
            if command[0] == "load":
                with open(command[1], "rb") as f:
                    events = pickle.load(f)
                conn.send(("loaded", len(events)))
            elif command[0] == "go":
                t0 = time.monotonic()  # CLOCK_MONOTONIC: the same clock in every process of this machine
                for subject, data in events:
                    await nc.publish(subject, data)
                await nc.flush(timeout=120)
                conn.send(("sent", t0, time.monotonic()))
            else:
                return
    finally:
        await nc.close()


class Publisher:
    def __init__(self, url: str, creds_text: str, work_dir: Path) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no Django, no threads of ours
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_publisher_main, args=(url, creds_text, child), name="bench-events",
                                daemon=True)
        self.proc.start()
        child.close()
        self.path = work_dir / "events.pickle"

    def load(self, events: list[tuple[str, bytes]]) -> None:
        with open(self.path, "wb") as f:
            pickle.dump(events, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.conn.send(("load", str(self.path)))
        if not self.conn.poll(60):
            raise RuntimeError("the publisher process did not load the events")
        reply = self.conn.recv()
        assert reply == ("loaded", len(events)), reply

    def go(self) -> None:
        self.conn.send(("go",))

    def sent(self, timeout: float = 120.0) -> tuple[float, float]:
        if not self.conn.poll(timeout):
            raise RuntimeError("the publisher did not finish")
        _, t0, t1 = self.conn.recv()
        return t0, t1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("stop",))
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)


class FloorSubscriber:
    """A bare nats-py subscriber: the collector's user, the collector's subjects, a counter in the callback."""

    def __init__(self, url: str) -> None:
        from broker_gateway import nats_client

        jwt, sign = _system_user_auth()
        self.lt = LoopThread("floor-subscriber")
        self.nc = self.lt.run(nats_client.connect(url, user_jwt=jwt, sign_nonce=sign, name="bench-floor"))
        self.done = threading.Event()
        self.count, self.t_last, self.subs = 0, 0.0, []

    async def _arm(self, n: int) -> None:
        from broker_gateway.events import EVENT_SUBJECTS

        self.count, self.t_last = 0, 0.0
        self.done.clear()

        async def on_event(msg) -> None:
            self.count += 1
            if self.count == n:
                self.t_last = time.monotonic()
                self.done.set()

        self.subs = [await self.nc.subscribe(s, cb=on_event) for s in EVENT_SUBJECTS]
        await self.nc.flush()  # the server holds the subscriptions before the first event is published

    async def _disarm(self) -> None:
        for sub in self.subs:
            await sub.unsubscribe()
        await self.nc.flush()

    def receive(self, publisher: Publisher, n: int, timeout: float = 120.0) -> tuple[float, float, float]:
        """(seconds from the first publish to the last event received, publish seconds, received)."""
        self.lt.run(self._arm(n))
        try:
            publisher.go()
            arrived = self.done.wait(timeout)
            t0, t1 = publisher.sent()
            if not arrived:
                raise RuntimeError(f"floor: {self.count:,}/{n:,} events arrived within {timeout:g} s")
        finally:
            self.lt.run(self._disarm())
        return self.t_last - t0, t1 - t0, self.count

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.lt.run(self.nc.close(), timeout=10)
        self.lt.close()


# ---------------------------------------------------------------------------------------------
# 1: floor and product rounds
# ---------------------------------------------------------------------------------------------


@dataclass
class Env:
    url: str
    monitoring_url: str
    system_key: str
    poll_seconds: float


class LedgerMark:
    """What the ledger holds once a round's events are all in: every DISCONNECT claimed in ``MeterSample`` and, for
    each partition of the accounts, the counter row its last CONNS event updates at that event's sequence number. A
    partition's messages are written in stream order (one consumer, each transaction after the one before), and
    the collector forwards each partition's events in the order they came; so that row there means every earlier
    event of the partition is in too."""

    def __init__(self, events: list[tuple[str, bytes]], partitions: int) -> None:
        from broker_gateway.ledger_stream import partition_of

        self.disconnects = 0
        self.last: dict[int, tuple[str, str, int]] = {}  # partition -> (server id, account, seq) of its last CONNS
        for subject, data in events:
            event = json.loads(data)
            if subject.endswith(".DISCONNECT"):
                self.disconnects += 1
            else:
                self.last[partition_of(event["acc"], partitions)] = (event["server"]["id"], event["acc"],
                                                                     event["server"]["seq"])

    def base(self) -> int:
        from django.db.models import Max

        from billing.models import MeterSample

        return MeterSample.objects.aggregate(m=Max("pk"))["m"] or 0

    def reached(self, base: int, server_ids: list[str]) -> bool:
        from django.db.models import Q

        from billing.models import MeterSample, ServerAccountCounter

        if MeterSample.objects.filter(pk__gt=base, server_id__in=server_ids).count() < self.disconnects:
            return False
        wanted = Q()
        for sid, acc, seq in self.last.values():
            wanted |= Q(server_id=sid, account_public_key=acc, seq__gte=seq)
        return ServerAccountCounter.objects.filter(wanted).count() == len(self.last)


def product_ingest(env: Env, publisher: Publisher, events: list[tuple[str, bytes]], server_ids: list[str], *,
                   collector_cls=None, timeout: float | None = None, writers: int | None = None,
                   writer_mode: str = "process") -> dict:
    """The real collector ingests the loaded ``events``: seconds from the first publish until the ledger holds
    every one of them (LedgerMark). The writers' own count of new samples (shared memory, read every 5 ms) says
    when to look; the ledger decides."""
    from broker_gateway.events import EVENT_SUBJECTS
    from tests.waiting import wait_for

    n = len(events)
    timeout = timeout or max(300.0, n / 5)
    ct = CollectorThread([env.url], poll_seconds=env.poll_seconds, collector_cls=collector_cls, writers=writers,
                         writer_mode=writer_mode).start()
    mark = LedgerMark(events, ct.collector.partitions)
    try:
        wait_for(lambda: ct.error or subscribed(env.monitoring_url, env.system_key, "natsctl-collector",
                                                EVENT_SUBJECTS), timeout=30, interval=0.02,
                 what="the collector's subscriptions")
        if ct.error:
            raise RuntimeError(f"the collector stopped: {ct.error!r}")
        base = mark.base()
        publisher.go()
        t_go = time.monotonic()
        last_print = t_go
        forwarded_at = None  # when the stream had acknowledged every event (the receiving side's part)
        events0 = ct.collector.events
        complete = False
        while True:
            now = time.monotonic()
            fw = ct.collector._forwarder
            if forwarded_at is None and fw is not None and ct.collector.events - events0 >= n and not fw.pending:
                forwarded_at = now
            if ct.collector.ingested >= n and mark.reached(base, server_ids):
                complete = True
                break
            if now - t_go > timeout or ct.error:
                break
            if now - last_print >= 5:
                print(f"\r    product: {ct.collector.ingested:,}/{n:,} written after {now - t_go:.0f} s", end="",
                      flush=True)
                last_print = now
            time.sleep(0.005)
        t_done = time.monotonic()
        if last_print != t_go:
            print("\r" + " " * 70 + "\r", end="", flush=True)
        t0, t1 = publisher.sent()
        count = n if complete else min(ct.collector.ingested, n)
        return {"seconds": t_done - t0, "publish": t1 - t0, "count": count, "complete": complete,
                "ingested": ct.collector.ingested,
                "forwarded": (forwarded_at or t_done) - t0}
    finally:
        ct.stop()


def bench_ingest(env: Env, stream: EventStream, publisher: Publisher, floor: FloorSubscriber, *, events: int,
                 rounds: int, collector_cls=None, writers: int | None = None) -> dict:
    """Floor and product over the same chunks; ``collector_cls`` swaps in another Collector (experiments)."""
    product_rates: list[float] = []
    floor_rates: list[float] = []
    publish_rates: list[float] = []
    forward_rates: list[float] = []  # events/s into the stream (acknowledged), the receiving side alone
    incomplete = 0
    # Warm-up, untimed: both paths once over a small chunk (imports, first connections, first rows).
    warm = stream.chunk(min(500, events))
    sizes = sorted(len(data) for _, data in warm)
    print(f"  event sizes: median {sizes[len(sizes) // 2]:,} bytes, {sizes[0]:,}-{sizes[-1]:,}", flush=True)
    publisher.load(warm)
    floor.receive(publisher, len(warm))
    product_ingest(env, publisher, warm, stream.server_ids, collector_cls=collector_cls, writers=writers)
    for r in range(rounds):
        chunk = stream.chunk(events)
        publisher.load(chunk)
        for which in (("floor", "product") if r % 2 == 0 else ("product", "floor")):
            if which == "floor":  # the median of 3 receipts of the same bytes: a floor run takes a fraction of a second
                runs = [floor.receive(publisher, len(chunk)) for _ in range(3)]
                floor_rates.append(len(chunk) / statistics.median(r[0] for r in runs))
                publish_rates.append(len(chunk) / statistics.median(r[1] for r in runs))
            else:
                res = product_ingest(env, publisher, chunk, stream.server_ids, collector_cls=collector_cls,
                                     writers=writers)
                if not res["complete"]:
                    incomplete += 1
                    print(f"  ! product round {r + 1}: only {res['count']:,}/{len(chunk):,} in the ledger after "
                          f"{res['seconds']:.0f} s", file=sys.stderr)
                product_rates.append(res["count"] / res["seconds"])
                forward_rates.append(len(chunk) / res["forwarded"])
        print(f"  round {r + 1}/{rounds}: product {fmt(product_rates[-1])} events/s, floor {fmt(floor_rates[-1])} "
              f"events/s (publisher sent them at {fmt(publish_rates[-1])}/s; in the stream at "
              f"{fmt(forward_rates[-1])}/s); {load_average()}", flush=True)
    round_ratios = [p / f for p, f in zip(product_rates, floor_rates, strict=True)]
    return {"product_rates": product_rates, "floor_rates": floor_rates, "publish_rates": publish_rates,
            "forward_rates": forward_rates,
            "product": statistics.median(product_rates), "floor": statistics.median(floor_rates),
            "round_ratios": round_ratios, "ratio": statistics.median(round_ratios), "incomplete": incomplete}


def ledger_verify(stream: EventStream) -> tuple[int, list[str]]:
    """Compare the ledger's totals of every event account with what the stream carried."""
    from django.db.models import Sum

    from billing.models import UsageHour

    expected = stream.expected()
    rows = {r["account_public_key"]: r for r in UsageHour.objects.filter(account_public_key__in=list(expected))
            .values("account_public_key").annotate(sm=Sum("sent_msgs"), sb=Sum("sent_bytes"), rm=Sum("received_msgs"),
                                                   rb=Sum("received_bytes"), cs=Sum("connection_seconds"))}
    problems = []
    for acc, (sm, sb, rm, rb, cs) in expected.items():
        row = rows.get(acc) or {"sm": 0, "sb": 0, "rm": 0, "rb": 0, "cs": 0.0}
        row["cs"] = row["cs"] or 0.0
        if (row["sm"], row["sb"], row["rm"], row["rb"]) != (sm, sb, rm, rb) or abs(row["cs"] - cs) > 1e-3:
            problems.append(f"{acc[:10]}…: ledger {row['sm']}/{row['sb']}/{row['rm']}/{row['rb']}/{row['cs']:.3f}, "
                            f"stream {sm}/{sb}/{rm}/{rb}/{cs:.3f}")
    return len(expected), problems


def profile_ingest(env: Env, stream: EventStream, publisher: Publisher, events: int) -> None:
    """cProfile a ledger writer's database work (reading the samples out of a batch, the transaction) over one more
    product round, with one writer on a thread of this process (cProfile sees only this process)."""
    import cProfile
    import io
    import pstats

    from broker_gateway.ledger_writer import Writer

    prof = cProfile.Profile()
    original = Writer._write

    def profiled(self, fetched):
        prof.enable()
        try:
            return original(self, fetched)
        finally:
            prof.disable()

    Writer._write = profiled
    try:
        chunk = stream.chunk(events)
        publisher.load(chunk)
        res = product_ingest(env, publisher, chunk, stream.server_ids, writers=1, writer_mode="thread")
    finally:
        Writer._write = original
    print(f"cProfile of a ledger writer's batches over {res['count']:,} events "
          f"({res['count'] / res['seconds']:,.0f} events/s under the profiler, writer on a thread of the collector)")
    for key, limit in (("tottime", 28), ("cumulative", 40)):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(key).print_stats(limit)
        text = out.getvalue()
        print(f"--- top {limit} by {key} ---")
        print(text[text.find("   ncalls"):].rstrip())
        print()


# ---------------------------------------------------------------------------------------------
# 2: ngs.usage round trips
# ---------------------------------------------------------------------------------------------


def _parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def usage_expected(info: SeedInfo, index: int, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    """What the ledger holds for seeded account ``index`` over [hour of start, end], and the month's bytes."""
    from billing.metering import hour_floor
    from billing.selectors import period_start

    lo, month = hour_floor(start), period_start(end)
    sm = sb = rm = rb = peak = used = 0
    first = max(0, int((min(lo, month) - info.h0) / HOUR))
    for h in range(first, info.hours):
        at = info.hour(h)
        if at > end:
            break
        v = seeded(index, h)
        if at >= lo:
            sm, sb, rm, rb, peak = sm + v[0], sb + v[1], rm + v[2], rb + v[3], max(peak, v[5])
        if at >= month:
            used += v[1] + v[3]
    return {"sent_msgs": sm, "sent_bytes": sb, "received_msgs": rm, "received_bytes": rb, "peak": peak, "used": used}


def answer_check(doc: dict, *, account: str, window: str, exp: dict[str, int], data_bytes: int) -> str | None:
    """None if ``doc`` is the right answer: the seeded sums, exactly."""
    if "error" in doc:
        return f"error: {doc['error']}"
    if (doc.get("account"), doc.get("window"), doc.get("plan")) != (account, window, TENANT_PLAN):
        return f"wrong account/window/plan: {doc.get('account')} {doc.get('window')} {doc.get('plan')}"
    got = {"sent_msgs": doc["sent"]["msgs"], "sent_bytes": doc["sent"]["bytes"],
           "received_msgs": doc["received"]["msgs"], "received_bytes": doc["received"]["bytes"],
           "peak": doc["connections"]["peak"], "used": doc["quota"]["used_bytes"]}
    if doc["quota"]["data_bytes"] != data_bytes:
        return f"data_bytes {doc['quota']['data_bytes']} != {data_bytes}"
    if exp.get("peak") == 0 and got["peak"] == 1:
        # A window with no seeded hour (the seed is older than it: a reused --var-dir) holds only the asking
        # connection itself, if its CONNS event was written before the answer: 1 is right too.
        got["peak"] = 0
    return None if got == exp else f"got {got}, seeded {exp}"


FLOOR_SUBJECT = "bench.floor"


def _asker_main(url: str, floor_creds: str, document: bytes, conn) -> None:
    """The asking process: one-shot requests (connect, request, close) sent to it as jobs; it also runs the
    floor's trivial responder, on a connection of its own on the same event loop."""
    asyncio.run(_asker(url, floor_creds, document, conn))


async def _asker(url: str, floor_creds: str, document: bytes, conn) -> None:
    from broker_gateway import nats_client

    responder = await nats_client.connect_creds(url, floor_creds, name="bench-floor-responder")

    async def answer(msg) -> None:
        await msg.respond(document)

    await responder.subscribe(FLOOR_SUBJECT, cb=answer)
    await responder.flush()
    loop = asyncio.get_running_loop()
    conn.send("ready")
    try:
        while True:
            try:
                job = await loop.run_in_executor(None, conn.recv)
            except EOFError:  # the parent is gone
                return
            if job is None:
                return
            out: list[tuple[float | None, bytes]] = []
            for creds, subject, payload in job:
                nc = await nats_client.connect_creds(url, creds, name="bench-asker")
                try:
                    start = time.perf_counter()
                    msg = await nc.request(subject, payload, timeout=10)
                    out.append((time.perf_counter() - start, msg.data))
                except Exception as exc:  # reported by the parent
                    out.append((None, repr(exc).encode()))
                finally:
                    await nc.close()
            conn.send(out)
    finally:
        await responder.close()


class Asker:
    """A separate process for the requests, so the client's work never shares a GIL with the collector's threads
    (in production, tenants' clients run elsewhere)."""

    def __init__(self, url: str, floor_creds: str, document: bytes) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_asker_main, args=(url, floor_creds, document, child), name="bench-asker",
                                daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(60) or self.conn.recv() != "ready":
            raise RuntimeError("the asking process did not start")

    def run(self, job: list[tuple[str, str, bytes]]) -> list[tuple[float | None, bytes]]:
        self.conn.send(job)
        if not self.conn.poll(30 + 12 * len(job)):
            raise RuntimeError("the asking process did not answer")
        return self.conn.recv()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)


async def _request(nc, subject: str, payload: bytes, *, timeout: float = 10.0, retry_for: float = 0.0) -> bytes:
    """One request; NoResponders is retried for ``retry_for`` seconds (a responder still subscribing)."""
    import nats.errors

    deadline = time.monotonic() + retry_for
    while True:
        try:
            return (await nc.request(subject, payload, timeout=timeout)).data
        except nats.errors.NoRespondersError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


async def _connect_all(url: str, creds: list[str], name: str) -> list:
    """Tenant connections (retried: the node may still be loading the accounts)."""
    from broker_gateway import nats_client

    out = []
    for i, text in enumerate(creds):
        for attempt in range(100):
            try:
                out.append(await nats_client.connect_creds(url, text, name=f"{name}-{i}"))
                break
            except Exception:
                if attempt == 99:
                    raise
                await asyncio.sleep(0.1)
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def bench_usage(env: Env, setup: Setup, info: SeedInfo, *, requests: int, rounds: int, check: int,
                seed: int) -> dict:
    """Check answers for ``check`` accounts, then time ``requests`` one-shot requests (each from a tenant account
    not asked before, on a connection of its own: connect, request, close, as ``nats req ngs.usage`` does) against
    as many one-shot requests to a trivial responder."""
    from accounts_service.models import Account
    from billing.models import Plan, ServerAccountCounter
    from broker_gateway.usage_responder import usage_answer_db as _usage_answer_db
    from tests.waiting import wait_for

    rng = random.Random(seed + 1)
    index = {key: i for i, key in enumerate(setup.tenants)}
    # Accounts that ever had a connection (an earlier run in the same --var-dir) carry traffic of their own in
    # the ledger: only untouched ones are asked, so every answer must equal the seeded sums exactly.
    touched = set(ServerAccountCounter.objects.values_list("account_public_key", flat=True).distinct())
    touched &= set(setup.tenants)
    pool = [k for k in setup.tenants if k not in touched]
    rng.shuffle(pool)
    direct_n = min(200, max(0, len(pool) - check - requests))
    check_keys, direct_keys = pool[:check], pool[check:check + direct_n]
    ask_keys = pool[check + direct_n:check + direct_n + requests]
    result: dict[str, Any] = {"check": len(check_keys), "asked": len(ask_keys), "touched": len(touched)}
    if len(ask_keys) < requests:
        print(f"  ! only {len(ask_keys):,} untouched accounts left for {requests:,} requests", file=sys.stderr)
    by_key = {a.public_key: a for a in Account.objects.filter(public_key__in=check_keys + ask_keys)}
    data_bytes = Plan.objects.get(name=TENANT_PLAN).data_bytes
    t0 = time.perf_counter()
    check_creds = [_creds(by_key[k], "bench-asker") for k in check_keys]
    ask_creds = [_creds(by_key[k], "bench-asker") for k in ask_keys]
    floor_req_creds = _creds(setup.floor_account, "bench-requester")
    floor_resp_creds = _creds(setup.floor_account, "bench-responder")
    result["creds_s"] = time.perf_counter() - t0

    def expected(key: str, doc: dict) -> dict[str, int]:
        if "start" not in doc:
            return {}
        return usage_expected(info, index[key], _parse_iso(doc["start"]), _parse_iso(doc["end"]))

    # Informational, before anything touches their pages: the answer computed in this process (no NATS) as the
    # responder's thread computes it (close_old_connections around it: a new database connection each time), for
    # accounts never read in this run, then again for the same accounts.
    for label in ("direct_cold", "direct_warm"):
        lat: list[float] = []
        for key in direct_keys:
            start = time.perf_counter()
            doc = _usage_answer_db(f"ngs.usage.{key}", b"30d")
            lat.append(time.perf_counter() - start)
            assert "error" not in doc, doc
        result[label] = lat

    # The real collector answers. Its STATZ polls are off here (one at start, the next in an hour): every account
    # that connected stays known to the node, so each poll would bring one sample per account asked so far, more
    # than the current writer ingests in 5 s (see the ingest figure); its backlog would then be what is measured.
    # With no poll, no traffic of an asking connection can reach the ledger before its answer (the SERVER.CONNS
    # event at connect carries zero counters), so every answer must be exact.
    from broker_gateway import usage_responder

    answer_db = usage_responder.usage_answer_db
    inside: list[float] = []  # the answer's own work on the responder's thread, per timed request

    def timed_answer(subject: str, payload: bytes) -> dict:
        start = time.perf_counter()
        try:
            return answer_db(subject, payload)
        finally:
            inside.append(time.perf_counter() - start)

    usage_responder.usage_answer_db = timed_answer
    result["inside"] = inside
    ct = CollectorThread([env.url], poll_seconds=3600.0).start()
    loop = asyncio.new_event_loop()
    asker = None
    try:
        wait_for(lambda: ct.collector.ingested > 0 or ct.error, timeout=30, interval=0.02,
                 what="the collector's first STATZ poll")
        ct.collector.drain()

        async def checks() -> tuple[list[str], bytes]:
            problems, sample = [], b""
            conns = await _connect_all(env.url, check_creds, "bench-check")
            try:
                for key, nc in zip(check_keys, conns, strict=True):
                    for window in ("1h", *WINDOWS):
                        data = await _request(nc, "ngs.usage", window.encode(), retry_for=10.0)
                        doc = json.loads(data)
                        problem = answer_check(doc, account=key, window=window, exp=expected(key, doc),
                                               data_bytes=data_bytes)
                        if problem:
                            problems.append(f"{key[:10]}… {window}: {problem}")
                        if window == "30d":
                            sample = data
            finally:
                for nc in conns:
                    await nc.close()
            return problems, sample

        problems, sample_doc = loop.run_until_complete(checks())
        result["check_problems"] = problems
        result["doc_bytes"] = len(sample_doc)
        if problems:
            return result
        asker = Asker(env.url, floor_resp_creds, sample_doc)
        asker.run([(floor_req_creds, FLOOR_SUBJECT, b"24h")] * 10)  # warm-up, untimed (the product's: the check)
        queue = list(zip(ask_keys, ask_creds, strict=True))
        per_round = -(-len(queue) // rounds)
        product: list[tuple[float, str, str, bytes]] = []  # (seconds, account, window, answer)
        floor_lat: list[float] = []
        errors: list[str] = []
        for r in range(rounds):
            mine, queue = queue[:per_round], queue[per_round:]
            windows = [rng.choice(WINDOWS) for _ in mine]
            for which in (("floor", "product") if r % 2 == 0 else ("product", "floor")):
                if which == "product":
                    inside.clear() if r == 0 else None  # only the timed answers (not the checks) from here on
                if which == "floor":
                    got = asker.run([(floor_req_creds, FLOOR_SUBJECT, b"24h")] * len(mine))
                    floor_lat += [sec for sec, _ in got if sec is not None]
                    errors += [d.decode() for sec, d in got if sec is None]
                else:
                    got = asker.run([(c, "ngs.usage", w.encode()) for (_, c), w in zip(mine, windows, strict=True)])
                    for (key, _), window, (seconds, data) in zip(mine, windows, got, strict=True):
                        if seconds is None:
                            errors.append(data.decode())
                        else:
                            product.append((seconds, key, window, data))
            print(f"  round {r + 1}/{rounds}: product p50 {_ms(_pct([p[0] for p in product], 0.5))} ms, "
                  f"floor p50 {_ms(_pct(floor_lat, 0.5))} ms; {load_average()}", flush=True)
        result.update(product=product, floor=floor_lat, errors=errors)
    finally:
        if asker is not None:
            asker.close()
        ct.stop()
        loop.close()
        usage_responder.usage_answer_db = answer_db

    bad = []
    for _, key, window, data in result["product"]:
        doc = json.loads(data)
        problem = answer_check(doc, account=key, window=window, exp=expected(key, doc), data_bytes=data_bytes)
        if problem:
            bad.append(f"{key[:10]}… {window}: {problem}")
    result["timed_problems"] = bad
    return result


# ---------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run: 500 accounts x 7 days, 1,000 events, "
                        "300 requests, 2 rounds")
    parser.add_argument("--events", type=int, help="events per ingest round (default 3000, --quick 1000)")
    parser.add_argument("--accounts", type=int, help="tenant accounts to create and seed (default 10000, --quick 500)")
    parser.add_argument("--days", type=int, help="days of hourly UsageHour rows per account (default 90, --quick 7)")
    parser.add_argument("--requests", type=int, help="timed ngs.usage requests, and as many floor requests "
                        "(default 3000, --quick 300)")
    parser.add_argument("--rounds", type=int, help="interleaved product/floor rounds (default 3, --quick 2)")
    parser.add_argument("--event-accounts", type=int, default=1000, help="accounts in the event stream (1000)")
    parser.add_argument("--servers", type=int, default=8, help="server ids in the event stream (8)")
    parser.add_argument("--check", type=int, default=5, help="accounts whose answers are checked exactly (5)")
    parser.add_argument("--only", choices=("ingest", "usage"), help="run one of the two figures")
    parser.add_argument("--profile", action="store_true", help="also cProfile the collector's writer over one more "
                        "ingest round and print the top")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the event stream and the requests")
    parser.add_argument("--writers", type=int, help="ledger writer processes the collector starts (default: "
                        "METERING_WRITERS)")
    parser.add_argument("--partitions", type=int, help="partitions of the metering stream (default: "
                        "METERING_PARTITIONS)")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (logs, database) at the end")
    db_argument(parser)
    parser.add_argument("--var-dir", type=Path, help="use (and keep) this directory; accounts and the seeded ledger "
                        "in it are reused")
    args = parser.parse_args(argv)
    events = args.events or (1_000 if args.quick else 3_000)
    accounts = args.accounts or (500 if args.quick else 10_000)
    days = args.days or (7 if args.quick else 90)
    requests = args.requests or (300 if args.quick else 3_000)
    rounds = args.rounds or (2 if args.quick else 3)
    do_ingest, do_usage = args.only in (None, "ingest"), args.only in (None, "usage")
    if not do_usage:
        accounts = min(accounts, 1)  # the ingest figure needs no tenant accounts

    sigterm_unwinds()
    if args.partitions:
        os.environ["METERING_PARTITIONS"] = str(args.partitions)  # the writer processes inherit it
    var_dir = bench_dir(args.var_dir, "natsctl-meterbench-")
    fleet: Fleet | None = None
    publisher: Publisher | None = None
    floor: FloorSubscriber | None = None
    t_all = time.perf_counter()
    try:
        django_setup(var_dir, args.db)
        import subprocess

        from django.conf import settings
        from nats.aio.client import __version__ as nats_py_version

        from broker_gateway.fleet.local import nats_server_bin
        from broker_gateway.selectors import healthy_nodes

        server_bin = nats_server_bin(settings.NATS_SERVER_BIN)
        server_version = subprocess.run([server_bin, "--version"], capture_output=True, text=True,
                                        check=False).stdout.strip()
        db_path = var_dir / "bench.sqlite3"
        print("Metering benchmark (bench/metering.py)")
        print(f"  Python {platform.python_version()} ({platform.python_implementation()}), nats-py "
              f"{nats_py_version}, {server_version}")
        print(f"  {platform.machine()}, {os.cpu_count()} CPUs, {load_average()}; {'' if args.var_dir else 'temp '}dir "
              f"{var_dir}")
        print(f"  database: {db_describe()}")
        print()

        setup = setup_create(accounts)
        print(f"Setup: migrate {setup.migrate_s:.1f} s; {setup.created:,} tenant accounts ({TENANT_PLAN} plan, each "
              f"importing ngs.usage) through account_create in {setup.create_s:.1f} s"
              + (f" ({fmt(setup.created / setup.create_s)}/s)" if setup.created else "")
              + f", {accounts - setup.created:,} reused; no node existed, so nothing was pushed", flush=True)
        info = None
        if do_usage:
            info = usage_seed(db_path, setup.tenants, days, var_dir / "bench-seed.json")
            print(f"Seed: {info.rows:,} UsageHour rows ({info.accounts:,} accounts x {days} days x 24 h, "
                  f"{info.h0:%Y-%m-%d %H}:00 to {info.hour(info.hours - 1):%Y-%m-%d %H}:00 UTC) "
                  + ("reused" if info.reused else f"in {info.seconds:.1f} s ({fmt(info.rows / info.seconds)} rows/s, "
                                                  "executemany in one transaction)")
                  + f"; database {db_size(db_path) / 1e9:.2f} GB", flush=True)

        fleet = Fleet(var_dir / "fleet")
        start_s = fleet.start(1)
        node = healthy_nodes()[0]
        from accounts_service.models import Account

        env = Env(url=node.client_url, monitoring_url=node.monitoring_url,
                  system_key=Account.objects.get(is_system=True).public_key,
                  poll_seconds=settings.METERING_POLL_SECONDS)
        print(f"Node: {node.name} healthy {start_s:.2f} s after the supervisor started ({env.url}); "
              f"METERING_POLL_SECONDS={env.poll_seconds:g}")
        print()

        ingest = usage = None
        if do_ingest:
            conns_tpl, disc_tpl = templates_capture(env.url, setup.floor_account)
            stream = EventStream(conns_tpl=conns_tpl, disc_tpl=disc_tpl, accounts=args.event_accounts,
                                 servers=args.servers, seed=args.seed)
            events_creds = _creds(Account.objects.get(is_system=True), "bench-events")
            publisher = Publisher(env.url, events_creds, var_dir)
            floor = FloorSubscriber(env.url)
            print(f"Ingest: {events:,} events a round ({100 * (1 - EventStream.DISCONNECT_SHARE):.0f} % SERVER.CONNS, "
                  f"{100 * EventStream.DISCONNECT_SHARE:.0f} % DISCONNECT, shaped on events captured from the node) "
                  f"of {args.event_accounts:,} accounts on {args.servers} server ids, {rounds} interleaved rounds + "
                  "a warm-up")
            writers = args.writers if args.writers is not None else settings.METERING_WRITERS
            print(f"  the collector forwards into the METERING stream; {writers} ledger writer process(es) over "
                  f"{settings.METERING_PARTITIONS} partitions; {load_average()}", flush=True)
            ingest = bench_ingest(env, stream, publisher, floor, events=events, rounds=rounds, writers=writers)
            checked, problems = ledger_verify(stream)
            ok = ingest["ratio"] >= TARGET_RATIO
            print(f"  product collector -> ledger   {fmt(ingest['product']):>9} events/s   "
                  f"(rounds: {', '.join(fmt(r) for r in ingest['product_rates'])})")
            print(f"  floor   bare nats-py sub      {fmt(ingest['floor']):>9} events/s   "
                  f"(rounds: {', '.join(fmt(r) for r in ingest['floor_rates'])})")
            print(f"  ratio   product/floor         {ingest['ratio']:>9.4f}   (median of per-round ratios: "
                  f"{', '.join(f'{r:.4f}' for r in ingest['round_ratios'])}; ratio of medians "
                  f"{ingest['product'] / ingest['floor']:.4f})")
            print(f"  target ratio >= {TARGET_RATIO}: {verdict(ok)}")
            print(f"  ledger check: {checked:,} event accounts' hourly totals (msgs, bytes, connection seconds) "
                  + ("all equal to what the stream carried" if not problems
                     else f"{len(problems)} DIFFER, e.g. {problems[:3]}")
                  + f"; {ingest['incomplete']} incomplete product rounds", flush=True)
            print()
            if args.profile:
                profile_ingest(env, stream, publisher, min(events, 5_000))
            floor.close()
            floor = None
            publisher.close()
            publisher = None

        if do_usage:
            print(f"ngs.usage: {requests:,} timed requests (and {requests:,} floor requests) in {rounds} interleaved "
                  f"rounds, one at a time, each from a different tenant account on a new connection (connect, "
                  f"request, close; only the request is timed); windows {', '.join(WINDOWS)} at random")
            usage = bench_usage(env, setup, info, requests=requests, rounds=rounds, check=args.check, seed=args.seed)
            if usage["check_problems"]:
                print(f"  ! WRONG ANSWERS from ngs.usage: {usage['check_problems'][:5]}; no timing")
            else:
                lat = [p[0] for p in usage["product"]]
                fl = usage["floor"]
                print(f"  answers equal to the seeded sums: {usage['check']} accounts x 4 windows before timing, "
                      f"{len(lat) - len(usage['timed_problems']):,}/{len(lat):,} timed answers"
                      + (f" ! {usage['timed_problems'][:3]}" if usage["timed_problems"] else "")
                      + (f" ! {len(usage['errors'])} requests failed: {usage['errors'][:3]}" if usage["errors"] else "")
                      + f" (document {usage['doc_bytes']} bytes; {usage['touched']:,} accounts with traffic of "
                      f"earlier runs skipped; users and .creds made in {usage['creds_s']:.0f} s)")
                p50, p99, f50, f99 = _pct(lat, 0.5), _pct(lat, 0.99), _pct(fl, 0.5), _pct(fl, 0.99)
                print(f"  product ngs.usage              p50 {_ms(p50):>7} ms   p99 {_ms(p99):>7} ms   "
                      f"({len(lat) / sum(lat):,.0f} requests/s at concurrency 1)")
                print(f"  floor   nats-py request/reply  p50 {_ms(f50):>7} ms   p99 {_ms(f99):>7} ms   "
                      f"({len(fl) / sum(fl):,.0f} requests/s)")
                print(f"  ratio   floor/product          p50 {f50 / p50:>7.3f}      p99 {f99 / p99:>7.3f}      "
                      f"(product is {p50 / f50:.1f}x the floor at p50)")
                by_window = {w: [p[0] for p in usage["product"] if p[2] == w] for w in WINDOWS}
                print("  by window (p50 / p99 ms): " + "; ".join(
                    f"{w} {_ms(_pct(v, 0.5))} / {_ms(_pct(v, 0.99))} ({len(v)})" for w, v in by_window.items() if v))
                inside = usage["inside"]
                if inside:
                    print(f"  of which the answer's own work on the responder's thread (database reads, document): "
                          f"p50 {_ms(_pct(inside, 0.5))} ms, p99 {_ms(_pct(inside, 0.99))} ms ({len(inside):,})")
                cold, warm = usage["direct_cold"], usage["direct_warm"]
                if cold:
                    print(f"  informational: the 30d answer computed in-process (collector._usage_answer_db, no NATS) "
                          f"for {len(cold)} accounts not read before: p50 {_ms(_pct(cold, 0.5))} ms, p99 "
                          f"{_ms(_pct(cold, 0.99))} ms; the same accounts again: p50 {_ms(_pct(warm, 0.5))} ms, "
                          f"p99 {_ms(_pct(warm, 0.99))} ms")
            print()

        parts = []
        if ingest:
            ok = ingest["ratio"] >= TARGET_RATIO
            parts.append(f"ingest={fmt(ingest['product'])}/s floor={fmt(ingest['floor'])}/s "
                         f"ratio={ingest['ratio']:.4f} (>= {TARGET_RATIO}: {verdict(ok)})")
        if usage and not usage["check_problems"]:
            lat = [p[0] for p in usage["product"]]
            parts.append(f"ngs.usage p50={_ms(_pct(lat, 0.5))}ms p99={_ms(_pct(lat, 0.99))}ms "
                         f"floor p50={_ms(_pct(usage['floor'], 0.5))}ms p99={_ms(_pct(usage['floor'], 0.99))}ms")
        elif usage:
            parts.append("ngs.usage WRONG ANSWERS")
        if info:
            parts.append(f"seed={info.rows:,} rows" + ("" if info.reused else f" in {info.seconds:.0f}s")
                         + f" db={db_size(db_path) / 1e9:.2f}GB")
        print("RESULT " + " ".join(parts) + f"  (total {time.perf_counter() - t_all:.0f} s; {load_average()}; "
              f"{db_describe().split(' (')[0]})")
        return 0
    finally:
        if floor is not None:
            floor.close()
        if publisher is not None:
            publisher.close()
        if fleet is not None:
            fleet.stop()
        bench_dir_close(var_dir, reuse=bool(args.var_dir), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
