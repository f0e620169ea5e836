"""Staff pages of the fleet: nodes by region (add, stop, start, remove, drain and resume regions), accounts out of
sync, and the tenants."""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods

from accounts_service.tenants import platform_team, tenant_accounts, tenant_get, tenant_list, tenant_members
from broker_gateway.models import BrokerNode
from broker_gateway.nodes import node_add, node_desired_set, node_remove, region_add, region_desired_set, regions_list
from broker_gateway.selectors import (
    accounts_out_of_sync,
    accounts_out_of_sync_count,
    accounts_propagation,
    fleet_overview,
    healthy_nodes,
    node_get,
    regions_overview,
    running_node_urls,
    teams_accounts_behind,
)
from broker_gateway.views import PAGE_SIZE, REFRESH_SECONDS, VARZ_TIMEOUT, _ago, _staff_fragment
from core.errors import ApplicationError, NotFound

log = logging.getLogger("broker_gateway.views")

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
