"""Writes of payouts: a period's statement, once (docs/ECONOMICS.md)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts_service.models import AuditEvent, Team
from accounts_service.rights import PLATFORM, actor_name
from accounts_service.services import audit_record, platform_team_get
from billing.invoices import period_next, period_previous
from billing.selectors import period_start as current_period_start
from broker_gateway.models import NodeOperator
from broker_gateway.node_operators import staff_required
from core.errors import Conflict
from payouts import shares
from payouts.models import PayoutInvoice, PayoutLine, PayoutStatement
from payouts.selectors import (
    invoices_collectible,
    operator_bytes,
    period_closes_at,
    period_parse,
    publisher_use,
)

log = logging.getLogger(__name__)

COMMUNITY_FUND = "Community fund"


def _label(start: dt.datetime) -> str:
    return f"{start:%Y-%m}"


def payout_run(*, period: str | dt.datetime, actor: Any, now: dt.datetime | None = None) -> PayoutStatement:
    """Write the period's statement, or refuse with nothing written: a period not over yet (or whose invoices are
    not issued yet), a period already paid out, nothing collected, no operator's node carrying any traffic."""
    staff_required(actor)
    start = period if isinstance(period, dt.datetime) else period_parse(period)
    end, now = period_next(start), now or timezone.now()
    label = _label(start)
    closes = period_closes_at(start)
    if now < closes:
        raise Conflict(f"period {label} is not closed yet: it can be paid out from {closes:%Y-%m-%d %H:%M} UTC, "
                       "once it is over and its invoices are issued", code="payout_period_open",
                       extra={"period": label, "closes_at": closes.isoformat()})
    if PayoutStatement.objects.filter(period_start=start).exists():
        raise Conflict(f"period {label} is already paid out", code="payout_exists", extra={"period": label})
    try:
        with transaction.atomic():
            return _statement_write(start=start, end=end, label=label, actor=actor)
    except IntegrityError:  # another run wrote this period (or one of its invoices) first: that one stands
        raise Conflict(f"period {label} is already paid out", code="payout_exists", extra={"period": label}) from None


def _statement_write(*, start: dt.datetime, end: dt.datetime, label: str, actor: Any) -> PayoutStatement:
    # of=self: PostgreSQL refuses FOR UPDATE on the nullable side of the outer join to PayoutInvoice.
    invoices = list(invoices_collectible(start=start).select_for_update(of=("self",)))
    collected = sum(i.total_cents for i in invoices)
    if not collected:
        raise Conflict(f"nothing was collected for {label}: no invoice of the period is paid yet, and no older one "
                       "was paid during it (an unpaid invoice rolls into the period in which it is paid)",
                       code="payout_no_revenue", extra={"period": label})
    currencies = sorted({i.currency for i in invoices})
    if len(currencies) > 1:
        raise Conflict(f"the invoices collected for {label} are in {', '.join(currencies)}: a statement divides one "
                       "currency", code="payout_currencies", extra={"period": label, "currencies": currencies})
    by_operator = operator_bytes(start=start, end=end)
    operators = {o.pk: o for o in NodeOperator.objects.filter(pk__in=by_operator)}
    by_team = publisher_use(start=start, end=end)
    teams = {t.pk: t for t in Team.objects.filter(pk__in=by_team)}
    try:
        split = shares.statement_split(
            collected,
            operators=[(pk, by_operator[pk]) for pk in sorted(operators, key=lambda pk: operators[pk].slug)],
            publishers=[(pk, by_team[pk]) for pk in sorted(teams, key=lambda pk: teams[pk].slug)])
    except shares.NothingToDivideBy:
        raise Conflict(f"no node operator carried tenant traffic in {label}: the operators' 80 % has nobody to go to "
                       "(every operator has no nodes, or its nodes carried nothing)", code="payout_no_operator_traffic",
                       extra={"period": label}) from None
    statement = PayoutStatement.objects.create(
        period_start=start, period_end=end, currency=currencies[0], collected_cents=collected,
        operators_cents=split.buckets[shares.OPERATORS], publishers_cents=split.buckets[shares.PUBLISHERS],
        community_cents=split.buckets[shares.COMMUNITY], operator_bytes=sum(by_operator[pk] for pk in operators),
        publisher_msgs=sum(by_team[pk] for pk in teams), publishers_unused=split.publishers_unused,
        created_by=actor_name(actor))
    lines = []
    for position, line in enumerate(split.lines, start=1):
        payee: dict[str, Any] = {}
        if line.bucket == shares.OPERATORS:
            payee = {"operator": operators[line.payee], "payee_name": operators[line.payee].name,
                     "basis_unit": PayoutLine.Unit.BYTES}
        elif line.bucket == shares.PUBLISHERS:
            payee = {"team": teams[line.payee], "payee_name": teams[line.payee].name,
                     "basis_unit": PayoutLine.Unit.MESSAGES}
        else:
            payee = {"payee_name": COMMUNITY_FUND, "basis_unit": PayoutLine.Unit.NONE}
        lines.append(PayoutLine(statement=statement, position=position, bucket=line.bucket,
                                basis_quantity=line.basis, cents=line.cents, **payee))
    PayoutLine.objects.bulk_create(lines)
    PayoutInvoice.objects.bulk_create(PayoutInvoice(statement=statement, invoice=i, cents=i.total_cents)
                                      for i in invoices)
    if sum(line.cents for line in lines) != collected:  # statement_split guarantees it; never write otherwise
        raise RuntimeError(f"payout lines of {label} do not add up to {collected}")
    audit_record(action=AuditEvent.Action.PAYOUT_RUN, actor=actor, team=platform_team_get(), target=label,
                 detail={"currency": statement.currency, "collected_cents": collected,
                         "operators_cents": statement.operators_cents, "publishers_cents": statement.publishers_cents,
                         "community_cents": statement.community_cents, "invoices": [i.number for i in invoices]})
    log.info("payouts: %s statement written", label, extra={"period": label, "collected_cents": collected})
    return statement


def payouts_run_due(*, now: dt.datetime | None = None) -> PayoutStatement | None:
    """The monthly beat task, after the invoice run: the last period's statement, once it can be written. A period
    with nothing collected is skipped (logged); what is paid later rolls into the period in which it is paid."""
    now = now or timezone.now()
    start = period_previous(current_period_start(now))
    if now < period_closes_at(start) or PayoutStatement.objects.filter(period_start=start).exists():
        return None
    try:
        return payout_run(period=start, actor=PLATFORM, now=now)
    except Conflict as exc:
        log.info("payouts: %s not paid out: %s", _label(start), exc.message)
        return None

