"""Broker nodes as desired state, and pushing every account to every node until each holds the latest."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts_service.models import Account, NatsUser
from accounts_service.services import system_account_ensure, user_create
from broker_gateway import config as config_render
from broker_gateway.fleet.driver import DataDirs
from broker_gateway.gateway import (
    Gateway,
    GatewayUnavailable,
    parse_reply,
    reply_ok,
    reply_server,
    update_acknowledged_by,
)
from broker_gateway.models import BrokerNode, NodeClaim
from broker_gateway.ports import free_port, port_free
from broker_gateway.selectors import accounts_behind_ids, healthy_nodes, running_node_urls
from core.db import Merge, rows_upsert
from core.errors import ApplicationError, Conflict, Unavailable
from operators import services as op_services
from operators.selectors import operator_get

log = logging.getLogger(__name__)

CONTROL_PLANE_USER = "control-plane"
# The control plane's own system-account user may only talk on the claims subjects it needs.
CONTROL_PLANE_PUB = ["$SYS.REQ.CLAIMS.>", "$SYS.REQ.ACCOUNT.*.CLAIMS.>"]
CONTROL_PLANE_SUB = ["_INBOX.>"]
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


# ------------------------------------------------------------------------------------------------
# The control plane's system-account connection
# ------------------------------------------------------------------------------------------------


@transaction.atomic
def control_plane_user_ensure() -> NatsUser:
    """The system-account user the control plane connects as to push and look up JWTs."""
    system = system_account_ensure()
    user = NatsUser.objects.filter(account=system, name=CONTROL_PLANE_USER).first()
    return user or user_create(account=system, name=CONTROL_PLANE_USER, pub_allow=CONTROL_PLANE_PUB,
                               sub_allow=CONTROL_PLANE_SUB)


def gateway_open(urls: Sequence[str], *, name: str = "natsctl-gateway") -> Gateway:
    """A new system-account connection to ``urls`` (the caller closes it)."""
    user = control_plane_user_ensure()
    return Gateway(urls, user_jwt=user.jwt, sign_nonce=op_services.nonce_signer_get(user_seed=user.seed), name=name)


_gateway: Gateway | None = None
_gateway_lock = threading.Lock()


def gateway_get() -> Gateway:
    """This process's long-lived connection to the fleet (opened on first use, reopened if it closed).

    nats-py learns the other cluster members from the server it connects to and reconnects on its
    own; a connection that gave up is replaced with one to the nodes the database lists now.
    """
    global _gateway
    with _gateway_lock:
        if _gateway is not None and _gateway.is_usable:
            return _gateway
        if _gateway is not None:
            _gateway.close()
            _gateway = None
        urls = [n.client_url for n in healthy_nodes()] or running_node_urls()
        if not urls:
            raise GatewayUnavailable("the fleet has no running node")
        _gateway = gateway_open(urls)
        return _gateway


def gateway_reset() -> None:
    """Close this process's connection (tests, and after a fork)."""
    global _gateway
    with _gateway_lock:
        if _gateway is not None:
            _gateway.close()
        _gateway = None


# ------------------------------------------------------------------------------------------------
# Pushing to one given server (the CLI's `account push --url`, and tests against a single server)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    account: str
    replies: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return bool(self.replies) and all(reply_ok(r) for r in self.replies)


def account_push(*, account: Account, url: str, timeout: float | None = None, expect: int | None = None) -> PushResult:
    """Push the account's latest JWT (read from the database now) to the server at ``url``, like ``nsc push -u``.

    Without ``expect`` it waits the whole timeout for every server of the cluster to answer.
    """
    account.refresh_from_db(fields=["jwt"])
    timeout = settings.NATS_PUSH_TIMEOUT if timeout is None else timeout
    try:
        gateway = gateway_open([url], name="natsctl-push")
    except GatewayUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    try:
        (replies,) = gateway.push([account.jwt], expect=expect or 10_000, timeout=timeout)
    except GatewayUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    finally:
        gateway.close()
    return PushResult(account=account.public_key, replies=replies)


def account_lookup(*, account_public_key: str, url: str, timeout: float = 2.0) -> str:
    """The JWT the server at ``url`` holds for an account ('' if none)."""
    gateway = gateway_open([url], name="natsctl-lookup")
    try:
        (replies,) = gateway.lookup([account_public_key], expect=1, timeout=timeout)
    finally:
        gateway.close()
    return replies[0] if replies else ""


# ------------------------------------------------------------------------------------------------
# Pushing to the fleet and recording what each node holds
# ------------------------------------------------------------------------------------------------


@dataclass
class FleetPushReport:
    """The outcome of pushing accounts to the healthy nodes."""

    nodes: list[str] = field(default_factory=list)
    accounts: int = 0
    complete: int = 0  # accounts every healthy node acknowledged
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.complete == self.accounts and not self.errors


def _claims_record(rows: Iterable[tuple[int, int, str, int]]) -> int:
    """Upsert NodeClaim rows (account id, node id, jti, iat); accounts deleted meanwhile are skipped.

    One statement run with executemany: a full sync writes one row per account and node, and building that
    many model instances for ``bulk_create`` cost a quarter of a push's wall time.
    """
    rows = list(rows)
    if not rows:
        return 0
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    for attempt in range(2):
        try:
            with transaction.atomic():
                existing = set(Account.objects.filter(pk__in={r[0] for r in rows}).values_list("pk", flat=True))
                return rows_upsert(NodeClaim, ("account", "node", "jti", "iat", "updated_at"),
                                   [(a, n, j, i, now) for a, n, j, i in rows if a in existing],
                                   conflict=("account", "node"), merge=dict.fromkeys(("jti", "iat", "updated_at"),
                                                                                   Merge.NEW))
        except IntegrityError:  # an account or node deleted between the check and the write
            if attempt:
                raise
    return 0


_ROW_FIELDS = ("pk", "public_key", "jwt", "jwt_jti", "jwt_iat")


def _replies_record(rows: Sequence[tuple[int, str, str, str, int]], replies: Sequence[Sequence[bytes]], *,
                    nodes: Sequence[BrokerNode], held: dict[tuple[int, int], str], report: FleetPushReport) -> None:
    """Record what each node acknowledged for (id, public key, jwt, jti, iat) rows. ``held`` is what our
    records say each node holds; only what changed is written."""
    by_name = {n.name: n.pk for n in nodes}
    everyone = set(by_name)
    claims: list[tuple[int, int, str, int]] = []
    for (pk, pub, _jwt, jti, iat), rs in zip(rows, replies, strict=True):
        acked = set()
        for raw in rs:
            server = update_acknowledged_by(raw)
            if server is None:  # not the plain "jwt updated": read it properly
                reply = parse_reply(raw)
                server = reply_server(reply)
                if not reply_ok(reply):
                    error = reply.get("error") or reply
                    report.errors.append({"account": pub, "node": server, "error": error})
                    log.warning("push refused", extra={"account": pub, "node": server, "error": error})
                    continue
            node_pk = by_name.get(server)
            if node_pk is not None:
                acked.add(server)
                if held.get((pk, node_pk)) != jti:
                    claims.append((pk, node_pk, jti, iat))
                    held[(pk, node_pk)] = jti
        if acked >= everyone:
            report.complete += 1
    _claims_record(claims)


def _push_start(gateway: Gateway, rows: Sequence[tuple[int, str, str, str, int]], *, nodes: Sequence[BrokerNode],
                timeout: float) -> Callable[[], list[list[bytes]]]:
    return gateway.push_start([r[2] for r in rows], expect=len(nodes), timeout=timeout,
                              concurrency=settings.FLEET_PUSH_CONCURRENCY)


def _account_pages(qs, *, batch: int):
    """(id, public key, jwt, jti, iat) rows of ``qs``, most recently changed first, ``batch`` at a time.
    Keyset pagination: no OFFSET and no list of ids in the query, however many accounts there are."""
    qs = qs.order_by("-updated_at", "-pk")
    last = None
    while True:
        page = qs if last is None else qs.filter(Q(updated_at__lt=last[0]) | Q(updated_at=last[0], pk__lt=last[1]))
        rows = list(page.values_list("updated_at", *_ROW_FIELDS)[:batch])
        if not rows:
            return
        last = (rows[-1][0], rows[-1][1])
        yield [r[1:] for r in rows]


def accounts_push(*, account_ids: Iterable[int] | None = None, timeout: float | None = None,
                  batch: int = 2000) -> FleetPushReport:
    """Push the latest JWT of the given accounts (all when None) to every healthy node, most recently
    changed first, and record per node what it acknowledged.

    JWTs are read from the database at push time, never carried in task arguments. An account re-signed
    while its push was in flight is pushed again, so an older version cannot end up last.

    Batches are pipelined: while one batch is on the wire, the next one is read and the previous one's
    acknowledgements are recorded (one batch in flight at a time, so the concurrency window holds).
    """
    started = time.monotonic()
    nodes = healthy_nodes()
    report = FleetPushReport(nodes=[n.name for n in nodes])
    if not nodes:
        return report
    timeout = settings.NATS_PUSH_TIMEOUT if timeout is None else timeout
    since = timezone.now() - timedelta(seconds=1)  # changes from here on are checked again at the end
    qs = Account.objects.exclude(jwt="")
    claims_qs = NodeClaim.objects.filter(node__in=nodes)
    if account_ids is not None:
        account_ids = list(account_ids)
        qs, claims_qs = qs.filter(pk__in=account_ids), claims_qs.filter(account_id__in=account_ids)
    held = {(a, n): jti for a, n, jti in claims_qs.values_list("account_id", "node_id", "jti")}
    pushed: dict[int, str] = {}
    gateway = None
    waiting = None  # (rows, waiter) of the batch on the wire
    for rows in _account_pages(qs, batch=batch):  # reading a page overlaps the batch on the wire
        gateway = gateway or gateway_get()
        done = (waiting[0], waiting[1]()) if waiting is not None else None
        waiting = (rows, _push_start(gateway, rows, nodes=nodes, timeout=timeout))
        if done is not None:  # recorded while the next batch is on the wire
            _replies_record(*done, nodes=nodes, held=held, report=report)
        report.accounts += len(rows)
        pushed.update((r[0], r[3]) for r in rows)
    if waiting is not None:
        _replies_record(waiting[0], waiting[1](), nodes=nodes, held=held, report=report)
    # Re-signed (or created) while the push ran: push the newer version now, not at the next reconcile.
    moved = [r for r in qs.filter(updated_at__gte=since).values_list(*_ROW_FIELDS) if pushed.get(r[0]) != r[3]]
    if moved:
        gateway = gateway or gateway_get()
        _replies_record(moved, _push_start(gateway, moved, nodes=nodes, timeout=timeout)(), nodes=nodes, held=held,
                        report=FleetPushReport())
    report.seconds = time.monotonic() - started
    return report


def account_push_latest(*, account_id: int) -> FleetPushReport | None:
    """Push one account if some healthy node does not hold its latest JWT yet (idempotent)."""
    account = Account.objects.filter(pk=account_id).values("jwt_jti").first()
    if account is None:
        return None
    nodes = healthy_nodes()
    held = NodeClaim.objects.filter(account_id=account_id, node__in=nodes, jti=account["jwt_jti"]).count()
    if nodes and held == len(nodes):
        return FleetPushReport(nodes=[n.name for n in nodes])
    return accounts_push(account_ids=[account_id])


def account_delete_push(*, public_keys: Sequence[str], timeout: float | None = None) -> list[dict[str, Any]]:
    """Send the operator-signed delete claim for accounts that no longer exist to every healthy node."""
    gone = sorted(set(public_keys) - set(Account.objects.filter(public_key__in=public_keys)
                                         .values_list("public_key", flat=True)))
    nodes = healthy_nodes()
    if not gone or not nodes:
        return []
    claim = op_services.account_delete_claim_issue(account_public_keys=gone)
    timeout = settings.NATS_PUSH_TIMEOUT if timeout is None else timeout
    replies = gateway_get().delete(claim, expect=len(nodes), timeout=timeout)
    for reply in replies:
        if not reply_ok(reply):
            log.warning("delete refused", extra={"accounts": gone, "node": reply_server(reply), "reply": reply})
    return replies


# ------------------------------------------------------------------------------------------------
# Reconcile: desired (the database) against held (what nodes acknowledged, and what LOOKUP shows)
# ------------------------------------------------------------------------------------------------


def fleet_reconcile() -> FleetPushReport:
    """Re-push every account whose latest JWT is not acknowledged by every healthy node."""
    nodes = healthy_nodes()
    behind = accounts_behind_ids(nodes)
    if not behind:
        return FleetPushReport(nodes=[n.name for n in nodes])
    # Past a few thousand ids a full push costs less than a query with that many parameters.
    report = accounts_push(account_ids=behind if len(behind) <= 5000 else None)
    log.info("reconciled", extra={"accounts": len(behind), "complete": report.complete, "nodes": report.nodes})
    return report


@dataclass
class VerifyReport:
    nodes: list[str] = field(default_factory=list)
    checked: int = 0
    stale: int = 0  # accounts where some node held another JWT (or none)
    deleted: list[str] = field(default_factory=list)  # accounts nodes held that no longer exist
    repaired: FleetPushReport | None = None


def fleet_verify(*, timeout: float | None = None, batch: int = 2000) -> VerifyReport:
    """Ask the nodes what they hold (LIST, then LOOKUP of every account) instead of trusting our records;
    re-push what differs and delete accounts that no longer exist."""
    nodes = healthy_nodes()
    report = VerifyReport(nodes=[n.name for n in nodes])
    if not nodes:
        return report
    timeout = settings.NATS_PUSH_TIMEOUT if timeout is None else timeout
    gateway = gateway_get()
    system = system_account_ensure().public_key
    listed = gateway.list_claims(expect=len(nodes), timeout=timeout)
    known = set(Account.objects.values_list("public_key", flat=True))
    extra = {pub for held in listed.values() for pub in held} - known - {system}
    if extra:
        account_delete_push(public_keys=sorted(extra), timeout=timeout)
        report.deleted = sorted(extra)
    stale: list[int] = []
    by_node = {n.name: n.pk for n in nodes}
    ids = list(Account.objects.exclude(jwt="").values_list("pk", flat=True))
    for start in range(0, len(ids), batch):
        rows = list(Account.objects.filter(pk__in=ids[start:start + batch])
                    .values_list("pk", "public_key", "jwt", "jwt_jti", "jwt_iat"))
        held = gateway.lookup([r[1] for r in rows], expect=len(nodes), timeout=timeout,
                              concurrency=settings.FLEET_PUSH_CONCURRENCY)
        confirmed: list[tuple[int, int, str, int]] = []
        for (pk, pub, jwt, jti, iat), jwts in zip(rows, held, strict=True):
            report.checked += 1
            missing_on = [name for name, pubs in listed.items() if name in by_node and pub not in pubs]
            if len(jwts) >= len(nodes) and all(j == jwt for j in jwts) and not missing_on:
                confirmed += [(pk, node_pk, jti, iat) for node_pk in by_node.values()]
            else:
                stale.append(pk)
        _claims_record(confirmed)
    if stale:
        NodeClaim.objects.filter(account_id__in=stale).delete()  # our records were wrong: forget them
        report.stale = len(stale)
        report.repaired = accounts_push(account_ids=stale if len(stale) <= 5000 else None)
        log.warning("verify found stale accounts", extra={"accounts": len(stale), "nodes": report.nodes})
    return report


def node_sync(*, node_id: int) -> FleetPushReport | None:
    """Full sync for a node that (re)became healthy: push every account, not only what our records say it
    lacks (it may have lost its store or missed a revocation), and delete accounts that no longer exist."""
    node = BrokerNode.objects.filter(pk=node_id).first()
    if node is None:
        return None
    report = accounts_push()
    gateway = gateway_get()
    nodes = healthy_nodes()
    listed = gateway.list_claims(expect=len(nodes), timeout=settings.NATS_PUSH_TIMEOUT)
    known = set(Account.objects.values_list("public_key", flat=True))
    extra = set().union(*listed.values()) - known - {system_account_ensure().public_key}
    if extra:
        account_delete_push(public_keys=sorted(extra))
    # Other nodes' syncs asked for meanwhile were folded into this one: they are synced too.
    BrokerNode.objects.filter(name__in=[n.name for n in nodes]).update(synced_at=timezone.now())
    log.info("node synced", extra={"node": node.name, "accounts": report.accounts, "complete": report.complete,
                                   "seconds": round(report.seconds, 3)})
    return report


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
