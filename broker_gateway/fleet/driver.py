"""What the supervisor needs from wherever nodes run (local processes now, Kubernetes later).

The interface speaks of nodes, configs and health only; how an instance is started, signalled or
probed is the driver's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class NodeSpec:
    """A node as the driver sees it: a name, its rendered config, and where to probe it."""

    name: str
    config: str
    host: str
    client_port: int
    monitoring_port: int


@dataclass(frozen=True)
class NodeStatus:
    """Whether an instance of the node is running; when it ended, how and with what last words."""

    running: bool
    pid: int | None = None
    exit_code: int | None = None
    error: str = ""


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str = ""
    server_id: str = ""
    version: str = ""


@dataclass(frozen=True)
class DataDirs:
    resolver: str
    jetstream: str


class FleetDriver(Protocol):
    def data_dirs(self, name: str) -> DataDirs:
        """Where the node keeps its resolver JWTs and JetStream store."""

    def check_config(self, spec: NodeSpec) -> str | None:
        """The server's own error for an invalid config, or None."""

    def prime(self, name: str, jwts: dict[str, str]) -> bool:
        """Before a start: make the node's stored account JWTs exactly ``jwts``, so a node that was down
        does not serve what it held then (a missed revocation) until its full sync; True when it did. A driver
        that cannot reach the store does nothing and says False; the full sync after the start covers it."""

    def start(self, spec: NodeSpec) -> NodeStatus: ...

    def status(self, name: str) -> NodeStatus: ...

    def probe(self, spec: NodeSpec) -> Health: ...

    def stop(self, name: str, *, graceful: bool) -> None:
        """Begin stopping: lame duck mode when ``graceful`` (clients move to other nodes), else terminate."""

    def kill(self, name: str) -> None:
        """Stop now, whatever the instance is doing."""

    def forget(self, name: str) -> None:
        """Drop a removed node's data."""

    def close(self, grace: float) -> None:
        """Stop every instance this driver started (terminate, then kill after ``grace`` seconds)."""
