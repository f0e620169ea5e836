"""REST API: ``.creds`` issuance over HTTP against a trivial authenticated endpoint on the same server.

Run from the repo root::

    .venv/bin/python bench/api.py              # full run: 5 interleaved rounds of ~4 s each (~70 s)
    .venv/bin/python bench/api.py --quick      # 3 rounds of ~2 s (~30 s)
    .venv/bin/python bench/api.py --rounds 5 --seconds 4 --concurrency 4 --workers 2

Everything happens in a throw-away directory (``NATSCTL_VAR_DIR``, its own SQLite file and seed-encryption
key): migrate, ``operator_init``, a Django user who is a member of one team with one account, and an API
token for that user (``api_token_create``). Then the real WSGI app runs under gunicorn (``--workers 2``,
sync workers, a free port on 127.0.0.1, ``API_THROTTLE_USER=1000000/minute`` so DRF's throttle never
answers 429) as a subprocess, and a client of ``--concurrency`` threads, each with its own keep-alive
``http.client`` connection, measures two figures:

1. product: one ``.creds`` issuance = ``POST /api/v1/accounts/{pk}/users/`` (a new, unique name, pub/sub
   allow ``orders.>``) and then ``GET /api/v1/accounts/{pk}/users/{user_pk}/creds``; pairs/s and the latency
   of each pair (from the POST being sent until the creds body is read);
2. floor, same server, same database, same token, same concurrency: ``GET /api/v1/connect``, a trivial
   authenticated DRF view (bearer-token lookup, throttle, ``ATOMIC_REQUESTS`` transaction, JSON render of
   the node URL list, which is empty: no node exists); requests/s and latency;
3. one-request issuance: the same ``POST .../users/`` with ``Accept: text/plain``, which answers the new user's
   ``.creds`` (created, audited as a creation and a download, in one transaction); issuances/s and latency.

(1), (2) and (3) alternate, the order rotating each round. Rates are medians of the rounds; the headline ratio
is the median of the per-round ratios (product pairs/s / floor requests/s), its definition unchanged since the
bench was written. Target: ratio >= 0.5. A pair is two requests, so 0.5 means "each of the two product requests
costs no more than the floor". The one-request figure is reported beside it, against the same floor and the
same target (issuances/s / floor requests/s): what a client that asks for the ``.creds`` with the creation gets.

There is no ``BrokerNode`` row, so issuing a user pushes nothing to any NATS server (the user JWT is not a
claim the fleet needs anyway); the figure is the API's own cost: DRF, validation, key generation, sealing
the seed, signing the JWT, the rows and audit records, and assembling the ``.creds`` text.

This is a measurement, not a test: it exits 0 and prints PASS or FAIL (1 only when the setup fails).
gunicorn is stopped at the end, also on Ctrl-C, SIGTERM and errors.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchenv import db_argument, db_describe  # noqa: E402  (bench/ is the script's own folder)

from broker_gateway.ports import free_port  # noqa: E402  (the repository root is on sys.path only now)

TARGET_RATIO = 0.5
PERMISSIONS = {"pub": {"allow": ["orders.>"]}, "sub": {"allow": ["orders.>"]}}


# ---------------------------------------------------------------------------------------------
# Setup: a throw-away Django environment with one team, one account and an API token
# ---------------------------------------------------------------------------------------------


def bench_env(var_dir: Path, database_url: str | None = None) -> dict[str, str]:
    """The environment both this process and gunicorn run with: never var/ or a real database (``database_url``:
    the bench's own PostgreSQL server)."""
    from operators.sealing import generate_key_spec

    key_file = var_dir / "bench-seed-encryption.keys"
    if not key_file.exists():
        key_file.write_text(generate_key_spec("bench"))
        key_file.chmod(0o600)
    return {
        "DJANGO_SETTINGS_MODULE": "accounts_service.settings",
        "NATSCTL_VAR_DIR": str(var_dir),
        "DATABASE_URL": database_url or f"sqlite:///{var_dir / 'bench.sqlite3'}",
        "FLEET_DIR": str(var_dir / "fleet"),
        "SEED_ENCRYPTION_KEYS": key_file.read_text().strip(),
        # No Redis here: a stray enqueue would run inline rather than wait on a broker (none is expected:
        # with no BrokerNode row nothing is pushed).
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "API_THROTTLE_USER": "1000000/minute",
        "LOG_LEVEL": "WARNING",
        "DJANGO_DEBUG": "0",
    }


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def fixtures_create() -> tuple[str, str]:
    """Migrate, init the operator, one team with one account and a member with an API token;
    (account public key, token)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from accounts_service import services as acc_services
    from accounts_service.models import TeamMembership
    from accounts_service.rights import PLATFORM
    from broker_gateway.models import BrokerNode
    from operators import services as op_services

    call_command("migrate", verbosity=0, interactive=False)
    op_services.operator_init(name="bench", identity_seed_out=None, store_identity_key=True)
    acc_services.system_account_ensure()
    user = get_user_model().objects.create_user(username="bench", password=None)
    team = acc_services.team_get_or_create(name="bench-team")
    acc_services.team_member_add(team=team, user=user, role=TeamMembership.Role.OWNER)
    account = acc_services.account_create(actor=PLATFORM, team=team, name="orders")
    _, token = acc_services.api_token_create(actor=PLATFORM, user=user, name="bench")
    assert not BrokerNode.objects.exists()  # nothing is pushed on issue
    return account.public_key, token


# ---------------------------------------------------------------------------------------------
# gunicorn
# ---------------------------------------------------------------------------------------------


def _is_creds(body: bytes) -> bool:
    """A ``.creds`` text: the user's JWT and its seed."""
    return b"-----BEGIN NATS USER JWT-----" in body and b"-----BEGIN USER NKEY SEED-----" in body


class Server:
    def __init__(self, env: dict[str, str], workers: int, log: Path) -> None:
        self.port = free_port()
        self.log = log
        gunicorn = Path(sys.executable).parent / "gunicorn"
        self.cmd = [str(gunicorn), "accounts_service.wsgi:application", "--bind", f"127.0.0.1:{self.port}",
                    "--workers", str(workers), "--log-level", "warning"]
        self.env = {**os.environ, **env}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer /healthz within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # gunicorn's graceful stop: the arbiter stops its workers
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: only gunicorn and its workers
            self.proc.wait(timeout=5)


# ---------------------------------------------------------------------------------------------
# The client: N threads, one keep-alive connection each
# ---------------------------------------------------------------------------------------------


@dataclass
class Round:
    rate: float
    latencies: list[float] = field(default_factory=list)  # seconds, one per operation
    errors: int = 0


class Client:
    def __init__(self, port: int, token: str, account: str) -> None:
        self.port, self.account = port, account
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.post_headers = {**self.headers, "Content-Type": "application/json"}
        self._seq = 0
        self._seq_lock = threading.Lock()
        self.run_id = os.urandom(3).hex()

    def _name(self) -> str:
        with self._seq_lock:
            self._seq += 1
            return f"u-{self.run_id}-{self._seq:07d}"

    @staticmethod
    def _call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None,
              headers: dict) -> tuple[int, bytes]:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    def op_floor(self, conn: http.client.HTTPConnection) -> bool:
        status, body = self._call(conn, "GET", "/api/v1/connect", None, self.headers)
        return status == 200 and body.startswith(b'{"servers":[]')  # (the connect plan's other keys follow)

    def op_product(self, conn: http.client.HTTPConnection) -> bool:
        body = json.dumps({"name": self._name(), "permissions": PERMISSIONS}).encode()
        status, out = self._call(conn, "POST", f"/api/v1/accounts/{self.account}/users/", body, self.post_headers)
        if status != 201:
            self.last_error = f"POST {status}: {out[:300]!r}"
            return False
        user_pk = json.loads(out)["public_key"]
        status, creds = self._call(conn, "GET", f"/api/v1/accounts/{self.account}/users/{user_pk}/creds", None,
                                   {**self.headers, "Accept": "text/plain"})
        if status != 200 or not _is_creds(creds):
            self.last_error = f"GET creds {status}: {creds[:300]!r}"
            return False
        return True

    def op_issue(self, conn: http.client.HTTPConnection) -> bool:
        body = json.dumps({"name": self._name(), "permissions": PERMISSIONS}).encode()
        status, creds = self._call(conn, "POST", f"/api/v1/accounts/{self.account}/users/", body,
                                   {**self.post_headers, "Accept": "text/plain"})
        if status != 201 or not _is_creds(creds):
            self.last_error = f"POST (Accept: text/plain) {status}: {creds[:300]!r}"
            return False
        return True

    def run(self, op, seconds: float, concurrency: int) -> Round:
        """Run ``op`` from ``concurrency`` threads for ``seconds``; completed operations per second."""
        lat: list[list[float]] = [[] for _ in range(concurrency)]
        errors = [0] * concurrency
        start = threading.Barrier(concurrency + 1)
        box: dict[str, float] = {}

        def worker(i: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            start.wait()
            deadline = box["deadline"]
            mine = lat[i]
            try:
                while True:
                    t0 = time.perf_counter()
                    if t0 >= deadline:
                        break
                    try:
                        ok = op(conn)
                    except (OSError, http.client.HTTPException):
                        ok = False
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                    if ok:
                        mine.append(time.perf_counter() - t0)
                    else:
                        errors[i] += 1
            finally:
                conn.close()

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
        for t in threads:
            t.start()
        t0 = time.perf_counter()
        box["deadline"] = t0 + seconds  # set before the barrier releases the workers
        start.wait()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0  # includes finishing the operations in flight at the deadline
        flat = [x for xs in lat for x in xs]
        return Round(rate=len(flat) / elapsed, latencies=flat, errors=sum(errors))


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, load average {load:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (3 rounds of ~2 s)")
    parser.add_argument("--rounds", type=int, help="rounds per figure (default 5, --quick 3)")
    parser.add_argument("--seconds", type=float, help="seconds per figure per round (default 4, --quick 2)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads / connections (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (and gunicorn's log)")
    db_argument(parser)
    args = parser.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 5)
    seconds = args.seconds or (2.0 if args.quick else 4.0)

    var_dir = Path(tempfile.mkdtemp(prefix="natsctl-bench-api-"))
    server: Server | None = None
    pg = None

    def on_term(signum, frame):  # SIGTERM: the same clean-up as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        if args.db == "postgres":
            from pgserver import PgServer

            pg = PgServer(var_dir / "pg").start()
        env = bench_env(var_dir, pg.url if pg is not None else None)
        django_setup(env)
        t0 = time.perf_counter()
        account, token = fixtures_create()
        print(f"setup: {var_dir} (migrate + operator + team + account + token: {time.perf_counter() - t0:.1f} s)")
        server = Server(env, args.workers, var_dir / "gunicorn.log")
        server.start()
        print(f"gunicorn: 127.0.0.1:{server.port}, {args.workers} sync workers; client: {args.concurrency} "
              f"keep-alive connections; {rounds} rounds x {seconds:g} s per figure")
        print("note: no BrokerNode rows exist, so issuing a user pushes nothing to NATS: this is the API's own cost")
        print(f"machine: {machine()}")
        print(f"database: {db_describe()}")
        client = Client(server.port, token, account)

        # Warm-up: every worker imports and compiles its paths once; both ops checked to succeed.
        for op, name in ((client.op_floor, "floor"), (client.op_product, "product"),
                         (client.op_issue, "one-request")):
            w = client.run(op, 1.0, args.concurrency)
            if w.errors or not w.latencies:
                raise RuntimeError(f"warm-up of {name} failed ({w.errors} errors): {getattr(client, 'last_error', '')}"
                                   f"\n{server.log.read_text()[-2000:]}")

        prod: list[Round] = []
        floor: list[Round] = []
        issue: list[Round] = []
        print(f"\n{'round':>5}  {'product pairs/s':>15}  {'p50 ms':>7}  {'p99 ms':>7}  "
              f"{'floor req/s':>11}  {'p50 ms':>7}  {'p99 ms':>7}  {'ratio':>6}  "
              f"{'one-request/s':>13}  {'p50 ms':>7}  {'p99 ms':>7}  {'ratio':>6}")
        ops = (("p", client.op_product), ("f", client.op_floor), ("i", client.op_issue))
        for r in range(rounds):
            order = ops[r % 3:] + ops[:r % 3]  # each figure goes first, second and third in turn
            got = {}
            for key, op in order:
                got[key] = client.run(op, seconds, args.concurrency)
            prod.append(got["p"])
            floor.append(got["f"])
            issue.append(got["i"])
            p, f, i = got["p"], got["f"], got["i"]
            errs = (f"  errors: product {p.errors}, floor {f.errors}, one-request {i.errors}"
                    if p.errors or f.errors or i.errors else "")
            print(f"{r + 1:>5}  {p.rate:>15,.1f}  {pct(p.latencies, 50) * 1e3:>7.1f}  "
                  f"{pct(p.latencies, 99) * 1e3:>7.1f}  "
                  f"{f.rate:>11,.1f}  {pct(f.latencies, 50) * 1e3:>7.1f}  {pct(f.latencies, 99) * 1e3:>7.1f}  "
                  f"{p.rate / f.rate:>6.3f}  {i.rate:>13,.1f}  {pct(i.latencies, 50) * 1e3:>7.1f}  "
                  f"{pct(i.latencies, 99) * 1e3:>7.1f}  {i.rate / f.rate:>6.3f}{errs}", flush=True)

        ratios = [p.rate / f.rate for p, f in zip(prod, floor, strict=True)]
        ratio = statistics.median(ratios)
        p_rate = statistics.median(x.rate for x in prod)
        f_rate = statistics.median(x.rate for x in floor)
        p_lat = [x for r in prod for x in r.latencies]
        f_lat = [x for r in floor for x in r.latencies]
        verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
        i_ratios = [i.rate / f.rate for i, f in zip(issue, floor, strict=True)]
        i_ratio = statistics.median(i_ratios)
        i_rate = statistics.median(x.rate for x in issue)
        i_lat = [x for r in issue for x in r.latencies]
        i_verdict = "PASS" if i_ratio >= TARGET_RATIO else "FAIL"
        print()
        print(f"product: .creds issuance (POST user + GET creds): {p_rate:,.1f} pairs/s (median), "
              f"pair latency p50 {pct(p_lat, 50) * 1e3:.1f} ms, p99 {pct(p_lat, 99) * 1e3:.1f} ms "
              f"({len(p_lat):,} pairs)")
        print(f"one-request: POST user, Accept: text/plain:       {i_rate:,.1f} issuances/s (median), "
              f"latency p50 {pct(i_lat, 50) * 1e3:.1f} ms, p99 {pct(i_lat, 99) * 1e3:.1f} ms "
              f"({len(i_lat):,} issuances)")
        print(f"floor:   GET /api/v1/connect:                     {f_rate:,.1f} req/s (median), "
              f"latency p50 {pct(f_lat, 50) * 1e3:.1f} ms, p99 {pct(f_lat, 99) * 1e3:.1f} ms ({len(f_lat):,} requests)")
        print(f"ratio product/floor: {ratio:.3f} (median of per-round ratios; ratio of medians "
              f"{p_rate / f_rate:.3f}; rounds {' · '.join(f'{x:.3f}' for x in ratios)})  target >= {TARGET_RATIO}: "
              f"{verdict}")
        print(f"ratio one-request/floor: {i_ratio:.3f} (median of per-round ratios; ratio of medians "
              f"{i_rate / f_rate:.3f}; rounds {' · '.join(f'{x:.3f}' for x in i_ratios)})  target >= {TARGET_RATIO}: "
              f"{i_verdict}")
        errors = sum(r.errors for r in prod) + sum(r.errors for r in floor) + sum(r.errors for r in issue)
        if errors:
            print(f"errors: {errors} (last: {getattr(client, 'last_error', '?')})")
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # (a setup failure: report it, clean up, exit 1)
        traceback.print_exc()
        print(f"setup failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            server.stop()
        if pg is not None:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            pg.stop()
        if args.keep:
            print(f"kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
