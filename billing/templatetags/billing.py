"""``{% load billing %}``: the quota banner the account pages and the dashboard show (80, 90 and 100 %), and the
month's bill so far and its estimate on the account and team pages."""

from __future__ import annotations

from django import template

from billing.bills import account_bill, bill_rows, currency, quantity_text, team_bill_rows
from billing.invoices import line_fields
from billing.pricing import Kind, cents_text
from billing.selectors import quota_notice_latest

register = template.Library()


@register.inclusion_tag("billing/_quota_banner.html")
def quota_banner(account, compact: bool = False) -> dict:
    """The highest threshold the account crossed this period, as a banner (or a badge when ``compact``)."""
    notice = quota_notice_latest(account_public_key=account.public_key) if account.plan else None
    return {"account": account, "notice": notice, "compact": compact}


@register.filter
def cents(value: int) -> str:
    """1234 -> "12.34" (integer arithmetic: money is never a float)."""
    return cents_text(int(value))



@register.inclusion_tag("billing/_bill_card.html")
def account_bill_card(account, detailed: bool = False) -> dict:
    """The account's month to date and estimate (with each line when ``detailed``: the Usage tab)."""
    bill, period = account_bill(account_public_key=account.public_key, team_id=account.team_id)
    return {"account": account, "bill": bill, "period": period, "currency": currency(), "detailed": detailed,
            "rows": bill_rows(bill) if detailed else []}


@register.inclusion_tag("billing/_team_bill.html")
def team_bill_card(team) -> dict:
    """The team's month to date and estimate, per account it held this month (deleted ones too)."""
    return {"team": team, "month": team_bill_rows(team_id=team.pk)}


@register.filter
def line_texts(line) -> dict:
    """An invoice line's figures as a person reads them (billing.bills.quantity_text) and exactly."""
    fields = line_fields(line)
    unit = fields["measure_unit"]
    return {"measured": quantity_text(line.kind, line.measured), "measured_exact": f"{line.measured:,} {unit}s",
            "included": "" if line.kind == Kind.BASE else quantity_text(line.kind, line.included),
            "billed_exact": f"{line.billed:,} {unit}s", "quantity_unit": fields["quantity_unit"],
            "unit": fields["unit"]}
