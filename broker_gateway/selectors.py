"""Reads of the fleet: nodes, their health, and which account versions each node holds."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from accounts_service.models import Account, Team
from broker_gateway.models import BrokerNode, NodeClaim
from core.errors import NotFound


def node_get(*, name: str) -> BrokerNode:
    node = BrokerNode.objects.filter(name=name).first()
    if node is None:
        raise NotFound(f"no node {name}", extra={"node": name})
    return node


def healthy_nodes() -> list[BrokerNode]:
    """Nodes that should run and answered their last health check: the ones a push must reach."""
    return list(BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING,
                                          observed_state=BrokerNode.Observed.HEALTHY,
                                          last_healthy_at__gte=_fresh_since()).order_by("name"))


def running_node_urls() -> list[str]:
    """Client URLs of every node that should be running (whether or not it is healthy right now)."""
    return [n.client_url for n in BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).order_by("name")]


def client_urls_public() -> list[str]:
    """The URLs tenants connect to: NATS_PUBLIC_URLS when set (a load balancer in front of the fleet), else every
    running node's own client URL (a client given all of them fails over)."""
    return list(settings.NATS_PUBLIC_URLS) or running_node_urls()


def leafnode_urls_public() -> list[str]:
    """The URLs tenants' own nats-servers connect to as leafnodes: NATS_PUBLIC_LEAFNODE_URLS when set, else every
    running node's ``nats-leaf://host:leafnode_port``, by node name. (The one place that orders them: by region
    once nodes have one.)"""
    if settings.NATS_PUBLIC_LEAFNODE_URLS:
        return list(settings.NATS_PUBLIC_LEAFNODE_URLS)
    nodes = BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).order_by("name")
    return [f"nats-leaf://{host}:{port}" for host, port in nodes.values_list("host", "leafnode_port")]


def _fresh_since():
    return timezone.now() - timedelta(seconds=settings.FLEET_HEALTH_STALE_SECONDS)


def node_describe(node: BrokerNode) -> dict[str, Any]:
    """A node as the CLI, API and staff page show it. "healthy" that the supervisor stopped confirming
    (it writes every few seconds) shows as "unconfirmed": pushes do not count on such a node."""
    state = node.observed_state
    if state == BrokerNode.Observed.HEALTHY and (node.last_healthy_at is None or node.last_healthy_at < _fresh_since()):
        state = "unconfirmed"
    return {
        "name": node.name,
        "cluster": node.cluster,
        "desired_state": node.desired_state,
        "state": state,
        "pid": node.pid,
        "client_url": node.client_url,
        "monitoring_url": node.monitoring_url,
        "cluster_url": node.cluster_url,
        "leafnode_port": node.leafnode_port,
        "server_id": node.server_id,
        "version": node.version,
        "restarts": node.restarts,
        "consecutive_failures": node.consecutive_failures,
        "last_error": node.last_error,
        "last_healthy_at": node.last_healthy_at.isoformat() if node.last_healthy_at else None,
        "synced_at": node.synced_at.isoformat() if node.synced_at else None,
    }


def accounts_propagation(*, accounts: Sequence[Account]) -> list[dict[str, Any]]:
    """Desired version against what each node holds, for many accounts in two queries."""
    nodes = list(BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).order_by("name"))
    healthy = {n.pk for n in healthy_nodes()}
    claims: dict[tuple[int, int], NodeClaim] = {
        (c.account_id, c.node_id): c for c in NodeClaim.objects.filter(account__in=[a.pk for a in accounts])
    }
    out = []
    for account in accounts:
        rows = []
        for node in nodes:
            claim = claims.get((account.pk, node.pk))
            rows.append({
                "node": node.name,
                "state": node_describe(node)["state"],
                "healthy": node.pk in healthy,
                "held_jti": claim.jti if claim else None,
                "held_iat": claim.iat if claim else None,
                "held_at": claim.updated_at.isoformat() if claim else None,
                "in_sync": bool(claim and claim.jti == account.jwt_jti),
            })
        live = [r for r in rows if r["healthy"]]
        out.append({
            "account": account.public_key,
            "desired": {"jti": account.jwt_jti, "iat": account.jwt_iat, "version": account.version},
            "nodes": rows,
            "live_on": sum(1 for r in live if r["in_sync"]),
            "healthy_nodes": len(live),
            "in_sync": bool(live) and all(r["in_sync"] for r in live),
        })
    return out


def account_propagation(*, account: Account) -> dict[str, Any]:
    """Desired version against what each node holds, for one account (only confirmed-healthy nodes count)."""
    return accounts_propagation(accounts=[account])[0]


def fleet_overview(*, connections: bool = False, timeout: float = 0.5) -> list[dict[str, Any]]:
    """Every node with its health and how many accounts it holds at their latest version; with
    ``connections``, also its current client connections (None when its monitoring port did not answer)."""
    in_sync = dict(
        BrokerNode.objects.annotate(n=Count("claims", filter=Q(claims__jti=F("claims__account__jwt_jti"))))
        .values_list("pk", "n")
    )
    total = Account.objects.exclude(jwt="").count()
    nodes = list(BrokerNode.objects.order_by("name"))
    live = node_connections(nodes=nodes, timeout=timeout) if connections else {}
    out = []
    for node in nodes:
        row = node_describe(node)
        row.update(accounts_in_sync=in_sync.get(node.pk, 0), accounts_total=total)
        if connections:
            row["connections"] = live.get(node.name)
        out.append(row)
    return out


def accounts_out_of_sync(*, limit: int = 100) -> tuple[list[Account], int]:
    """Accounts whose latest JWT some healthy node has not acknowledged, longest-waiting first, and how many."""
    ids = accounts_behind_ids(healthy_nodes())
    accounts = list(Account.objects.filter(pk__in=ids).select_related("team").order_by("updated_at", "pk")[:limit])
    return accounts, len(ids)


def accounts_out_of_sync_count() -> int:
    """How many accounts some healthy node does not hold at their latest version."""
    return len(accounts_behind_ids(healthy_nodes()))


def accounts_behind_ids(nodes: Sequence[BrokerNode], *, changed_since: datetime | None = None) -> list[int]:
    """Accounts whose latest JWT some of ``nodes`` has not acknowledged (only those changed from ``changed_since``
    on, when given)."""
    if not nodes:
        return []
    behind = _behind(nodes)
    if changed_since is not None:
        behind = behind.filter(updated_at__gte=changed_since)
    return [row["pk"] for row in behind]


def teams_accounts_behind(*, teams: Sequence[Team]) -> dict[int, int]:
    """How many accounts of each of ``teams`` some healthy node does not hold at their latest version."""
    nodes = healthy_nodes()
    if not nodes or not teams:
        return {}
    behind = _behind(nodes, "team_id").filter(team__in=[t.pk for t in teams])
    return dict(Counter(row["team_id"] for row in behind))


def _behind(nodes: Sequence[BrokerNode], *fields: str) -> QuerySet[Account, dict[str, Any]]:
    """(``pk``, ``fields``) rows of the accounts some of ``nodes`` holds no claim of at their latest jti.

    Grouped by those columns only: grouping by the whole row (the JWT text included) cost about half as much
    again at 10,000 accounts, and the supervisor's reconciler runs this every FLEET_RECONCILE_SECONDS
    (bench/reconcile.py, docs/BENCHMARKS.md).
    """
    held = Count("node_claims", filter=Q(node_claims__node__in=nodes, node_claims__jti=F("jwt_jti")))
    return Account.objects.exclude(jwt="").values("pk", *fields).annotate(held=held).filter(held__lt=len(nodes))


# ------------------------------------------------------------------------------------------------
# Live client connections (each node's monitoring endpoint)
# ------------------------------------------------------------------------------------------------

# Probes never go through an HTTP proxy from the environment: monitoring ports are fleet-internal.
_VARZ_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_VARZ_MAX_BYTES = 1_000_000


def _varz_connections(url: str, timeout: float) -> int | None:
    try:
        with _VARZ_OPENER.open(url, timeout=timeout) as response:
            value = json.loads(response.read(_VARZ_MAX_BYTES)).get("connections")
    except (OSError, ValueError, AttributeError):  # refused, timed out, not JSON, not an object
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def node_connections(*, nodes: Sequence[BrokerNode], timeout: float = 0.5) -> dict[str, int | None]:
    """Current client connections per node name, from each node's ``/varz`` (``connections``), all nodes
    at once; None for a node that did not answer within ``timeout``. A node that is stopped and meant to be
    is not asked. https://docs.nats.io/running-a-nats-service/nats_admin/monitoring#general-information
    """
    out: dict[str, int | None] = {n.name: None for n in nodes}
    asked = [n for n in nodes if not (n.desired_state == BrokerNode.Desired.STOPPED
                                      and n.observed_state == BrokerNode.Observed.STOPPED)]
    if not asked:
        return out
    pool = ThreadPoolExecutor(max_workers=min(64, len(asked)), thread_name_prefix="varz")
    try:
        futures = {pool.submit(_varz_connections, f"{n.monitoring_url}/varz", timeout): n.name for n in asked}
        # The socket timeout bounds each connect and read; this bounds the whole probe (a server that
        # trickles bytes would otherwise keep a read alive), so a dead node never holds up the page.
        done, _ = wait(futures, timeout=timeout + 0.25)
        for future in done:
            out[futures[future]] = future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return out
