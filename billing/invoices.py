"""Monthly invoices, billed in arrears: per team, for each account it held on a plan during the month, one base
line per plan held (prorated by the seconds held) and one line per priced dimension of that plan (data,
connection-hours, JetStream GiB-hours past the allowance, prorated the same way); docs/BILLING.md.

Which accounts a team held, and on which plan when, comes from accounts_service's plan history (``PlanSpan``), so an
account deleted during the month is still billed for the time it existed, and a plan change within the month bills
each plan for its own part (``billing.bills``, priced by the pure ``billing.pricing``). Each line's amount is rounded
once, half up, to a cent; the total is the sum of the lines. Generating an invoice twice gives one (database
constraint); an issued invoice never changes except for its payment status.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts_service.models import PlanSpan, Team
from billing import pricing
from billing.bills import iso, line_description, team_accounts_held
from billing.models import Invoice, InvoiceLine
from billing.payments import provider_get
from billing.pricing import METERS, Kind, period_next
from billing.selectors import period_start
from core.errors import Conflict

log = logging.getLogger(__name__)

def period_previous(start: dt.datetime) -> dt.datetime:
    return (start - dt.timedelta(days=1)).replace(day=1)


# ------------------------------------------------------------------------------------------------
# Generation (writes)
# ------------------------------------------------------------------------------------------------


def invoice_number(*, team_id: int, start: dt.datetime) -> str:
    return f"NC-{start:%Y%m}-{team_id:06d}"


def invoice_lines(*, team_id: int, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """The lines of the team's invoice for [start, end), as InvoiceLine fields (position aside)."""
    lines: list[dict[str, Any]] = []
    for account in team_accounts_held(team_id=team_id, start=start, end=end):
        for line in pricing.bill_lines(account.held, period_start=start, period_end=end):
            lines.append({
                "kind": str(line.kind), "account_public_key": account.public_key, "account_name": account.name,
                "plan": line.plan, "starts_at": line.start, "ends_at": line.end,
                "description": line_description(kind=line.kind, title=line.title, account_name=account.name),
                "measured": line.measured, "included": line.included, "billed": line.billed,
                "quantity": line.quantity, "unit_cents": line.unit_cents, "amount_cents": line.amount_cents,
            })
    return lines


def invoice_generate(*, team: Team, start: dt.datetime) -> tuple[Invoice | None, bool]:
    """The team's invoice for the period starting at ``start`` (created if missing). Returns (invoice, created);
    (None, False) when the team held no account on a plan in the period."""
    end = period_next(start)
    existing = Invoice.objects.filter(team=team, period_start=start).first()
    if existing is not None:
        return existing, False
    lines = invoice_lines(team_id=team.pk, start=start, end=end)
    if not lines:
        return None, False
    total = sum(line["amount_cents"] for line in lines)  # the lines' own rounded amounts: they sum to the total
    try:
        with transaction.atomic():
            invoice = Invoice.objects.create(
                team=team, number=invoice_number(team_id=team.pk, start=start), period_start=start, period_end=end,
                currency=settings.BILLING_CURRENCY, total_cents=total,
                status=Invoice.Status.OPEN if total else Invoice.Status.PAID, paid_at=None if total else timezone.now(),
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


def _unit(kind: str) -> tuple[str, str, str]:
    """(measure unit, quantity unit, price unit) of a line kind."""
    if kind == Kind.BASE:
        return pricing.BASE_UNIT, "months", "month"
    meter = METERS[Kind(kind)]
    return meter.measure_unit, meter.shown_label, meter.price_label


def line_fields(line: InvoiceLine) -> dict[str, Any]:
    measure_unit, quantity_unit, unit = _unit(line.kind)
    return {"position": line.position, "kind": line.kind, "description": line.description,
            "account": line.account_public_key, "account_name": line.account_name, "plan": line.plan,
            "start": iso(line.starts_at), "end": iso(line.ends_at), "measure_unit": measure_unit,
            "measured": line.measured, "included": line.included, "billed": line.billed,
            "quantity": str(line.quantity), "quantity_unit": quantity_unit, "unit_cents": line.unit_cents,
            "unit": unit, "amount_cents": line.amount_cents}


def invoice_document(invoice: Invoice) -> dict[str, Any]:
    return {
        "number": invoice.number,
        "team": {"id": invoice.team_id, "name": invoice.team.name},
        "period": {"start": iso(invoice.period_start), "end": iso(invoice.period_end)},
        "currency": invoice.currency,
        "total_cents": invoice.total_cents,
        "status": invoice.status,
        "issued_at": iso(invoice.issued_at),
        "paid_at": iso(invoice.paid_at),
        "payment": {"provider": invoice.provider, "reference": invoice.provider_reference},
        "lines": [line_fields(line) for line in invoice.lines.all()],
    }


CSV_COLUMNS = ("invoice", "period_start", "position", "kind", "description", "account", "account_name", "plan",
               "start", "end", "measure_unit", "measured", "included", "billed", "quantity", "quantity_unit",
               "unit_cents", "unit", "amount_cents")


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
    rows = [[invoice.number, period, *(line_fields(line)[c] for c in CSV_COLUMNS[2:])] for line in invoice.lines.all()]
    rows.append([invoice.number, period, "", "total", f"Total ({invoice.currency})",
                 *([""] * (len(CSV_COLUMNS) - 6)), invoice.total_cents])
    writer.writerows([[_cell(value) for value in row] for row in rows])
    return out.getvalue()
