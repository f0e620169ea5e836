"""Child processes kept alive: each in its own process group, asked to die with its parent, restarted with
backoff when it dies, stopped together. ``manage.py up`` runs the product's pieces with it (pure: no Django).

A piece that dies is said once in the log with how it ended and when it comes back; the others keep running.
Production does the same with Kubernetes: each piece is its own Deployment, restarted by the kubelet
(docs/DEPLOY.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when this process dies (Linux only; None
    elsewhere). prctl is looked up here, in the parent, so nothing is dlopen'ed between fork and exec;
    a child whose parent died before the death signal was armed exits at once.

    The death signal follows the *thread* that forked: start children from a long-lived thread (the
    supervisor's run loop), never from a short-lived pool thread.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:
            os._exit(1)

    return arm


def port_accepts(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def exit_words(code: int) -> str:
    """``status 3`` or ``signal SIGKILL``, as a person reads a process's end."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"status {code}"


@dataclass
class Piece:
    """One long-running process: how to start it, and the port it listens on when it is ready (if any)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    listens: tuple[str, int] | None = None
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float | None = None  # when a dead piece is started again
    history: list[int] = field(default_factory=list)  # every pid it had (to check that none outlives the stop)


@dataclass(frozen=True)
class RestartPolicy:
    backoff_base: float = 0.5  # the first restart waits this long, each further one twice as long ...
    backoff_max: float = 30.0  # ... up to this
    stable_after: float = 60.0  # a piece that ran this long starts again from the base wait


class ProcessSupervisor:
    """Starts pieces, restarts the ones that die, stops them all; ``status_file`` (JSON) says who runs as what."""

    def __init__(self, *, policy: RestartPolicy | None = None, status_file: Path | None = None,
                 say: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.pieces: list[Piece] = []
        self.policy = policy or RestartPolicy()
        self.status_file = status_file
        self.say = say or log.warning
        self.clock = clock

    # -- running ----------------------------------------------------------------------------------

    def start(self, piece: Piece, *, ready_timeout: float = 15.0) -> Piece:
        """Start ``piece`` and, if it listens, wait until it accepts (failing if it exits first)."""
        if piece not in self.pieces:
            self.pieces.append(piece)
        piece.proc = subprocess.Popen(piece.argv, env=piece.env, start_new_session=True, stdin=subprocess.DEVNULL,
                                      preexec_fn=die_with_parent())
        piece.started_at, piece.next_start = self.clock(), None
        piece.history.append(piece.proc.pid)
        self._write_status()
        if piece.listens is not None:
            self._wait_listening(piece, ready_timeout)
        return piece

    def _wait_listening(self, piece: Piece, timeout: float) -> None:
        host, port = piece.listens
        deadline = self.clock() + timeout
        while not port_accepts(host, port):
            if piece.proc.poll() is not None:
                raise RuntimeError(f"{piece.name} exited with {exit_words(piece.proc.returncode)} before listening "
                                   f"on {host}:{port}")
            if self.clock() > deadline:
                raise RuntimeError(f"{piece.name}: nothing listening on {host}:{port} after {timeout:.0f}s")
            time.sleep(0.05)

    def check(self) -> None:
        """One round: a piece that died is said once and scheduled; a piece whose wait is over is started."""
        now = self.clock()
        for piece in self.pieces:
            if piece.proc is not None and piece.next_start is None and piece.proc.poll() is not None:
                self._died(piece, now)
            elif piece.next_start is not None and now >= piece.next_start:
                try:
                    self.start(piece, ready_timeout=15.0)
                except RuntimeError as exc:  # it died again at once: the next wait is longer
                    self.say(str(exc))
                    self._died(piece, self.clock(), quiet=True)
                    continue
                self.say(f"{piece.name} is running again (pid {piece.proc.pid}, restart {piece.restarts})")

    def _died(self, piece: Piece, now: float, *, quiet: bool = False) -> None:
        code = piece.proc.returncode
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(piece.proc.pid, signal.SIGKILL)  # what it left in its group (a worker's pool children)
        if now - piece.started_at >= self.policy.stable_after:
            piece.restarts = 0
        wait = min(self.policy.backoff_base * 2 ** piece.restarts, self.policy.backoff_max)
        piece.restarts += 1
        piece.next_start = now + wait
        if not quiet:
            self.say(f"{piece.name} exited with {exit_words(code)}; restarting it in {wait:.1f}s "
                     "(the other pieces keep running)")
        self._write_status()

    # -- stopping ---------------------------------------------------------------------------------

    def stop_all(self, *, grace: float, first: tuple[str, ...] = ()) -> list[str]:
        """SIGTERM every piece (``first`` ones alone before the others, newest first), SIGKILL after ``grace``.
        Returns the names that had to be killed."""
        running = [p for p in self.pieces if p.proc is not None and p.proc.poll() is None]
        killed: list[str] = []
        for batch in ([p for p in running if p.name in first], [p for p in running if p.name not in first]):
            for piece in reversed(batch):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(piece.proc.pid, signal.SIGTERM)
            deadline = self.clock() + grace
            for piece in reversed(batch):
                try:
                    piece.proc.wait(timeout=max(deadline - self.clock(), 0.1))
                except subprocess.TimeoutExpired:
                    killed.append(piece.name)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(piece.proc.pid, signal.SIGKILL)
                    piece.proc.wait(timeout=5)
        for piece in self.pieces:  # a piece waiting for its restart may still have a group member left
            if piece.proc is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(piece.proc.pid, signal.SIGKILL)
        self._write_status(stopped=True)
        return killed

    def _write_status(self, *, stopped: bool = False) -> None:
        if self.status_file is None:
            return
        data = {"stopped": stopped, "pieces": {
            p.name: {"pid": p.proc.pid if p.proc is not None else None,
                     "running": p.proc is not None and p.proc.poll() is None and p.next_start is None,
                     "restarts": p.restarts, "pids": p.history} for p in self.pieces}}
        tmp = self.status_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.status_file)
