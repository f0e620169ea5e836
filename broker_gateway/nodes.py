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
from broker_gateway.models import BrokerNode, NodeOperator
from broker_gateway.node_operators import node_assignment_start
from broker_gateway.ports import free_port, port_free
from broker_gateway.topology import MAX_NODES, region_check, topology_parse
from core.errors import ApplicationError, Conflict, NotFound
from operators.selectors import operator_get

_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


# ------------------------------------------------------------------------------------------------
# Nodes as desired state
# ------------------------------------------------------------------------------------------------


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PORT_KINDS = ("client_port", "cluster_port", "monitoring_port", "leafnode_port", "gateway_port")


def _ports_allocate(host: str, index: int, taken: set[int] | None = None) -> dict[str, int]:
    """Ports for a new node: the conventional ones (4222, 6222, 8222, 7422, 7222, plus the node's index) when
    they are free and unclaimed, else free ones."""
    taken = set(taken or ()) | {p for node in BrokerNode.objects.all() for p in node.ports}
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


def _region(region: str | None) -> str:
    """A node's region: the one given (checked), else the fleet's first region, else FLEET_REGION."""
    if region is None:
        first = BrokerNode.objects.order_by("created_at", "pk").values_list("region", flat=True).first()
        return first or settings.FLEET_REGION
    try:
        return region_check(region)
    except ValueError as exc:
        raise ApplicationError(str(exc), code="region_invalid", extra={"field": "region"}) from exc


@transaction.atomic
def node_add(*, name: str, host: str = "127.0.0.1", ports: dict[str, int] | None = None,
             extra_config: str = "", region: str | None = None, operator: NodeOperator | None = None) -> BrokerNode:
    """A new node (desired running) in ``region``, run by ``operator`` (default: the platform). Its config routes
    to every node of its region and has gateways to every other region; the others are not restarted: routes and
    gateways are gossiped, so they learn of it when it connects."""
    if not isinstance(name, str) or not _NODE_NAME.match(name):
        raise ApplicationError("node name must be 1-64 letters, digits, '-' or '_'", extra={"field": "name"})
    region = _region(region)
    if BrokerNode.objects.filter(name=name).exists():
        raise Conflict(f"node {name} already exists", extra={"field": "name"})
    if BrokerNode.objects.count() >= MAX_NODES:
        raise Conflict(f"the fleet has {MAX_NODES} nodes, the most it takes", code="fleet_full")
    if len(extra_config) > 10_000:
        raise ApplicationError("extra_config is longer than 10000 characters", extra={"field": "extra_config"})
    if ports is None:
        ports = _ports_allocate(host, BrokerNode.objects.count())
    ports = dict(ports)
    if "gateway_port" not in ports:  # four ports given (an older caller, a discovered pod): the conventional one
        taken = set(ports.values()) | {p for n in BrokerNode.objects.filter(host=host) for p in n.ports}
        port = settings.FLEET_BASE_PORTS["gateway_port"]
        while port in taken or (host in _LOOPBACK and not port_free(host, port)):
            port = free_port(host) if host in _LOOPBACK else port + 1
        ports["gateway_port"] = port
    for key in PORT_KINDS:
        if not isinstance(ports.get(key), int) or not 0 < ports[key] <= 65535:
            raise ApplicationError(f"{key} must be a TCP port", extra={"field": key})
    if len(set(ports[k] for k in PORT_KINDS)) != len(PORT_KINDS):
        raise ApplicationError(f"a node's {len(PORT_KINDS)} ports must differ", extra={"field": "ports"})
    clash = BrokerNode.objects.filter(host=host).exclude(name=name)
    used = {p for node in clash for p in node.ports}
    if used & set(ports.values()):
        raise Conflict(f"ports {sorted(used & set(ports.values()))} are used by another node",
                       extra={"field": "ports"})
    node = BrokerNode.objects.create(name=name, host=host, extra_config=extra_config, region=region,
                                     **({"operator": operator} if operator is not None else {}),
                                     **{k: ports[k] for k in PORT_KINDS})
    node_assignment_start(node=node)
    return node


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


def _free_name(region: str, names: set[str]) -> str:
    index = 1
    while f"{region}-{index}" in names:
        index += 1
    return f"{region}-{index}"


@transaction.atomic
def region_add(*, region: str, nodes: int) -> list[BrokerNode]:
    """Grow ``region`` (a new one, or an existing one) by ``nodes`` nodes named REGION-N (lowest free N). The new
    nodes have gateways to every other region; nodes already running are not restarted."""
    region = _region(region)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= MAX_NODES:
        raise ApplicationError(f"nodes must be between 1 and {MAX_NODES}", extra={"field": "nodes"})
    names = set(BrokerNode.objects.values_list("name", flat=True))
    added = []
    for _ in range(nodes):
        name = _free_name(region, names)
        names.add(name)
        added.append(node_add(name=name, region=region))
    return added


def region_desired_set(*, region: str, desired: str) -> list[BrokerNode]:
    """Drain a region (every node stopped through lame duck mode: its clients move to the other regions in their
    connect list, and the connect list leaves it out) or bring it back (every node desired running)."""
    nodes = list(BrokerNode.objects.filter(region=region).order_by("name"))
    if not nodes:
        raise NotFound(f"no region {region}", code="region_not_found", extra={"region": region})
    if desired == BrokerNode.Desired.STOPPED and not BrokerNode.objects.exclude(region=region).filter(
            desired_state=BrokerNode.Desired.RUNNING).exists():
        raise Conflict(f"{region} is the only region running: draining it would leave no node for clients "
                       "(stop its nodes one by one if that is what you want)", code="last_region")
    return [node_desired_set(node=node, desired=desired) for node in nodes]


def fleet_scale(*, count: int, region: str | None = None) -> list[BrokerNode]:
    """Make ``region`` (default: the fleet's first) ``count`` nodes: add missing ones (named REGION-N with the
    lowest free N), remove its most recently added extras."""
    if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_NODES:
        raise ApplicationError(f"count must be between 0 and {MAX_NODES}", extra={"field": "count"})
    region = _region(region)
    nodes = list(BrokerNode.objects.filter(region=region).order_by("created_at", "pk"))
    for node in nodes[count:]:
        node_remove(node=node)
    if count > len(nodes):
        region_add(region=region, nodes=count - len(nodes))
    return list(BrokerNode.objects.filter(region=region).order_by("created_at", "pk"))


def fleet_ensure(*, topology: str | None = None, count: int | None = None) -> list[BrokerNode]:
    """Create the topology (``REGION=NODES,...``; FLEET_TOPOLOGY by default; ``count`` alone means that many nodes
    in FLEET_REGION) when the fleet has no node: the embedded default. Never touches an existing fleet."""
    if not BrokerNode.objects.exists():
        text = topology if topology is not None else (
            f"{settings.FLEET_REGION}={count}" if count is not None else settings.FLEET_TOPOLOGY)
        try:
            regions = topology_parse(text)
        except ValueError as exc:
            raise ApplicationError(str(exc), code="topology_invalid", extra={"field": "topology"}) from exc
        with transaction.atomic():
            for region, nodes in regions:
                if nodes:
                    region_add(region=region, nodes=nodes)
    return list(BrokerNode.objects.order_by("created_at", "pk"))


def regions_list() -> list[str]:
    """Every region of the fleet, in the order its first node was added."""
    seen: dict[str, None] = {}
    for region in BrokerNode.objects.order_by("created_at", "pk").values_list("region", flat=True):
        seen.setdefault(region)
    return list(seen)


def node_store_rows() -> list[tuple[int, str, str, str, int]]:
    """Every account's (id, public key, latest JWT, jti, iat): what a node's resolver store should hold."""
    return list(Account.objects.exclude(jwt="").values_list("pk", "public_key", "jwt", "jwt_jti", "jwt_iat"))


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
    """A node's whole config: operator mode, full resolver, system account preloaded, routes to every node of its
    region, gateways to every other region, JetStream in its own store, monitoring and leafnode ports, lame duck
    duration; then its extra config.

    A fleet of one node in one region runs standalone (no cluster, no gateway block). Otherwise every node has a
    cluster block naming its region with a route to each node of the region, itself included (nats-server drops
    a route to itself, and clustered JetStream needs a configured route: a region of one node in a supercluster
    has only that one), and a gateway block listing the other regions. Growing a lone node into a cluster or a
    supercluster means restarting it (`fleet stop` / `fleet start`); nodes that are part of one already learn of
    new nodes and regions by gossip."""
    fleet = list(BrokerNode.objects.order_by("name"))
    region = [n for n in fleet if n.region == node.region]
    others: dict[str, list[str]] = {}
    for n in fleet:
        if n.region != node.region:
            others.setdefault(n.region, []).append(n.gateway_url)
    cluster = gateway = None
    if len(fleet) > 1:
        cluster = config_render.ClusterConfig(name=node.region, port=node.cluster_port, host=node.host,
                                              routes=[p.cluster_url for p in region])
        gateway = config_render.GatewayConfig(name=node.region, port=node.gateway_port, host=node.host,
                                              gateways=sorted(others.items()))
    text = server_config_build(
        resolver_dir=dirs.resolver,
        server_name=node.name,
        port=node.client_port,
        http_port=node.monitoring_port,
        host=node.host,
        cluster=cluster,
        gateway=gateway,
        jetstream_store_dir=dirs.jetstream,
        leafnode_port=node.leafnode_port,
        lame_duck_duration=settings.FLEET_LAME_DUCK_DURATION,
    )
    if node.extra_config.strip():
        text += "# extra config of this node\n" + node.extra_config.strip() + "\n"
    return text
