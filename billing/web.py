"""Billing's pages in the dashboard: an account's usage charts and quota, its plan, and the team's invoices."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from accounts_service import services
from accounts_service.web.helpers import attempt, is_owner, request_account, request_team
from billing import invoices as invoice_docs
from billing.models import Invoice, Plan
from billing.selectors import (
    WINDOWS,
    account_usage,
    plan_change_rows,
    plan_terms_key,
    quota_notice_latest,
    usage_series,
    usage_totals,
)

CHART_HEIGHT = 120
CHARTS = (("24h", "Last 24 hours, hourly"), ("7d", "Last 7 days, hourly"), ("30d", "Last 30 days, daily"))
TOTALS = (("1h", "Last hour"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"))


def chart_bars(series: list[dict[str, Any]], *, step_label: str) -> dict[str, Any]:
    """An SVG bar chart of bytes per bucket (sent below, received stacked on top), scaled to the tallest."""
    peak = max((b["sent_bytes"] + b["received_bytes"] for b in series), default=0) or 1
    bars = []
    for i, bucket in enumerate(series):
        sent = bucket["sent_bytes"] * CHART_HEIGHT / peak
        received = bucket["received_bytes"] * CHART_HEIGHT / peak
        bars.append({"x": i * 10, "sent_y": CHART_HEIGHT - sent, "sent_h": sent,
                     "received_y": CHART_HEIGHT - sent - received, "received_h": received,
                     "title": f"{bucket['start']:{step_label}} UTC: sent {bucket['sent_msgs']:,} msgs / "
                              f"{bucket['sent_bytes']:,} B, received {bucket['received_msgs']:,} msgs / "
                              f"{bucket['received_bytes']:,} B"})
    first = f"{series[0]['start']:{step_label}}" if series else ""
    last = f"{series[-1]['start']:{step_label}}" if series else ""
    return {"width": len(series) * 10, "height": CHART_HEIGHT, "bars": bars, "peak": peak, "half": peak // 2,
            "first": first, "last": last,
            "total_bytes": sum(b["sent_bytes"] + b["received_bytes"] for b in series)}


@login_required
def account_usage_page(request: HttpRequest, pk: str) -> HttpResponse:
    account = request_account(request, pk)
    now = timezone.now()
    document = account_usage(account_public_key=account.public_key, plan_name=account.plan, window="30d", now=now,
                             team_id=account.team_id)
    charts = [{"key": key, "title": title,
               "chart": chart_bars(usage_series(account_public_key=account.public_key, chart=key, now=now),
                                   step_label="%Y-%m-%d" if key == "30d" else "%Y-%m-%d %H:00")}
              for key, title in CHARTS]
    totals = []
    for key, title in TOTALS:
        t = usage_totals(account_public_key=account.public_key, start=now - WINDOWS[key], end=now)
        totals.append({"key": key, "title": title, "sent": {"msgs": t["sent_msgs"], "bytes": t["sent_bytes"]},
                       "received": {"msgs": t["received_msgs"], "bytes": t["received_bytes"]}})
    quota = document["quota"]
    percent = (quota["used_bytes"] * 100 / quota["data_bytes"]) if quota["data_bytes"] > 0 else None
    return render(request, "billing/usage.html", {
        "account": account, "tab": "usage", "document": document, "charts": charts, "percent": percent,
        "totals": totals,
        "notice": quota_notice_latest(account_public_key=account.public_key, now=now),
    })


def _plan_rows(account) -> list[dict[str, Any]]:
    held = dict(account.team.accounts.values_list("plan").annotate(n=Count("pk")).values_list("plan", "n"))
    return [{"plan": plan, "held": held.get(plan.name, 0),
             "full": 0 <= plan.accounts_per_team <= held.get(plan.name, 0) and plan.name != account.plan}
            for plan in Plan.objects.all()]


@login_required
def account_plan_page(request: HttpRequest, pk: str) -> HttpResponse:
    account = request_account(request, pk)
    if request.method == "POST":
        # A switch is confirmed on its own page (prices and limits side by side); a bare POST here only opens it.
        plan = request.POST.get("plan", "")
        if Plan.objects.filter(name=plan).exists():
            return redirect("billing:account_plan_confirm", pk=pk, name=plan)
        messages.error(request, "Choose one of the plans below.")
        return redirect("billing:account_plan", pk=pk)
    return render(request, "billing/plan.html", {
        "account": account, "tab": "plan", "plans": _plan_rows(account),
        "is_owner": is_owner(request, account.team),
    })


@login_required
def account_plan_confirm(request: HttpRequest, pk: str, name: str) -> HttpResponse:
    """GET: the account's current plan and ``name`` side by side (price, allowance, overage, every limit) with a
    Confirm button for owners. Only the confirmed POST switches; one made against terms that have since changed
    shows the new terms instead."""
    account = request_account(request, pk)
    new = Plan.objects.filter(name=name).first()
    if new is None:
        raise Http404("no such plan")
    if new.name == account.plan:
        messages.info(request, f"Account {account.name} is already on the {new.title} plan.")
        return redirect("billing:account_plan", pk=pk)
    current = Plan.objects.filter(name=account.plan).first()
    row = next(r for r in _plan_rows(account) if r["plan"].pk == new.pk)
    context = {"account": account, "tab": "plan", "current": current, "new": new, "full": row["full"],
               "rows": plan_change_rows(current=current, new=new), "terms": plan_terms_key(new),
               "is_owner": is_owner(request, account.team)}
    if request.method == "POST":
        if request.POST.get("terms") != plan_terms_key(new):
            context["stale"] = True
            return render(request, "billing/plan_confirm.html", context, status=409)
        if attempt(request, services.account_plan_set, account=account, plan=new.name, actor=request.user):
            messages.success(request, f"Account {account.name} is now on the {new.title} plan; its new limits are "
                                      "being pushed to the fleet.")
        return redirect("billing:account_plan", pk=pk)
    return render(request, "billing/plan_confirm.html", context)


def _invoice(request: HttpRequest, slug: str, number: str) -> Invoice:
    team = request_team(request, slug)
    invoice = Invoice.objects.filter(team=team, number=number).select_related("team").first()
    if invoice is None:
        raise Http404("no such invoice")
    return invoice


@login_required
def invoices_page(request: HttpRequest, slug: str) -> HttpResponse:
    team = request_team(request, slug)
    return render(request, "billing/invoices.html", {"team": team, "invoices": team.invoices.all()})


@login_required
def invoice_page(request: HttpRequest, slug: str, number: str) -> HttpResponse:
    invoice = _invoice(request, slug, number)
    return render(request, "billing/invoice.html", {"team": invoice.team, "invoice": invoice,
                                                    "lines": invoice.lines.all()})


@login_required
def invoice_download(request: HttpRequest, slug: str, number: str, fmt: str) -> HttpResponse:
    invoice = _invoice(request, slug, number)
    if fmt not in ("csv", "json"):
        raise Http404("invoices download as .csv or .json")
    if fmt == "json":
        body, content_type = json.dumps(invoice_docs.invoice_document(invoice), indent=2), "application/json"
    else:
        body, content_type = invoice_docs.invoice_csv(invoice), "text/csv; charset=utf-8"
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{invoice.number}.{fmt}"'
    response["Cache-Control"] = "private, no-store"
    return response
