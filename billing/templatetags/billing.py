"""``{% load billing %}``: the quota banner the account pages and the dashboard show (80, 90 and 100 %)."""

from __future__ import annotations

from django import template

from billing.pricing import cents_text
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

