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


def region_client_urls() -> dict[str, list[str]]:
    """Each region's client URLs, regions in the order their first node was added: NATS_REGION_URLS for a region
    it names (a load balancer per region), else the region's running nodes' own URLs, unless NATS_PUBLIC_URLS is
    set (the nodes' own addresses are then not for tenants: Kubernetes pods). A drained region (no node meant to
    run) has none and is left out."""
    own = not settings.NATS_PUBLIC_URLS
    out: dict[str, list[str]] = {}
    for node in BrokerNode.objects.order_by("created_at", "pk"):
        urls = out.setdefault(node.region, [])
        if own and node.desired_state == BrokerNode.Desired.RUNNING and node.region not in settings.NATS_REGION_URLS:
            urls.append(node.client_url)
    for region in out:
        if region in settings.NATS_REGION_URLS and any(
                n.desired_state == BrokerNode.Desired.RUNNING for n in BrokerNode.objects.filter(region=region)):
            out[region] = list(settings.NATS_REGION_URLS[region])
    return {region: urls for region, urls in out.items() if urls}


def connections_region(*, account_public_key: str) -> str | None:
    """The region where the account has the most client connections now, as the metering ledger last saw them
    (each server's counters name the server, which is a node of a region); None when it has none."""
    from billing.models import ServerAccountCounter  # billing's ledger, read only

    by_node = dict(ServerAccountCounter.objects.filter(account_public_key=account_public_key, conns__gt=0,
                                                       observed_at__gte=timezone.now() - timedelta(minutes=5))
                   .values_list("server_name", "conns"))
    if not by_node:
        return None
    regions: Counter[str] = Counter()
    for name, region in BrokerNode.objects.filter(name__in=by_node).values_list("name", "region"):
        regions[region] += by_node[name]
    return regions.most_common(1)[0][0] if regions else None


def connect_plan(*, account: Account | None = None, region: str | None = None) -> dict[str, Any]:
    """Where a tenant's client should connect: every region's URLs, the closest region's first.

    "Closest" is, in this order: the region asked for (``region``), the account's home region (picked by its
    team), the region where the account has most connections now (the ledger), else the fleet's first region.
    NATS_PUBLIC_URLS (one global address in front of every region) follows the regions' own public URLs when
    set."""
    regions = region_client_urls()
    chosen, chosen_by = None, "default"
    if region:
        if region not in regions:
            known = ", ".join(regions) or "none is running"
            raise NotFound(f"no running region {region} (regions: {known})", code="region_not_found",
                           extra={"region": region})
        chosen, chosen_by = region, "query"
    elif account is not None and account.home_region in regions:
        chosen, chosen_by = account.home_region, "home_region"
    elif account is not None and (seen := connections_region(account_public_key=account.public_key)) in regions:
        chosen, chosen_by = seen, "connections"
    elif regions:
        chosen = next(iter(regions))
    order = [chosen, *(r for r in regions if r != chosen)] if chosen else []
    servers = [u for r in order for u in regions[r]]
    servers += [u for u in settings.NATS_PUBLIC_URLS if u not in servers]
    return {"servers": servers, "region": chosen, "chosen_by": chosen_by,
            "home_region": account.home_region if account is not None else "",
            "regions": [{"name": r, "servers": regions[r]} for r in order]}


def leafnode_urls_public() -> list[str]:
    """The URLs tenants' own nats-servers connect to as leafnodes: NATS_PUBLIC_LEAFNODE_URLS when set, else every
    running node's leafnode URL, every region's, regions in the order their first node was added (a leafnode
    remote takes one URL at a time and fails over to the others)."""
    if settings.NATS_PUBLIC_LEAFNODE_URLS:
        return list(settings.NATS_PUBLIC_LEAFNODE_URLS)
    nodes = list(BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).order_by("created_at", "pk"))
    first = {}
    for node in nodes:
        first.setdefault(node.region, len(first))
    return [n.leafnode_url for n in sorted(nodes, key=lambda n: (first[n.region], n.name))]


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
        "region": node.region,
        "desired_state": node.desired_state,
        "state": state,
        "pid": node.pid,
        "client_url": node.client_url,
        "monitoring_url": node.monitoring_url,
        "cluster_url": node.cluster_url,
        "gateway_url": node.gateway_url,
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


def fleet_overview(*, connections: bool = False, gateways: bool = False,
                   timeout: float = 0.5) -> list[dict[str, Any]]:
    """Every node (by region, then name) with its health and how many accounts it holds at their latest version;
    with ``connections``, also its current client connections (None when its monitoring port did not answer);
    with ``gateways``, its link to each other region (``gateway_links``)."""
    in_sync = dict(
        BrokerNode.objects.annotate(n=Count("claims", filter=Q(claims__jti=F("claims__account__jwt_jti"))))
        .values_list("pk", "n")
    )
    total = Account.objects.exclude(jwt="").count()
    nodes = list(BrokerNode.objects.order_by("region", "name"))
    live = node_connections(nodes=nodes, timeout=timeout) if connections else {}
    links = node_gateways(nodes=nodes, timeout=timeout) if gateways else {}
    out = []
    for node in nodes:
        row = node_describe(node)
        row.update(accounts_in_sync=in_sync.get(node.pk, 0), accounts_total=total)
        if connections:
            row["connections"] = live.get(node.name)
        if gateways:
            row["gateways"] = links.get(node.name, [])
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


def _monitor_json(url: str, timeout: float) -> dict[str, Any] | None:
    try:
        with _VARZ_OPENER.open(url, timeout=timeout) as response:
            body = json.loads(response.read(_VARZ_MAX_BYTES))
    except (OSError, ValueError):  # refused, timed out, not JSON
        return None
    return body if isinstance(body, dict) else None


def _varz_connections(body: dict[str, Any]) -> int | None:
    value = body.get("connections")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _probe_all(nodes: Sequence[BrokerNode], path: str, timeout: float) -> dict[str, dict[str, Any] | None]:
    """Each node's monitoring ``path`` as JSON, all nodes at once; None for a node that did not answer within
    ``timeout``. A node that is stopped and meant to be is not asked."""
    out: dict[str, dict[str, Any] | None] = {n.name: None for n in nodes}
    asked = [n for n in nodes if not (n.desired_state == BrokerNode.Desired.STOPPED
                                      and n.observed_state == BrokerNode.Observed.STOPPED)]
    if not asked:
        return out
    pool = ThreadPoolExecutor(max_workers=min(64, len(asked)), thread_name_prefix="monitor")
    try:
        futures = {pool.submit(_monitor_json, f"{n.monitoring_url}{path}", timeout): n.name for n in asked}
        # The socket timeout bounds each connect and read; this bounds the whole probe (a server that
        # trickles bytes would otherwise keep a read alive), so a dead node never holds up the page.
        done, _ = wait(futures, timeout=timeout + 0.25)
        for future in done:
            out[futures[future]] = future.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return out


def node_connections(*, nodes: Sequence[BrokerNode], timeout: float = 0.5) -> dict[str, int | None]:
    """Current client connections per node name, from each node's ``/varz`` (``connections``); None for a node
    that did not answer within ``timeout``.
    https://docs.nats.io/running-a-nats-service/nats_admin/monitoring#general-information
    """
    return {name: _varz_connections(body) if body is not None else None
            for name, body in _probe_all(nodes, "/varz", timeout).items()}


def node_accountz(*, nodes: Sequence[BrokerNode], account_public_key: str,
                  timeout: float = 0.5) -> dict[str, dict[str, Any] | None]:
    """Each node's view of one account from ``/accountz?acc=`` (``account_detail``: ``jwt``, ``client_connections``,
    ``leafnode_connections``); None for a node that did not answer or has not loaded the account (a node loads an
    account on its first client, and answers "does not exist" before).
    https://docs.nats.io/running-a-nats-service/nats_admin/monitoring#account-information
    """
    if not nodes:
        return {}
    out: dict[str, dict[str, Any] | None] = {}
    for name, body in _probe_all(nodes, f"/accountz?acc={account_public_key}", timeout).items():
        detail = body.get("account_detail") if body is not None else None
        out[name] = detail if isinstance(detail, dict) else None
    return out


def gateway_links(gatewayz: dict[str, Any] | None, regions: Sequence[str], own: str) -> list[dict[str, Any]]:
    """A node's link to each other region from its ``/gatewayz``: ``up`` when its outbound gateway to the region
    is connected, ``down`` when the region is part of the fleet but the node has no connection to it, ``unknown``
    when the node did not answer. An inbound connection alone does not make a link: messages to a region leave
    over the outbound one. https://docs.nats.io/running-a-nats-service/nats_admin/monitoring#gateway-information
    """
    links = []
    outbound = (gatewayz or {}).get("outbound_gateways") or {}
    inbound = (gatewayz or {}).get("inbound_gateways") or {}
    for region in regions:
        if region == own:
            continue
        if gatewayz is None:
            links.append({"region": region, "state": "unknown", "url": "", "rtt": "", "inbound": 0})
            continue
        conn = (outbound.get(region) or {}).get("connection") or {}
        up = bool(conn) and not conn.get("stop")
        links.append({"region": region, "state": "up" if up else "down",
                      "url": f"{conn.get('ip', '')}:{conn.get('port', '')}" if up else "",
                      "rtt": conn.get("rtt", "") if up else "", "inbound": len(inbound.get(region) or [])})
    return links


def node_gateways(*, nodes: Sequence[BrokerNode], timeout: float = 0.5) -> dict[str, list[dict[str, Any]]]:
    """Each node's gateway link to every other region of the fleet (see ``gateway_links``)."""
    regions = sorted({n.region for n in BrokerNode.objects.all()})
    bodies = _probe_all(nodes, "/gatewayz", timeout)
    return {n.name: gateway_links(bodies.get(n.name), regions, n.region) for n in nodes}


def regions_overview() -> list[dict[str, Any]]:
    """Each region (in the order its first node was added): its nodes, how many should run and how many are
    healthy; ``drained`` when none should run."""
    healthy = {n.pk for n in healthy_nodes()}
    out: dict[str, dict[str, Any]] = {}
    for node in BrokerNode.objects.order_by("created_at", "pk"):
        row = out.setdefault(node.region, {"region": node.region, "nodes": 0, "running": 0, "healthy": 0,
                                           "names": []})
        row["nodes"] += 1
        row["names"].append(node.name)
        row["running"] += node.desired_state == BrokerNode.Desired.RUNNING
        row["healthy"] += node.pk in healthy
    for row in out.values():
        row["drained"] = row["running"] == 0
    return list(out.values())
