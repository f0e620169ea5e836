"""Pushing every account to every node until each holds the latest: fleet pushes and what each node
acknowledged, deletions, the reconciler, verification against what nodes really hold, and a node's full sync."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts_service.models import Account
from accounts_service.services import system_account_ensure
from broker_gateway.gateway import (
    Gateway,
    GatewayUnavailable,
    parse_reply,
    reply_ok,
    reply_server,
    update_acknowledged_by,
)
from broker_gateway.models import BrokerNode, NodeClaim
from broker_gateway.selectors import accounts_behind_ids, healthy_nodes
from broker_gateway.services import gateway_get, gateway_open
from core.db import Merge, rows_upsert
from core.errors import Unavailable
from core.progress import Progress
from operators import services as op_services

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------
# One given server (the CLI's `account push --url`, and tests against a single server)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    account: str
    replies: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return bool(self.replies) and all(reply_ok(r) for r in self.replies)


def account_jwt_send(*, account: Account, url: str, timeout: float | None = None,
                     expect: int | None = None) -> PushResult:
    """Send the account's latest JWT (read from the database now) to the server at ``url``, like ``nsc push -u``.

    It returns once ``expect`` servers answered, or at ``timeout``. Without ``expect``, the servers expected are
    the one at ``url`` and those it has routes to (every server of a cluster answers a claims update).
    """
    account.refresh_from_db(fields=["jwt"])
    (replies,) = _one_server(url, "natsctl-push", timeout, expect,
                             lambda gateway, want, wait: gateway.push([account.jwt], expect=want, timeout=wait))
    return PushResult(account=account.public_key, replies=replies)


def _one_server(url: str, name: str, timeout: float | None, expect: int | None, send):
    """``send(gateway, expect, timeout)`` over a connection of its own to the server at ``url``: it returns once
    ``expect`` servers answered (without it, the one at ``url`` and those it routes to), or at ``timeout``."""
    timeout = settings.NATS_PUSH_TIMEOUT if timeout is None else timeout
    try:
        gateway = gateway_open([url], name=name)
    except GatewayUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    try:
        return send(gateway, expect or gateway.cluster_size(timeout=timeout) or 10_000, timeout)
    except GatewayUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    finally:
        gateway.close()


def account_delete_send(*, public_keys: Sequence[str], url: str, timeout: float | None = None,
                        expect: int | None = None) -> list[dict[str, Any]]:
    """Send the operator-signed delete claim for ``public_keys`` to the server at ``url`` (and the servers of its
    cluster), whatever the fleet records say: for a server that is not a recorded node. Only accounts that no
    longer exist here are deleted. Returns each server's reply."""
    gone = sorted(set(public_keys) - set(Account.objects.filter(public_key__in=public_keys)
                                         .values_list("public_key", flat=True)))
    if not gone:
        return []
    claim = op_services.account_delete_claim_issue(account_public_keys=gone)
    return _one_server(url, "natsctl-delete", timeout, expect,
                       lambda gateway, want, wait: gateway.delete(claim, expect=want, timeout=wait))


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
                    nodes: Sequence[BrokerNode], held: dict[tuple[int, int], str], report: FleetPushReport,
                    quiet: bool = False) -> None:
    """Record what each node acknowledged for (id, public key, jwt, jti, iat) rows. ``held`` is what our
    records say each node holds; only what changed is written. Refusals go into the report, and are also
    logged unless ``quiet``."""
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
                    if not quiet:
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
                  batch: int = 2000, quiet: bool = False, progress: Progress | None = None) -> FleetPushReport:
    """Push the latest JWT of the given accounts (all when None) to every healthy node, most recently
    changed first, and record per node what it acknowledged (refusals are logged unless ``quiet``).
    ``progress(done, total)`` hears of every batch recorded (a command's progress bar).

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
    total = qs.count() if progress is not None else 0
    pushed: dict[int, str] = {}
    gateway = None
    waiting = None  # (rows, waiter) of the batch on the wire
    for rows in _account_pages(qs, batch=batch):  # reading a page overlaps the batch on the wire
        gateway = gateway or gateway_get()
        done = (waiting[0], waiting[1]()) if waiting is not None else None
        waiting = (rows, _push_start(gateway, rows, nodes=nodes, timeout=timeout))
        if done is not None:  # recorded while the next batch is on the wire
            _replies_record(*done, nodes=nodes, held=held, report=report, quiet=quiet)
            if progress is not None:
                progress(report.accounts, total)
        report.accounts += len(rows)
        pushed.update((r[0], r[3]) for r in rows)
    if waiting is not None:
        _replies_record(waiting[0], waiting[1](), nodes=nodes, held=held, report=report, quiet=quiet)
        if progress is not None:
            progress(report.accounts, max(total, report.accounts))
    # Re-signed (or created) while the push ran: push the newer version now, not at the next reconcile.
    moved = [r for r in qs.filter(updated_at__gte=since).values_list(*_ROW_FIELDS) if pushed.get(r[0]) != r[3]]
    if moved:
        gateway = gateway or gateway_get()
        _replies_record(moved, _push_start(gateway, moved, nodes=nodes, timeout=timeout)(), nodes=nodes, held=held,
                        report=FleetPushReport(), quiet=quiet)
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


def fleet_reconcile(*, changed_since: datetime | None = None, quiet: bool = False,
                    progress: Progress | None = None) -> FleetPushReport:
    """Re-push every account whose latest JWT is not acknowledged by every healthy node; with ``changed_since``,
    only those changed from then on (a full sync under way pushes the others). Refusals are in the report, and
    logged unless ``quiet``."""
    nodes = healthy_nodes()
    behind = accounts_behind_ids(nodes, changed_since=changed_since)
    if not behind:
        return FleetPushReport(nodes=[n.name for n in nodes])
    # Past a few thousand ids a full push costs less than a query with that many parameters.
    report = accounts_push(account_ids=behind if len(behind) <= 5000 else None, quiet=quiet, progress=progress)
    (log.debug if quiet else log.info)("reconciled", extra={"accounts": len(behind), "complete": report.complete,
                                                             "nodes": report.nodes})
    return report


@dataclass
class VerifyReport:
    nodes: list[str] = field(default_factory=list)
    checked: int = 0
    stale: int = 0  # accounts where some node held another JWT (or none)
    deleted: list[str] = field(default_factory=list)  # accounts nodes held that no longer exist
    repaired: FleetPushReport | None = None


def fleet_verify(*, timeout: float | None = None, batch: int = 2000, progress: Progress | None = None) -> VerifyReport:
    """Ask the nodes what they hold (LIST, then LOOKUP of every account) instead of trusting our records;
    re-push what differs and delete accounts that no longer exist. ``progress(done, total)``: accounts checked."""
    nodes = healthy_nodes()
    report = VerifyReport(nodes=[n.name for n in nodes])
    if not nodes:
        return report
    timeout = settings.NATS_PUSH_TIMEOUT if timeout is None else timeout
    gateway = gateway_get()
    listed, report.deleted = _unknown_accounts_delete(gateway, nodes=nodes, timeout=timeout)
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
        if progress is not None:
            progress(report.checked, len(ids))
    if stale:
        NodeClaim.objects.filter(account_id__in=stale).delete()  # our records were wrong: forget them
        report.stale = len(stale)
        report.repaired = accounts_push(account_ids=stale if len(stale) <= 5000 else None)
        log.warning("verify found stale accounts", extra={"accounts": len(stale), "nodes": report.nodes})
    return report


def fleet_unknown_delete(*, timeout: float | None = None) -> list[str] | None:
    """LIST what the healthy nodes hold and delete the accounts that no longer exist here, as a full sync and
    verify do. Returns the accounts deleted; None when no node is healthy (nothing was asked)."""
    nodes = healthy_nodes()
    if not nodes:
        return None
    timeout = settings.NATS_PUSH_TIMEOUT if timeout is None else timeout
    return _unknown_accounts_delete(gateway_get(), nodes=nodes, timeout=timeout)[1]


LIST_TIMEOUT = 10.0  # seconds: see _unknown_accounts_delete


def _unknown_accounts_delete(gateway: Gateway, *, nodes: Sequence[BrokerNode],
                             timeout: float) -> tuple[dict[str, set[str]], list[str]]:
    """Ask the nodes which accounts they hold (LIST) and delete those that no longer exist here (never the
    system account). Returns what each node listed, and the accounts deleted.

    LIST gets at least LIST_TIMEOUT: nodes answer it by reading every JWT file they hold, inline in the connection
    that delivered it (its other claims requests wait meanwhile), which took 2-7 s at 10,000 accounts on six nodes
    sharing two CPUs (bench/supercluster.py). Timed out at the 2 s push timeout, no reply came, the connection was
    given up as dead (cancelling the other threads' requests on it) and the LIST asked again: a storm that kept a
    supercluster's nodes from acknowledging anything for minutes."""
    listed = gateway.list_claims(expect=len(nodes), timeout=max(timeout, LIST_TIMEOUT))
    known = set(Account.objects.values_list("public_key", flat=True))
    extra = sorted(set().union(*listed.values()) - known - {system_account_ensure().public_key})
    if extra:
        account_delete_push(public_keys=extra, timeout=timeout)
    return listed, extra


def node_claims_primed(*, node_id: int, rows: Sequence[tuple[int, str, str, str, int]]) -> int:
    """Record what a node's store was made to hold before it started (``rows``: id, public key, JWT, jti, iat
    of every account, as written into its resolver directory): it serves exactly that from its first second, so
    its records need not wait for the full sync's acknowledgements. An account changed after the snapshot keeps
    the older jti here and is pushed by the reconciler; the full sync still runs."""
    return _claims_record((pk, node_id, jti, iat) for pk, _pub, _jwt, jti, iat in rows)


def node_sync(*, node_id: int) -> FleetPushReport | None:
    """Full sync for a node that (re)became healthy: push every account, not only what our records say it
    lacks (it may have lost its store or missed a revocation), and delete accounts that no longer exist."""
    node = BrokerNode.objects.filter(pk=node_id).first()
    if node is None:
        return None
    report = accounts_push()
    nodes = healthy_nodes()
    _unknown_accounts_delete(gateway_get(), nodes=nodes, timeout=settings.NATS_PUSH_TIMEOUT)
    # Other nodes' syncs asked for meanwhile were folded into this one: they are synced too.
    BrokerNode.objects.filter(name__in=[n.name for n in nodes]).update(synced_at=timezone.now())
    log.info("node synced", extra={"node": node.name, "accounts": report.accounts, "complete": report.complete,
                                   "seconds": round(report.seconds, 3)})
    return report
