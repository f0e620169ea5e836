"""Reads of payouts: periods, the invoices a period collects, the operators' and publishers' bases, and the
statement lines a person may see."""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet

from accounts_service.models import Account, PlanSpan, Team
from billing.invoices import period_next
from billing.models import Invoice
from billing.traffic import export_use_between, node_hours_between
from broker_gateway.models import NodeOperator
from broker_gateway.node_operators import NodeAttribution
from core.errors import Invalid
from payouts.models import PayoutLine, PayoutStatement

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


# ------------------------------------------------------------------------------------------------
# Periods
# ------------------------------------------------------------------------------------------------


def period_parse(value: Any) -> dt.datetime:
    """``2026-11`` -> the period's start (the calendar month, UTC)."""
    match = _PERIOD.match(value) if isinstance(value, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        raise Invalid("period must be a month written YYYY-MM, e.g. 2026-11", code="period_invalid",
                      extra={"field": "period"})
    return dt.datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=dt.UTC)


def period_closes_at(start: dt.datetime) -> dt.datetime:
    """When a period can be paid out: once it is over and its invoices have been issued (the invoice run waits
    INVOICE_GRACE_SECONDS after the month for late metering)."""
    return period_next(start) + dt.timedelta(seconds=settings.INVOICE_GRACE_SECONDS)


# ------------------------------------------------------------------------------------------------
# Money: the invoices a period collects
# ------------------------------------------------------------------------------------------------


def invoices_collectible(*, start: dt.datetime) -> QuerySet[Invoice]:
    """The paid invoices the period starting at ``start`` divides, never collected by another statement: the
    period's own invoices paid by now, and older ones paid during the period (they were unpaid when their own
    period was paid out, so they roll into the period in which they were paid)."""
    end = period_next(start)
    return (Invoice.objects.filter(status=Invoice.Status.PAID, total_cents__gt=0, payout__isnull=True)
            .filter(Q(period_start=start) | Q(period_start__lt=start, paid_at__gte=start, paid_at__lt=end))
            .order_by("period_start", "number"))


# ------------------------------------------------------------------------------------------------
# Bases: what each payee is paid pro rata to
# ------------------------------------------------------------------------------------------------


def _team_of_keys(keys: set[str]) -> dict[str, int]:
    """Each account key's team, deleted accounts included (their plan history keeps it)."""
    teams = dict(PlanSpan.objects.filter(account_public_key__in=keys).values_list("account_public_key", "team_id"))
    teams.update(Account.objects.filter(public_key__in=keys).values_list("public_key", "team_id"))
    return teams


def operator_bytes(*, start: dt.datetime, end: dt.datetime) -> dict[int, int]:
    """Bytes tenants' clients exchanged with each operator's nodes in [start, end): per node and hour, the node's
    operator in that hour (the assignment history) is credited with what the ledger counted there (tenants only:
    billing.NodeUsageHour leaves the platform's own accounts out)."""
    hours = node_hours_between(start=start, end=end)
    who = NodeAttribution(h.node for h in hours)
    out: dict[int, int] = defaultdict(int)
    for h in hours:
        out[who.operator_id(h.node, h.hour)] += h.bytes
    return dict(out)


def publisher_use(*, start: dt.datetime, end: dt.datetime) -> dict[int, int]:
    """Messages accounts of *other* teams took through each publisher team's exports in [start, end), as the
    servers measured them (billing.traffic). Use by the publisher's own team, and the platform's exports and
    accounts, count nothing."""
    uses = export_use_between(start=start, end=end)
    teams = _team_of_keys({u.exporter for u in uses} | {u.importer for u in uses})
    platform_teams = set(Team.objects.filter(is_platform=True).values_list("pk", flat=True))
    out: dict[int, int] = defaultdict(int)
    for u in uses:
        publisher, importer = teams.get(u.exporter), teams.get(u.importer)
        if publisher is None or importer is None or publisher == importer or {publisher, importer} & platform_teams:
            continue
        out[publisher] += u.msgs
    return dict(out)


# ------------------------------------------------------------------------------------------------
# Who sees which lines
# ------------------------------------------------------------------------------------------------


def lines_for_user(user: Any) -> QuerySet[PayoutLine]:
    """The lines paying someone ``user`` speaks for: operators they are a member of, and teams they belong to
    (as publishers). Nobody else's, staff included (staff read whole statements on their own pages)."""
    if not getattr(user, "is_authenticated", False):
        return PayoutLine.objects.none()
    teams = Team.objects.for_user(user)
    return (PayoutLine.objects.filter(Q(operator__in=NodeOperator.objects.filter(members=user)) | Q(team__in=teams))
            .select_related("statement").order_by("-statement__period_start", "position"))


def lines_for_team(team: Team) -> QuerySet[PayoutLine]:
    return PayoutLine.objects.filter(team=team).select_related("statement").order_by("-statement__period_start")


def lines_for_operator(operator: NodeOperator) -> QuerySet[PayoutLine]:
    return (PayoutLine.objects.filter(operator=operator).select_related("statement")
            .order_by("-statement__period_start"))


def statement_get(*, start: dt.datetime) -> PayoutStatement | None:
    return PayoutStatement.objects.filter(period_start=start).first()
