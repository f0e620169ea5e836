"""Start and stop real nats-server processes on free loopback ports for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from broker_gateway import ports
from broker_gateway.fleet.local import nats_server_bin
from tests.waiting import wait_for

_ISSUED: set[int] = set()


def free_port() -> int:
    """A free loopback port never handed out before in this test process: tests draw several ports before
    anything binds them, and the kernel may offer the same free port twice."""
    while True:
        port = ports.free_port()
        if port not in _ISSUED:
            _ISSUED.add(port)
            return port


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for_port(port: int, *, timeout: float = 10.0, proc: subprocess.Popen | None = None) -> None:
    """Until something accepts on 127.0.0.1:port; a process that exits first fails at once."""
    def accepting() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"nats-server exited with {proc.returncode}")
        return port_accepts(port)

    wait_for(accepting, timeout=timeout, interval=0.01, what=f"something listening on 127.0.0.1:{port}")


@dataclass
class NatsServer:
    proc: subprocess.Popen
    port: int
    http_port: int
    config_path: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_nats_server(config_text: str, workdir: Path, *, port: int, http_port: int) -> NatsServer:
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "nats.conf"
    config_path.write_text(config_text)
    log_path = workdir / "nats.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [nats_server_bin(), "-c", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ},
        )
    server = NatsServer(proc=proc, port=port, http_port=http_port, config_path=config_path, log_path=log_path)
    try:
        wait_for_port(port, proc=proc)
    except Exception:
        server.stop()
        raise RuntimeError(f"nats-server did not start:\n{server.log()}") from None
    return server


async def creds_knock(url: str, creds_text: str, **options) -> str:
    """'ok' if the server at ``url`` accepts these creds (and answers a PING), else its lower-cased refusal."""
    import contextlib

    import nats.errors

    from broker_gateway import nats_client

    errors: list[Exception] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(exc)

    try:
        nc = await nats_client.connect_creds(url, creds_text, error_cb=error_cb, **options)
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        return " | ".join(str(e) for e in [exc, *errors]).lower() or type(exc).__name__
    try:
        await nc.flush(timeout=2)
        return "ok"
    except (nats.errors.Error, TimeoutError) as exc:
        return " | ".join(str(e) for e in [exc, *errors]).lower()
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
