"""Web pages of the fleet: staff (nodes, out-of-sync accounts, tenants), tenant-facing (propagation, connect)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps

import redis
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts_service.selectors import account_for_user_get, user_get
from accounts_service.services import creds_filename
from accounts_service.tenants import (
    connect_accounts,
    connect_users,
    platform_team,
    tenant_accounts,
    tenant_get,
    tenant_list,
    tenant_members,
)
from billing.selectors import leafnodes_current
from broker_gateway.leafnodes import LEAF_CONFIG_FILENAME, user_leafnode_config
from broker_gateway.models import BrokerNode
from broker_gateway.nodes import node_add, node_desired_set, node_remove
from broker_gateway.selectors import (
    account_propagation,
    accounts_out_of_sync,
    accounts_out_of_sync_count,
    accounts_propagation,
    client_urls_public,
    fleet_overview,
    healthy_nodes,
    node_get,
    running_node_urls,
    teams_accounts_behind,
)
from core.errors import ApplicationError, NotFound

log = logging.getLogger(__name__)

# The supervisor confirms health every 5 s, so polling faster shows nothing new.
REFRESH_SECONDS = 5
# Each node's /varz gets this long; the probes run at once, so a dead node costs the page at most this.
VARZ_TIMEOUT = 0.5
PAGE_SIZE = 50


def _login_required_fragment(view: Callable) -> Callable:
    """For fragments a page polls: answer 403 instead of redirecting to a login page, which the poller
    would otherwise paste into the page when the session ends."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _staff_fragment(view: Callable) -> Callable:
    """Like ``_login_required_fragment``, for staff."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _from_iat(iat: int | None) -> datetime | None:
    """A JWT ``iat`` (Unix seconds) as an aware datetime for the templates' date filters."""
    return datetime.fromtimestamp(iat, tz=UTC) if iat else None


def _ago(when: datetime | None) -> str | None:
    """Short relative time: the supervisor confirms health every few seconds, so seconds matter here."""
    if when is None:
        return None
    seconds = max(0, int((timezone.now() - when).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{timesince(when)} ago"


# ------------------------------------------------------------------------------------------------
# Staff: the fleet
# ------------------------------------------------------------------------------------------------


class NodeAddForm(forms.Form):
    name = forms.CharField(max_length=64, help_text="Letters, digits, '-' or '_'. Ports are allocated for it.",
                           widget=forms.TextInput(attrs={"placeholder": "node-4", "autocomplete": "off"}))


def _nodes_context() -> dict:
    nodes = fleet_overview(connections=True, timeout=VARZ_TIMEOUT)
    for n in nodes:  # the selector's rows are JSON-ready; the page says "4 s ago"
        n["last_healthy_ago"] = _ago(parse_datetime(n["last_healthy_at"] or ""))
    running = [n for n in nodes if n["desired_state"] == BrokerNode.Desired.RUNNING]
    return {"nodes": nodes, "running_total": len(running),
            "healthy_total": sum(n["state"] == BrokerNode.Observed.HEALTHY for n in running),
            "behind_total": accounts_out_of_sync_count(), "refresh_seconds": REFRESH_SECONDS}


# Pages that ask every node's /varz run outside a transaction: with ATOMIC_REQUESTS on SQLite's IMMEDIATE
# mode a request transaction holds the write lock, and the supervisor must not wait on our probes.
@staff_member_required
@require_http_methods(["GET", "POST"])
@transaction.non_atomic_requests
def fleet_nodes(request: HttpRequest) -> HttpResponse:
    """Every node with its state and live connections; POST adds a node."""
    form = NodeAddForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            node = node_add(name=form.cleaned_data["name"])
        except ApplicationError as exc:
            form.add_error("name", exc.message)
        else:
            log.info("node added from the staff page", extra={"node": node.name, "actor": request.user.pk})
            messages.success(request, f"Node {node.name} added (client port {node.client_port}); "
                                      "the supervisor starts it within seconds.")
            return redirect("fleet-nodes")
    return render(request, "fleet/nodes.html", {**_nodes_context(), "form": form},
                  status=400 if form.errors else 200)


@_staff_fragment
@require_GET
@transaction.non_atomic_requests
def fleet_nodes_fragment(request: HttpRequest) -> HttpResponse:
    """The node table alone, for the fleet page's poller."""
    return render(request, "fleet/_nodes.html", _nodes_context())


@staff_member_required
@require_POST
def fleet_node_desired(request: HttpRequest, name: str, desired: str) -> HttpResponse:
    """Start or stop a node (the supervisor acts on the desired state)."""
    node = node_desired_set(node=node_get(name=name), desired=desired)
    log.info("node desired state set from the staff page", extra={"node": node.name, "desired": desired,
                                                                   "actor": request.user.pk})
    verb = "start" if desired == BrokerNode.Desired.RUNNING else "stop"
    messages.success(request, f"Node {node.name} will {verb} within seconds.")
    return redirect("fleet-nodes")


@staff_member_required
@require_http_methods(["GET", "POST"])
def fleet_node_remove(request: HttpRequest, name: str) -> HttpResponse:
    """GET asks for confirmation; POST forgets the node (its process is put in lame duck mode)."""
    node = node_get(name=name)
    if request.method == "POST":
        node_remove(node=node)
        log.info("node removed from the staff page", extra={"node": name, "actor": request.user.pk})
        messages.success(request, f"Node {name} removed; its clients reconnect to the other nodes.")
        return redirect("fleet-nodes")
    others = len(running_node_urls()) - (node.desired_state == BrokerNode.Desired.RUNNING)
    return render(request, "fleet/node_remove.html", {"node": node, "others": others})


@staff_member_required
@require_GET
def fleet_out_of_sync(request: HttpRequest) -> HttpResponse:
    """The accounts some healthy node does not hold at their latest version, longest-waiting first."""
    accounts, behind_total = accounts_out_of_sync()
    behind = [{"account": a, "status": s} for a, s in zip(accounts, accounts_propagation(accounts=accounts),
                                                             strict=True)]
    return render(request, "staff/out_of_sync.html", {"behind": behind, "behind_total": behind_total,
                                                      "healthy_total": len(healthy_nodes())})


# ------------------------------------------------------------------------------------------------
# Staff: tenants
# ------------------------------------------------------------------------------------------------


@staff_member_required
@require_GET
def staff_tenants(request: HttpRequest) -> HttpResponse:
    """Every tenant team with its members, owners, accounts, users and accounts behind; searchable."""
    q = request.GET.get("q", "").strip()[:200]
    page = Paginator(tenant_list(q=q), PAGE_SIZE).get_page(request.GET.get("page"))
    teams = list(page.object_list)
    behind = teams_accounts_behind(teams=teams)
    rows = [{"team": t, "owners": [m.user for m in t.owner_memberships], "behind": behind.get(t.pk, 0)}
            for t in teams]
    return render(request, "staff/tenants.html", {"rows": rows, "page": page, "q": q, "platform": platform_team()})


@staff_member_required
@require_GET
def staff_tenant(request: HttpRequest, slug: str) -> HttpResponse:
    """One team: its members and its accounts with propagation."""
    team = tenant_get(slug=slug)
    page = Paginator(tenant_accounts(team=team), PAGE_SIZE).get_page(request.GET.get("page"))
    accounts = list(page.object_list)
    rows = [{"account": a, "status": s} for a, s in zip(accounts, accounts_propagation(accounts=accounts),
                                                           strict=True)]
    return render(request, "staff/tenant.html", {"team": team, "members": tenant_members(team=team), "rows": rows,
                                                 "page": page})


# ------------------------------------------------------------------------------------------------
# Tenant-facing: propagation fragment and the connect panel
# ------------------------------------------------------------------------------------------------


@_login_required_fragment
@require_GET
def account_propagation_fragment(request: HttpRequest, account_pk: str) -> HttpResponse:
    """Per node, the account's desired version against the one held: embedded (and polled) by the account page."""
    try:
        account = account_for_user_get(user=request.user, public_key=account_pk)
    except NotFound:
        return render(request, "broker/propagation_missing.html", status=404)
    status = account_propagation(account=account)
    for r in status["nodes"]:
        r["held_issued"] = _from_iat(r["held_iat"])
    pending = [r["node"] for r in status["nodes"] if r["healthy"] and not r["in_sync"]]
    return render(request, "broker/propagation.html", {"account": account, "status": status, "pending": pending,
                                                       "desired_ago": _ago(_from_iat(status["desired"]["iat"])),
                                                       "leafnodes": leafnodes_current(
                                                           account_public_key=account.public_key)})


@login_required
@require_POST
def user_leafnode(request: HttpRequest, account_pk: str, upk: str) -> HttpResponse:
    """The account page's "Download leaf.conf": the same config as the API's (audited, never cached); a refusal
    goes back to the page as a message."""
    account = account_for_user_get(user=request.user, public_key=account_pk)
    user = user_get(account=account, public_key=upk)
    try:
        issued = user_leafnode_config(user=user, actor=request.user)
    except NotFound:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:account", pk=account_pk)
    response = HttpResponse(issued.config, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{LEAF_CONFIG_FILENAME}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def connect(request: HttpRequest) -> HttpResponse:
    """The NATS URLs and copy-paste client examples; with ``?account=<pk>`` (one's own), for that account."""
    account, users = None, []
    if request.GET.get("account"):
        try:
            account = account_for_user_get(user=request.user, public_key=request.GET["account"])
        except NotFound:
            return render(request, "broker/not_found.html", {"what": "account"}, status=404)
        users = connect_users(account=account)
    servers = client_urls_public()
    example_user = users[0] if users else None
    return render(request, "broker/connect.html", {
        "servers": servers, "account": account, "users": users, "example_user": example_user,
        "accounts": connect_accounts(user=request.user)[:PAGE_SIZE],
        # Names the examples use: shell- and file-safe, so they paste as they are.
        "servers_arg": ",".join(servers) or "nats://HOST:4222",
        "creds_file": creds_filename(example_user.name) if example_user else "USER.creds",
        "context_name": slugify(account.name) if account and slugify(account.name) else "natsctl",
    })


# ------------------------------------------------------------------------------------------------
# Probes
# ------------------------------------------------------------------------------------------------


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers, Redis (the Celery broker) answers, and at least one node is healthy."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the message says which
        checks["database"] = f"error: {exc}"
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    try:
        running = BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).count()
        healthy = len(healthy_nodes())
        checks["fleet"] = f"{healthy}/{running} nodes healthy" if healthy else f"error: 0/{running} nodes healthy"
    except Exception as exc:
        checks["fleet"] = f"error: {exc}"
    ready = all(not v.startswith("error") for v in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
