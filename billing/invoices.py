"""Monthly invoices, billed in arrears: per team, one base line per account on a priced plan and one overage
line per account past a plan's data allowance (per GiB, on plans with overage).

Which accounts a team held, and on which plan, comes from accounts_service's plan history (``PlanSpan``), so an
account deleted during the month is still billed for it. The plan billed is the one the account held at the
end of the period (or when it was deleted); there is no proration. Generating an invoice twice gives one
(database constraint); an issued invoice never changes except for its payment status.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts_service.models import PlanSpan, Team
from billing import metering
from billing.models import Invoice, InvoiceLine, Plan, UsageHour
from billing.payments import provider_get
from billing.selectors import period_start
from billing.units import GIB
from core.errors import Conflict

log = logging.getLogger(__name__)

_MILLI = Decimal("0.001")


# ------------------------------------------------------------------------------------------------
# Periods and what a team held in one (reads)
# ------------------------------------------------------------------------------------------------


def period_next(start: dt.datetime) -> dt.datetime:
    """The start of the period after the one starting at ``start`` (calendar months, UTC)."""
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def period_previous(start: dt.datetime) -> dt.datetime:
    return (start - dt.timedelta(days=1)).replace(day=1)


@dataclass(frozen=True)
class Held:
    """An account a team held during a period, on the plan it is billed for."""

    public_key: str
    name: str
    plan: str


def accounts_held(*, team_id: int, start: dt.datetime, end: dt.datetime) -> list[Held]:
    """The accounts ``team_id`` held on a plan at some time in [start, end), in the order it got them."""
    spans: dict[str, list[PlanSpan]] = {}
    for span in PlanSpan.objects.filter(team_id=team_id, at__lt=end).order_by("at", "pk"):
        spans.setdefault(span.account_public_key, []).append(span)
    held = []
    for key, rows in spans.items():
        before = [r for r in rows if r.at < start]
        on_plan_at_start = bool(before and before[-1].plan)
        if not on_plan_at_start and not any(r.plan for r in rows if r.at >= start):
            continue
        last = next(r for r in reversed(rows) if r.plan)  # the plan at the end of the period, or at deletion
        held.append(Held(public_key=key, name=last.account_name, plan=last.plan))
    return held


def used_bytes_between(*, account_public_key: str, start: dt.datetime, end: dt.datetime) -> int:
    """Sent plus received bytes in the hours of [start, end)."""
    agg = UsageHour.objects.filter(account_public_key=account_public_key, hour__gte=metering.hour_floor(start),
                                   hour__lt=end).aggregate(sent=Sum("sent_bytes"), received=Sum("received_bytes"))
    return (agg["sent"] or 0) + (agg["received"] or 0)


# ------------------------------------------------------------------------------------------------
# Line items (pure)
# ------------------------------------------------------------------------------------------------


def overage_gib(used_bytes: int, allowance_bytes: int) -> Decimal:
    """GiB past the allowance, rounded up to a thousandth (0 for an unlimited allowance)."""
    if allowance_bytes < 0 or used_bytes <= allowance_bytes:
        return Decimal(0)
    return (Decimal(used_bytes - allowance_bytes) / GIB).quantize(_MILLI, rounding=ROUND_UP)


def cents(quantity: Decimal, unit_cents: int) -> int:
    return int((quantity * unit_cents).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def lines_compute(*, account: Held, plan: Plan, used_bytes: int) -> list[dict[str, Any]]:
    """An account's lines: its plan's base price for the month, and its overage when the plan bills one."""
    common = {"account_public_key": account.public_key, "account_name": account.name, "plan": plan.name,
              "used_bytes": used_bytes, "allowance_bytes": plan.data_bytes}
    lines = [{**common, "kind": InvoiceLine.Kind.BASE, "quantity": Decimal(1), "unit_cents": plan.base_price_cents,
              "amount_cents": plan.base_price_cents,
              "description": f"{plan.title} plan, account {account.name}"}]
    over = overage_gib(used_bytes, plan.data_bytes)
    if over and plan.overage_cents_per_gib:
        allowance = f"{plan.data_bytes / GIB:g} GiB"
        lines.append({**common, "kind": InvoiceLine.Kind.OVERAGE, "quantity": over,
                      "unit_cents": plan.overage_cents_per_gib, "amount_cents": cents(over, plan.overage_cents_per_gib),
                      "description": f"Data past the {allowance} allowance, account {account.name}"})
    return lines


# ------------------------------------------------------------------------------------------------
# Generation (writes)
# ------------------------------------------------------------------------------------------------


def invoice_number(*, team_id: int, start: dt.datetime) -> str:
    return f"NC-{start:%Y%m}-{team_id:06d}"


def invoice_generate(*, team: Team, start: dt.datetime) -> tuple[Invoice | None, bool]:
    """The team's invoice for the period starting at ``start`` (created if missing). Returns (invoice, created);
    (None, False) when the team held no account on a plan in the period."""
    end = period_next(start)
    existing = Invoice.objects.filter(team=team, period_start=start).first()
    if existing is not None:
        return existing, False
    held = accounts_held(team_id=team.pk, start=start, end=end)
    if not held:
        return None, False
    plans = {p.name: p for p in Plan.objects.filter(name__in={h.plan for h in held})}
    lines: list[dict[str, Any]] = []
    for account in held:
        plan = plans.get(account.plan)
        if plan is None:  # a plan staff deleted: nothing to price it by; say so rather than bill a guess
            log.warning("invoice: account %s was on plan %r, which no longer exists", account.public_key,
                        account.plan)
            continue
        lines += lines_compute(account=account, plan=plan,
                               used_bytes=used_bytes_between(account_public_key=account.public_key, start=start,
                                                             end=end))
    total = sum(line["amount_cents"] for line in lines)
    try:
        with transaction.atomic():
            invoice = Invoice.objects.create(
                team=team, number=invoice_number(team_id=team.pk, start=start), period_start=start, period_end=end,
                total_cents=total, status=Invoice.Status.OPEN if total else Invoice.Status.PAID,
                paid_at=None if total else timezone.now(),
            )
            InvoiceLine.objects.bulk_create(InvoiceLine(invoice=invoice, position=i, **line)
                                            for i, line in enumerate(lines, start=1))
    except IntegrityError:  # generated concurrently by another run: that one stands
        return Invoice.objects.get(team=team, period_start=start), False
    return invoice, True


def payment_request(*, invoice: Invoice) -> Invoice:
    """Hand an open invoice nobody has asked payment for to the payment provider (once)."""
    if invoice.status != Invoice.Status.OPEN or invoice.provider:
        return invoice
    provider = provider_get()
    try:
        outcome = provider.payment_request(invoice)
    except Exception:
        log.exception("payment provider %s failed for invoice %s; asking again on the next run", provider.name,
                      invoice.number)
        return invoice
    fields = {"provider": provider.name, "provider_reference": outcome.reference[:128]}
    if outcome.status == Invoice.Status.PAID:
        fields |= {"status": Invoice.Status.PAID, "paid_at": timezone.now()}
    Invoice.objects.filter(pk=invoice.pk, provider="").update(**fields)
    invoice.refresh_from_db()
    return invoice


def invoices_generate(*, now: dt.datetime | None = None) -> int:
    """The beat task: every team's invoice for the last period once it has been over for the grace time, and a
    payment request for any open invoice not yet handed to the provider. Returns how many invoices it created."""
    now = now or timezone.now()
    start = period_previous(period_start(now))
    created = 0
    if now >= period_next(start) + dt.timedelta(seconds=settings.INVOICE_GRACE_SECONDS):
        team_ids = PlanSpan.objects.filter(at__lt=period_next(start)).values_list("team_id", flat=True).distinct()
        for team in Team.objects.filter(pk__in=team_ids).order_by("pk"):
            created += invoice_generate(team=team, start=start)[1]
    for invoice in Invoice.objects.filter(status=Invoice.Status.OPEN, provider=""):
        payment_request(invoice=invoice)
    return created


@transaction.atomic
def invoice_mark_paid(*, invoice: Invoice, reference: str = "") -> Invoice:
    """Staff record a payment that arrived outside any provider (e.g. a bank transfer)."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status == Invoice.Status.VOID:
        raise Conflict(f"invoice {invoice.number} is void")
    if invoice.status != Invoice.Status.PAID:
        invoice.status, invoice.paid_at = Invoice.Status.PAID, timezone.now()
        invoice.provider_reference = (reference or invoice.provider_reference)[:128]
        invoice.save(update_fields=["status", "paid_at", "provider_reference"])
    return invoice


# ------------------------------------------------------------------------------------------------
# Documents (JSON and CSV downloads)
# ------------------------------------------------------------------------------------------------


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def invoice_document(invoice: Invoice) -> dict[str, Any]:
    return {
        "number": invoice.number,
        "team": {"id": invoice.team_id, "name": invoice.team.name},
        "period": {"start": _iso(invoice.period_start), "end": _iso(invoice.period_end)},
        "currency": invoice.currency,
        "total_cents": invoice.total_cents,
        "status": invoice.status,
        "issued_at": _iso(invoice.issued_at),
        "paid_at": _iso(invoice.paid_at),
        "payment": {"provider": invoice.provider, "reference": invoice.provider_reference},
        "lines": [
            {"position": line.position, "kind": line.kind, "description": line.description,
             "account": line.account_public_key, "account_name": line.account_name, "plan": line.plan,
             "quantity": str(line.quantity), "unit_cents": line.unit_cents, "amount_cents": line.amount_cents,
             "used_bytes": line.used_bytes, "allowance_bytes": line.allowance_bytes}
            for line in invoice.lines.all()
        ],
    }


CSV_COLUMNS = ("invoice", "period_start", "position", "kind", "description", "account", "account_name", "plan",
               "quantity", "unit_cents", "amount_cents", "used_bytes", "allowance_bytes")


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection"); an account name
# is the tenant's own text, so such a cell is written with a leading apostrophe, which shows it as typed.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def invoice_csv(invoice: Invoice) -> str:
    """One row per line item, then a total row; amounts in cents of the invoice's currency. Text cells that a
    spreadsheet would run as a formula are neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    period = f"{invoice.period_start:%Y-%m-%d}"
    rows = [[invoice.number, period, line.position, line.kind, line.description, line.account_public_key,
             line.account_name, line.plan, line.quantity, line.unit_cents, line.amount_cents, line.used_bytes,
             line.allowance_bytes] for line in invoice.lines.all()]
    rows.append([invoice.number, period, "", "total", f"Total ({invoice.currency})", "", "", "", "", "",
                 invoice.total_cents, "", ""])
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return out.getvalue()
