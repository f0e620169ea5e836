"""Reads of the fleet: nodes, their health, and which account versions each node holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts_service.models import Account
from broker_gateway.models import BrokerNode, NodeClaim
from operators.errors import NotFound


def node_get(*, name: str) -> BrokerNode:
    node = BrokerNode.objects.filter(name=name).first()
    if node is None:
        raise NotFound(f"no node {name}", extra={"node": name})
    return node


def healthy_nodes() -> list[BrokerNode]:
    """Nodes that should run and answered their last health check: the ones a push must reach."""
    fresh = timezone.now() - timedelta(seconds=settings.FLEET_HEALTH_STALE_SECONDS)
    return list(BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING,
                                          observed_state=BrokerNode.Observed.HEALTHY,
                                          last_healthy_at__gte=fresh).order_by("name"))


def running_node_urls() -> list[str]:
    """Client URLs of every node that should be running (whether or not it is healthy right now)."""
    return [n.client_url for n in BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).order_by("name")]


def node_describe(node: BrokerNode) -> dict[str, Any]:
    return {
        "name": node.name,
        "cluster": node.cluster,
        "desired_state": node.desired_state,
        "state": node.observed_state,
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


def account_propagation(*, account: Account) -> dict[str, Any]:
    """Desired version against what each node holds, for one account."""
    claims = {c.node_id: c for c in NodeClaim.objects.filter(account=account)}
    nodes = []
    for node in BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).order_by("name"):
        claim = claims.get(node.pk)
        nodes.append({
            "node": node.name,
            "state": node.observed_state,
            "held_jti": claim.jti if claim else None,
            "held_iat": claim.iat if claim else None,
            "held_at": claim.updated_at.isoformat() if claim else None,
            "in_sync": bool(claim and claim.jti == account.jwt_jti),
        })
    healthy = [n for n in nodes if n["state"] == BrokerNode.Observed.HEALTHY]
    return {
        "account": account.public_key,
        "desired": {"jti": account.jwt_jti, "iat": account.jwt_iat, "version": account.version},
        "nodes": nodes,
        "live_on": sum(1 for n in healthy if n["in_sync"]),
        "healthy_nodes": len(healthy),
        "in_sync": bool(healthy) and all(n["in_sync"] for n in healthy),
    }


def fleet_overview() -> list[dict[str, Any]]:
    """Every node with its health and how many accounts it holds at their latest version."""
    in_sync = dict(
        BrokerNode.objects.annotate(n=Count("claims", filter=Q(claims__jti=F("claims__account__jwt_jti"))))
        .values_list("pk", "n")
    )
    total = Account.objects.exclude(jwt="").count()
    out = []
    for node in BrokerNode.objects.order_by("name"):
        row = node_describe(node)
        row.update(accounts_in_sync=in_sync.get(node.pk, 0), accounts_total=total)
        out.append(row)
    return out


def accounts_out_of_sync(*, limit: int = 100) -> list[Account]:
    """Accounts whose latest JWT some healthy node has not acknowledged."""
    ids = accounts_behind_ids(healthy_nodes())[:limit]
    return list(Account.objects.filter(pk__in=ids).select_related("team").order_by("name"))


def accounts_behind_ids(nodes: Sequence[BrokerNode]) -> list[int]:
    """Accounts whose latest JWT some of ``nodes`` has not acknowledged."""
    if not nodes:
        return []
    held = Count("node_claims", filter=Q(node_claims__node__in=nodes, node_claims__jti=F("jwt_jti")))
    return list(Account.objects.exclude(jwt="").annotate(held=held).filter(held__lt=len(nodes))
                .values_list("pk", flat=True))
