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
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import slugify
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts_service.models import NatsUser
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
from broker_gateway.connection_test import user_connection_test, user_example_subjects
from broker_gateway.diagnose import user_diagnose
from broker_gateway.examples import example_snippets, example_subjects
from broker_gateway.leafnodes import LEAF_CONFIG_FILENAME, user_leafnode_config
from broker_gateway.models import BrokerNode
from broker_gateway.nodes import node_add, node_desired_set, node_remove, region_add, region_desired_set, regions_list
from broker_gateway.selectors import (
    account_propagation,
    accounts_out_of_sync,
    accounts_out_of_sync_count,
    accounts_propagation,
    connect_plan,
    fleet_overview,
    healthy_nodes,
    node_get,
    regions_overview,
    running_node_urls,
    teams_accounts_behind,
)
from broker_gateway.services import home_region_set
from core.errors import ApplicationError, NotFound
from core.http import status_for

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
                           widget=forms.TextInput(attrs={"placeholder": "us-east-4", "autocomplete": "off"}))
    region = forms.CharField(max_length=32, required=False,
                             help_text="An existing region, or a new one (lowercase letters, digits, '-'). "
                                       "Empty: the fleet's first region.",
                             widget=forms.TextInput(attrs={"placeholder": "us-east", "autocomplete": "off",
                                                           "list": "fleet-regions"}))


class RegionAddForm(forms.Form):
    region = forms.CharField(max_length=32, help_text="Lowercase letters, digits or '-', e.g. ap-south.",
                             widget=forms.TextInput(attrs={"placeholder": "ap-south", "autocomplete": "off"}))
    nodes = forms.IntegerField(min_value=1, max_value=64, initial=3, help_text="Nodes named REGION-1, REGION-2, ...")


def _name_suggested() -> str:
    """A name for the add box that no node has: the first region's next free REGION-N."""
    names = set(BrokerNode.objects.values_list("name", flat=True))
    region = (regions_list() or [settings.FLEET_REGION])[0]
    index = 1
    while f"{region}-{index}" in names:
        index += 1
    return f"{region}-{index}"


def _nodes_context() -> dict:
    nodes = fleet_overview(connections=True, gateways=True, timeout=VARZ_TIMEOUT)
    for n in nodes:  # the selector's rows are JSON-ready; the page says "4 s ago"
        n["last_healthy_ago"] = _ago(parse_datetime(n["last_healthy_at"] or ""))
    running = [n for n in nodes if n["desired_state"] == BrokerNode.Desired.RUNNING]
    regions: dict[str, dict] = {}
    for row in regions_overview():
        regions[row["region"]] = {**row, "rows": [], "links_up": 0, "links_total": 0}
    for n in nodes:
        region = regions[n["region"]]
        region["rows"].append(n)
        if n["desired_state"] == BrokerNode.Desired.RUNNING:
            region["links_total"] += len(n["gateways"])
            region["links_up"] += sum(link["state"] == "up" for link in n["gateways"])
    return {"nodes": nodes, "regions": list(regions.values()), "running_total": len(running),
            "nodes_total": len(nodes), "stopped_total": len(nodes) - len(running),
            "suggested_name": _name_suggested(), "suggested_region": next(iter(regions), ""),
            "healthy_total": sum(n["state"] == BrokerNode.Observed.HEALTHY for n in running),
            "behind_total": accounts_out_of_sync_count(), "refresh_seconds": REFRESH_SECONDS}


# Pages that ask every node's /varz run outside a transaction: with ATOMIC_REQUESTS on SQLite's IMMEDIATE
# mode a request transaction holds the write lock, and the supervisor must not wait on our probes.
@staff_member_required
@require_http_methods(["GET", "POST"])
@transaction.non_atomic_requests
def fleet_nodes(request: HttpRequest) -> HttpResponse:
    """Every node by region with its state, live connections and gateway links; POST adds a node or a region."""
    adding_region = request.method == "POST" and "nodes" in request.POST
    form = NodeAddForm(request.POST if request.method == "POST" and not adding_region else None)
    region_form = RegionAddForm(request.POST if adding_region else None)
    if form.is_bound and form.is_valid():
        try:
            node = node_add(name=form.cleaned_data["name"], region=form.cleaned_data["region"] or None)
        except ApplicationError as exc:
            form.add_error("region" if exc.extra.get("field") == "region" else "name", exc.message)
        else:
            log.info("node added from the staff page", extra={"node": node.name, "actor": request.user.pk})
            messages.success(request, f"Node {node.name} added to {node.region} (client port {node.client_port}); "
                                      "the supervisor starts it within seconds.")
            return redirect("fleet-nodes")
    if region_form.is_bound and region_form.is_valid():
        try:
            added = region_add(region=region_form.cleaned_data["region"], nodes=region_form.cleaned_data["nodes"])
        except ApplicationError as exc:
            region_form.add_error("region", exc.message)
        else:
            log.info("region grown from the staff page", extra={"region": added[0].region,
                                                                 "nodes": [n.name for n in added],
                                                                 "actor": request.user.pk})
            messages.success(request, f"Region {added[0].region}: added {', '.join(n.name for n in added)}; the "
                                      "supervisor starts them and they join the other regions by gateways.")
            return redirect("fleet-nodes")
    context = _nodes_context()
    form.fields["name"].widget.attrs["placeholder"] = context["suggested_name"]  # a name no node has
    form.fields["region"].widget.attrs["placeholder"] = context["suggested_region"] or settings.FLEET_REGION
    return render(request, "fleet/nodes.html", {**context, "form": form, "region_form": region_form},
                  status=400 if form.errors or region_form.errors else 200)


@staff_member_required
@require_http_methods(["GET", "POST"])
def fleet_region_desired(request: HttpRequest, region: str, desired: str) -> HttpResponse:
    """GET asks for confirmation; POST drains a region (every node through lame duck mode) or brings it back."""
    nodes = list(BrokerNode.objects.filter(region=region).order_by("name"))
    if not nodes:
        raise NotFound(f"no region {region}", code="region_not_found")
    drain = desired == BrokerNode.Desired.STOPPED
    if request.method == "POST":
        try:
            region_desired_set(region=region, desired=desired)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            log.info("region desired state set from the staff page", extra={"region": region, "desired": desired,
                                                                             "actor": request.user.pk})
            messages.success(request, f"Region {region} is draining: its clients move to the other regions."
                             if drain else f"Region {region}: its nodes will start within seconds.")
        return redirect("fleet-nodes")
    others = BrokerNode.objects.exclude(region=region).filter(desired_state=BrokerNode.Desired.RUNNING).count()
    return render(request, "fleet/region_confirm.html", {"region": region, "nodes": nodes, "drain": drain,
                                                         "others": others})


@_staff_fragment
@require_GET
@transaction.non_atomic_requests
def fleet_nodes_fragment(request: HttpRequest) -> HttpResponse:
    """The node table alone, for the fleet page's poller."""
    return render(request, "fleet/_nodes.html", _nodes_context())


@staff_member_required
@require_http_methods(["GET", "POST"])
def fleet_node_desired(request: HttpRequest, name: str, desired: str) -> HttpResponse:
    """Start a node (POST), or stop one: GET asks for confirmation (its clients are moved away), POST acts. The
    supervisor acts on the desired state."""
    node = node_get(name=name)
    stopping = desired == BrokerNode.Desired.STOPPED
    if request.method == "GET":
        if not stopping:
            return HttpResponse(status=405, headers={"Allow": "POST"})
        others = len(running_node_urls()) - (node.desired_state == BrokerNode.Desired.RUNNING)
        return render(request, "fleet/node_stop.html", {"node": node, "others": others})
    node = node_desired_set(node=node, desired=desired)
    log.info("node desired state set from the staff page", extra={"node": node.name, "desired": desired,
                                                                   "actor": request.user.pk})
    messages.success(request, f"Node {node.name} will {'stop' if stopping else 'start'} within seconds.")
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


_CHOSEN_BY = {"query": "you asked for it", "home_region": "the account's home region",
              "connections": "where the account's clients are connected now", "default": "the fleet's first region"}


class DiagnoseForm(forms.Form):
    """Paste a .creds or pick a user; the pasted creds are never rendered back."""

    creds = forms.CharField(required=False, max_length=16 * 1024, strip=False,
                            widget=forms.Textarea(attrs={"rows": 8, "autocomplete": "off", "spellcheck": "false"}),
                            help_text="the .creds text: its seed is only checked against the JWT, never stored")
    pick = forms.ChoiceField(required=False, label="or one of your users")
    subject = forms.CharField(required=False, max_length=512, help_text="optional: may the user publish/subscribe it?")
    action = forms.ChoiceField(required=False, choices=[("", "—"), ("pub", "publish"), ("sub", "subscribe")])

    def __init__(self, *args, users=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pick"].choices = [("", "—")] + [
            (f"{u.account.public_key}:{u.public_key}", f"{u.name} ({u.account.name})") for u in users]


@login_required
@require_http_methods(["GET", "POST"])
def diagnose(request: HttpRequest) -> HttpResponse:
    """"Why can't my client connect?": the checklist of ``broker_gateway.diagnose``, first failing cause on top."""
    users = list(NatsUser.objects.for_user(request.user).select_related("account").order_by("account__name", "name")
                 [:500])
    result, error, status = None, None, 200
    form = DiagnoseForm(request.POST or None, users=users, initial={"pick": request.GET.get("user", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        account_pk, _, user_pk = (data["pick"] or "").partition(":")
        try:
            result = user_diagnose(actor=request.user, creds=data["creds"] or None, account=account_pk or None,
                                   user=user_pk or None, subject=data["subject"] or None,
                                   action=data["action"] or None)
        except ApplicationError as exc:
            error, status = exc.message, status_for(exc)
    elif request.method == "POST":
        status = 400
    if form.is_bound:  # never render the pasted creds back: the page must not hold the seed
        form.data = form.data.copy()
        form.data["creds"] = ""
    response = render(request, "broker/diagnose.html", {"form": form, "result": result, "error": error}, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def connect(request: HttpRequest) -> HttpResponse:
    """The NATS URLs (the closest region's first) and copy-paste client examples built from one user's own
    permissions; with ``?account=<pk>`` (one's own), for that account, ``?user=<pk>`` picks the user (else its
    first), ``?region=`` puts a region first. A POST runs the connection test as that user."""
    account, users = None, []
    if request.GET.get("account"):
        try:
            account = account_for_user_get(user=request.user, public_key=request.GET["account"])
        except NotFound:
            return render(request, "broker/not_found.html", {"what": "account"}, status=404)
        users = connect_users(account=account)
    try:
        plan = connect_plan(account=account, region=request.GET.get("region") or None)
    except NotFound as exc:
        messages.error(request, exc.message)
        plan = connect_plan(account=account)
    servers = plan["servers"]
    wanted = request.POST.get("user") or request.GET.get("user")
    example_user = next((u for u in users if u.public_key == wanted), None)
    if example_user is None and wanted and account is not None:
        example_user = user_get(account=account, public_key=wanted)  # past the list's first page; else a 404
    example_user = example_user or (users[0] if users else None)
    subjects = user_example_subjects(user=example_user) if example_user else example_subjects()
    creds_file = creds_filename(example_user.name) if example_user else "USER.creds"
    context_name = slugify(account.name) if account and slugify(account.name) else "natsctl"
    test_result = None
    if request.method == "POST" and example_user is not None:
        try:
            test_result = user_connection_test(user=example_user, actor=request.user)
        except NotFound:
            raise
        except ApplicationError as exc:
            messages.error(request, exc.message)
    return render(request, "broker/connect.html", {
        "servers": servers, "account": account, "users": users, "example_user": example_user, "plan": plan,
        "subjects": subjects, "test_result": test_result,
        "snippets": example_snippets(servers=servers, creds_file=creds_file, context=context_name,
                                     subjects=subjects),
        "chosen_by": _CHOSEN_BY.get(plan["chosen_by"], ""),
        "all_regions": regions_list(),
        "accounts": connect_accounts(user=request.user)[:PAGE_SIZE],
        # Names the examples use: shell- and file-safe, so they paste as they are.
        "servers_arg": ",".join(servers) or "nats://HOST:4222",
        "creds_file": creds_file,
        "context_name": context_name,
    })


@login_required
@require_POST
def account_home_region(request: HttpRequest, account_pk: str) -> HttpResponse:
    """Set (or clear) the account's home region from the connect page."""
    try:
        account = account_for_user_get(user=request.user, public_key=account_pk)
    except NotFound:
        return render(request, "broker/not_found.html", {"what": "account"}, status=404)
    try:
        account = home_region_set(account=account, actor=request.user, region=request.POST.get("region", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{account.name}: home region {account.home_region}." if account.home_region
                         else f"{account.name}: no home region; clients go where the account's clients are.")
    return redirect(f"{reverse('connect')}?account={account.public_key}")


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
