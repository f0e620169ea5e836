"""What the fleet benchmarks (push.py, metering.py) share: a throw-away Django environment, and how figures print.

A benchmark must never touch var/ or a real database: everything goes under the directory it is given.
"""

from __future__ import annotations

import os
from pathlib import Path

_PG = None  # the PostgreSQL server of this run (bench/pgserver.py), if --db postgres


def db_argument(parser) -> None:
    """``--db sqlite|postgres``: the embedded default, or a real PostgreSQL server the benchmark starts."""
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite",
                        help="sqlite (default: a file in the directory) or postgres (a server started in the "
                        "directory, as an unprivileged user, on 127.0.0.1)")


def django_setup(var_dir: Path, db: str = "sqlite") -> None:
    """Settings pointed at ``var_dir`` (its own SQLite file or PostgreSQL cluster, fleet directory and
    seed-encryption key), then ``django.setup()``. The key is kept beside the database, so that ``--var-dir`` can
    reuse both."""
    global _PG
    from operators.sealing import generate_key_spec

    os.environ["DJANGO_SETTINGS_MODULE"] = "accounts_service.settings"
    os.environ["NATSCTL_VAR_DIR"] = str(var_dir)
    if db == "postgres":
        import atexit

        from pgserver import PgServer

        _PG = PgServer(var_dir / "pg").start()
        atexit.register(_PG.stop)
        os.environ["DATABASE_URL"] = _PG.url
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'bench.sqlite3'}"
    os.environ["FLEET_DIR"] = str(var_dir / "fleet")
    key_file = var_dir / "bench-seed-encryption.keys"
    if not key_file.exists():
        key_file.write_text(generate_key_spec("bench"))
        key_file.chmod(0o600)
    os.environ["SEED_ENCRYPTION_KEYS"] = key_file.read_text().strip()
    # No Redis here: a stray enqueue runs inline instead of waiting on a broker (none is expected: the
    # accounts exist before the nodes, and nothing is re-signed while the fleet runs).
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def db_describe() -> str:
    """The engine the run measured, with its version and durability settings."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT current_setting('server_version'), current_setting('fsync'), "
                           "current_setting('synchronous_commit'), current_setting('shared_buffers')")
            version, fsync, sync, buffers = cursor.fetchone()
            return f"PostgreSQL {version} (fsync={fsync}, synchronous_commit={sync}, shared_buffers={buffers})"
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0], "?")
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version} (journal_mode={mode}, synchronous={sync})"


def load_average() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""


def fmt(rate: float) -> str:
    return f"{rate:,.0f}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def sigterm_unwinds() -> None:
    """SIGTERM unwinds like Ctrl-C, through the ``finally`` that stops every node the benchmark started."""
    import signal

    def _terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)


def bench_dir(var_dir: Path | None, prefix: str) -> Path:
    """``--var-dir`` (created, kept) or a new temporary directory."""
    import tempfile

    if var_dir:
        var_dir = var_dir.resolve()
        var_dir.mkdir(parents=True, exist_ok=True)
        return var_dir
    return Path(tempfile.mkdtemp(prefix=prefix))


def bench_dir_close(var_dir: Path, *, reuse: bool, keep: bool) -> None:
    """At the end: a reused ``--var-dir`` keeps its accounts (and ledger) for the next run, not the nodes;
    ``--keep`` keeps everything; otherwise the directory goes. A PostgreSQL server of the run is stopped first."""
    import contextlib
    import shutil

    if reuse:
        with contextlib.suppress(Exception):
            from broker_gateway.models import BrokerNode

            BrokerNode.objects.all().delete()
    if _PG is not None:
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        _PG.stop()
    if reuse:
        shutil.rmtree(var_dir / "fleet", ignore_errors=True)
    elif keep:
        print(f"kept {var_dir}")
    else:
        shutil.rmtree(var_dir, ignore_errors=True)
