"""A throw-away PostgreSQL server for the benchmarks (and a test run pointed at it): Debian's binaries, run as an
unprivileged user, listening on 127.0.0.1 and a socket in its own directory.

``postgres`` refuses to run as root, so when the benchmark runs as root the cluster is created and run as
``nobody`` (``runuser``). Durability stays the server's default (``fsync``, ``synchronous_commit`` on): the
figures are those of a real deployment's commits. The data directory may be reused (``--var-dir``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

USER = "natsctl"
DATABASE = "natsctl"


def pg_bin(name: str) -> str:
    """A PostgreSQL server binary (initdb, postgres, ...): the newest under /usr/lib/postgresql, or $PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(Path(p).parts[4]))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"PostgreSQL's {name} was not found (apt-get install postgresql)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    """``start()`` creates the cluster at ``data_dir`` if needed and starts it; ``stop()`` shuts it down fast."""

    def __init__(self, data_dir: Path, *, shared_buffers: str = "512MB") -> None:
        self.data_dir = data_dir.resolve()
        self.socket_dir = self.data_dir.parent / f"{self.data_dir.name}-sock"
        self.shared_buffers = shared_buffers
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"postgres://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _own(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(path, "nobody", "nogroup")
            path.chmod(0o700)

    def start(self) -> PgServer:
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if self.as_user:  # a mkdtemp directory is 0700: the server's user must be able to pass through it
            parent = self.data_dir.parent
            parent.chmod(parent.stat().st_mode | 0o711)
        self._own(self.data_dir)
        self._own(self.socket_dir)
        if fresh:
            subprocess.run([*self.as_user, pg_bin("initdb"), "-D", str(self.data_dir), "-U", USER, "--auth=trust",
                            "-E", "UTF8", "--locale=C"], check=True, capture_output=True)
        self.port = _free_port()
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        if self.as_user:
            shutil.chown(log.name, "nobody", "nogroup")
        self.proc = subprocess.Popen(
            [*self.as_user, pg_bin("postgres"), "-D", str(self.data_dir), "-k", str(self.socket_dir),
             "-h", "127.0.0.1", "-p", str(self.port), "-c", f"shared_buffers={self.shared_buffers}",
             "-c", "max_connections=200", "-c", "max_wal_size=4GB"],
            stdout=log, stderr=log, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run([pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                             check=False).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start; see {log.name}")
            time.sleep(0.1)
        if fresh:
            self.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
        return self

    def psql(self, sql: str, *, database: str = DATABASE) -> str:
        return subprocess.run([pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", database,
                               "-Atc", sql], check=True, capture_output=True, text=True).stdout

    def version(self) -> str:
        return self.psql("SHOW server_version").strip()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGINT)  # "fast" shutdown: rolls back open transactions, checkpoints
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


if __name__ == "__main__":  # a server for a test run: `python bench/pgserver.py DIR` prints DATABASE_URL
    import sys

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    server = PgServer(Path(sys.argv[1])).start()
    try:
        print(server.url, flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        server.stop()
