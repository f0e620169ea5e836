"""Payouts' pages: your own payout lines (the operators you are a member of, your teams as publishers); for staff
the statements (run one, see it whole, CSV and JSON downloads) and the node operators (register, members, nodes)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts_service.models import Team
from broker_gateway.models import BrokerNode, NodeOperator
from broker_gateway.node_operators import (
    node_operator_assign,
    operator_create,
    operator_get,
    operator_member_add,
    operator_member_remove,
    operators_for_user,
)
from core.errors import ApplicationError, NotFound
from payouts.documents import statement_csv, statement_document
from payouts.models import PayoutStatement
from payouts.selectors import lines_for_operator, lines_for_team, period_parse, statement_get
from payouts.services import payout_run


@login_required
def my_payouts(request: HttpRequest) -> HttpResponse:
    """Every operator the person is a member of, with its nodes and the lines paying it; and the publisher lines of
    their teams."""
    operators = [{"operator": o, "nodes": list(o.nodes.order_by("name")),
                  "lines": list(lines_for_operator(o))} for o in operators_for_user(request.user)]
    teams = [{"team": t, "lines": list(lines_for_team(t))} for t in Team.objects.for_user(request.user)]
    return render(request, "payouts/mine.html", {"operators": operators,
                                                 "teams": [t for t in teams if t["lines"]]})


# ------------------------------------------------------------------------------------------------
# Staff: statements
# ------------------------------------------------------------------------------------------------


class RunForm(forms.Form):
    period = forms.RegexField(regex=r"^\d{4}-\d{2}$", max_length=7, help_text="YYYY-MM, a month that is over",
                              widget=forms.TextInput(attrs={"placeholder": "2026-11"}))


@staff_member_required
@require_http_methods(["GET", "POST"])
def statements(request: HttpRequest) -> HttpResponse:
    form = RunForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            statement = payout_run(period=form.cleaned_data["period"], actor=request.user)
        except ApplicationError as exc:
            form.add_error("period", exc.message)
        else:
            messages.success(request, f"Payouts {statement.period} written.")
            return redirect("payouts:statement", period=statement.period)
    return render(request, "payouts/statements.html", {"statements": PayoutStatement.objects.all(), "form": form},
                  status=400 if form.errors else 200)


def _statement(period: str) -> PayoutStatement:
    try:
        statement = statement_get(start=period_parse(period))
    except ApplicationError:
        statement = None
    if statement is None:
        raise Http404("no such statement")
    return statement


@staff_member_required
def statement(request: HttpRequest, period: str) -> HttpResponse:
    s = _statement(period)
    return render(request, "payouts/statement.html", {
        "statement": s, "lines": s.lines.select_related("operator", "team"),
        "collected": s.collected.select_related("invoice", "invoice__team").order_by("invoice__number")})


@staff_member_required
def statement_download(request: HttpRequest, period: str, fmt: str) -> HttpResponse:
    s = _statement(period)
    if fmt == "json":
        body, content_type = json.dumps(statement_document(s), indent=2), "application/json"
    elif fmt == "csv":
        body, content_type = statement_csv(s), "text/csv; charset=utf-8"
    else:
        raise Http404("statements download as .csv or .json")
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="payouts-{s.period}.{fmt}"'
    response["Cache-Control"] = "private, no-store"
    return response


# ------------------------------------------------------------------------------------------------
# Staff: node operators
# ------------------------------------------------------------------------------------------------


class OperatorForm(forms.Form):
    slug = forms.SlugField(max_length=40)
    name = forms.CharField(max_length=100)
    contact_email = forms.EmailField(required=False)


@staff_member_required
@require_http_methods(["GET", "POST"])
def operators(request: HttpRequest) -> HttpResponse:
    form = OperatorForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            operator = operator_create(actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_error("name" if exc.extra.get("field") == "name" else "slug", exc.message)
        else:
            messages.success(request, f"Operator {operator.name} registered; assign it nodes below.")
            return redirect("payouts:operators")
    rows = [{"operator": o, "nodes": list(o.nodes.order_by("name")), "members": list(o.members.order_by("username"))}
            for o in NodeOperator.objects.all()]
    return render(request, "payouts/operators.html", {
        "rows": rows, "form": form, "nodes": BrokerNode.objects.select_related("operator").order_by("name"),
        "choices": NodeOperator.objects.all()}, status=400 if form.errors else 200)


def _attempt(request: HttpRequest, fn, **kwargs) -> None:
    """A button's service call: a refusal (an unknown user, say) is an error message on the operators page."""
    try:
        fn(**kwargs)
    except ApplicationError as exc:
        messages.error(request, exc.message)


@staff_member_required
@require_POST
def operator_member(request: HttpRequest, slug: str, action: str) -> HttpResponse:
    if action not in ("add", "remove"):
        raise Http404("members are added or removed")
    try:
        operator = operator_get(slug=slug)
    except NotFound:
        raise Http404("no such operator") from None
    fn = operator_member_add if action == "add" else operator_member_remove
    _attempt(request, fn, operator=operator, username=request.POST.get("username", ""), actor=request.user)
    return redirect("payouts:operators")


@staff_member_required
@require_POST
def node_assign(request: HttpRequest, name: str) -> HttpResponse:
    node = BrokerNode.objects.filter(name=name).first()
    operator = NodeOperator.objects.filter(slug=request.POST.get("operator", "")).first()
    if node is None:
        raise Http404("no such node")
    if operator is None:
        messages.error(request, "Choose one of the operators.")
    else:
        _attempt(request, node_operator_assign, node=node, operator=operator, actor=request.user)
    return redirect("payouts:operators")
