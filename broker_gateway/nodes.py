"""Broker nodes as desired state (add, remove, start, stop, scale) and the nats-server config each one runs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts_service.models import Account
from accounts_service.services import system_account_ensure
from broker_gateway import config as config_render
from broker_gateway.fleet.driver import DataDirs
from broker_gateway.models import BrokerNode
from broker_gateway.ports import free_port, port_free
from core.errors import ApplicationError, Conflict
from operators.selectors import operator_get

_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


# ------------------------------------------------------------------------------------------------
# Nodes as desired state
# ------------------------------------------------------------------------------------------------


def _ports_allocate(host: str, index: int) -> dict[str, int]:
    """Ports for a new node: the conventional ones (4222, 6222, 8222, 7422, plus the node's index) when
    they are free and unclaimed, else free ones."""
    taken = {p for node in BrokerNode.objects.all() for p in node.ports}
    ports: dict[str, int] = {}
    for key, base in settings.FLEET_BASE_PORTS.items():
        port = base + index if base else 0
        if not port or port in taken or not port_free(host, port):
            port = free_port(host)
            while port in taken:
                port = free_port(host)
        taken.add(port)
        ports[key] = port
    return ports


@transaction.atomic
def node_add(*, name: str, host: str = "127.0.0.1", ports: dict[str, int] | None = None,
             extra_config: str = "", cluster: str | None = None) -> BrokerNode:
    """A new node (desired running). Its config routes to every other node; the others are not restarted:
    routes are gossiped, so they learn of it when it connects."""
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise ApplicationError("node name must be 1-64 letters, digits, '-' or '_'", extra={"field": "name"})
    if BrokerNode.objects.filter(name=name).exists():
        raise Conflict(f"node {name} already exists", extra={"field": "name"})
    if len(extra_config) > 10_000:
        raise ApplicationError("extra_config is longer than 10000 characters", extra={"field": "extra_config"})
    if ports is None:
        ports = _ports_allocate(host, BrokerNode.objects.count())
    for key in ("client_port", "cluster_port", "monitoring_port", "leafnode_port"):
        if not isinstance(ports.get(key), int) or not 0 < ports[key] <= 65535:
            raise ApplicationError(f"{key} must be a TCP port", extra={"field": key})
    if len(set(ports.values())) != 4:
        raise ApplicationError("a node's four ports must differ", extra={"field": "ports"})
    clash = BrokerNode.objects.filter(host=host).exclude(name=name)
    used = {p for node in clash for p in node.ports}
    if used & set(ports.values()):
        raise Conflict(f"ports {sorted(used & set(ports.values()))} are used by another node",
                               extra={"field": "ports"})
    return BrokerNode.objects.create(name=name, host=host, extra_config=extra_config,
                                     cluster=cluster or settings.FLEET_CLUSTER_NAME, **ports)


def node_remove(*, node: BrokerNode) -> None:
    """Forget a node; a running supervisor puts its process in lame duck mode and lets it go."""
    node.delete()


def node_desired_set(*, node: BrokerNode, desired: str) -> BrokerNode:
    """Start or stop a node. Starting a failed node clears its failure count (the operator fixed it)."""
    if desired not in BrokerNode.Desired.values:
        raise ApplicationError(f"desired state must be one of {', '.join(BrokerNode.Desired.values)}",
                               extra={"field": "desired_state"})
    updates: dict[str, Any] = {"desired_state": desired}
    if desired == BrokerNode.Desired.RUNNING and node.observed_state == BrokerNode.Observed.FAILED:
        updates.update(observed_state=BrokerNode.Observed.STOPPED, consecutive_failures=0)
    BrokerNode.objects.filter(pk=node.pk).update(**updates)
    node.refresh_from_db()
    return node


def fleet_scale(*, count: int) -> list[BrokerNode]:
    """Make the fleet ``count`` nodes: add missing ones (named node-N with the lowest free N), remove the
    most recently added extras."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 64:
        raise ApplicationError("count must be between 0 and 64", extra={"field": "count"})
    nodes = list(BrokerNode.objects.order_by("created_at", "pk"))
    for node in nodes[count:]:
        node_remove(node=node)
    names = {n.name for n in nodes}
    index = 1
    while BrokerNode.objects.count() < count:
        while f"node-{index}" in names:
            index += 1
        node_add(name=f"node-{index}")
        names.add(f"node-{index}")
    return list(BrokerNode.objects.order_by("created_at", "pk"))


def fleet_ensure(*, count: int) -> list[BrokerNode]:
    """Create ``count`` nodes when the fleet has none (the embedded default); never touches an existing fleet."""
    if not BrokerNode.objects.exists():
        return fleet_scale(count=count)
    return list(BrokerNode.objects.order_by("created_at", "pk"))


def node_store_jwts() -> dict[str, str]:
    """Every account's latest JWT by public key: what a node's resolver store should hold."""
    return dict(Account.objects.exclude(jwt="").values_list("public_key", "jwt"))


# ------------------------------------------------------------------------------------------------
# Server configuration
# ------------------------------------------------------------------------------------------------


def server_config_build(
    *,
    resolver_dir: Path | str,
    server_name: str = "natsctl-1",
    port: int = 4222,
    http_port: int | None = None,
    resolver_interval: str | None = None,
    **extra: Any,
) -> str:
    """A nats-server config carrying only public material: the operator JWT and the system account JWT."""
    operator = operator_get()
    system = system_account_ensure()
    cfg = config_render.ServerConfig(
        operator_jwt=operator.jwt,
        system_account=system.public_key,
        system_account_jwt=system.jwt,
        resolver_dir=str(resolver_dir),
        server_name=server_name,
        port=port,
        http_port=http_port,
        resolver_interval=resolver_interval or settings.NATS_RESOLVER_INTERVAL,
        **extra,
    )
    return config_render.render(cfg)


def node_config_build(*, node: BrokerNode, dirs: DataDirs) -> str:
    """A node's whole config: operator mode, full resolver, system account preloaded, routes to its peers,
    JetStream in its own store, monitoring and leafnode ports, lame duck duration; then its extra config."""
    peers = list(BrokerNode.objects.filter(cluster=node.cluster).exclude(pk=node.pk).order_by("name"))
    # A lone node gets no cluster block: nats-server refuses clustered JetStream without routes. Growing
    # from one node to more means restarting that first node (`fleet stop` / `fleet start`) to cluster it.
    cluster = config_render.ClusterConfig(name=node.cluster, port=node.cluster_port, host=node.host,
                                          routes=[p.cluster_url for p in peers]) if peers else None
    text = server_config_build(
        resolver_dir=dirs.resolver,
        server_name=node.name,
        port=node.client_port,
        http_port=node.monitoring_port,
        host=node.host,
        cluster=cluster,
        jetstream_store_dir=dirs.jetstream,
        leafnode_port=node.leafnode_port,
        lame_duck_duration=settings.FLEET_LAME_DUCK_DURATION,
    )
    if node.extra_config.strip():
        text += "# extra config of this node\n" + node.extra_config.strip() + "\n"
    return text
