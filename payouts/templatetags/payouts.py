"""``{% load payouts %}``: amounts in cents shown without a float, and a team's publisher payouts (the team page)."""

from __future__ import annotations

from django import template

from payouts.selectors import lines_for_team

register = template.Library()


@register.filter
def money(cents: int) -> str:
    """1234567 -> "12,345.67" (integer arithmetic: no float ever rounds a cent)."""
    cents = int(cents)
    sign, cents = ("-", -cents) if cents < 0 else ("", cents)
    return f"{sign}{cents // 100:,}.{cents % 100:02d}"


@register.inclusion_tag("payouts/_team_payouts.html")
def team_payouts(team) -> dict:
    """What the team was paid as a publisher: its lines of every statement, newest first."""
    return {"team": team, "lines": list(lines_for_team(team)[:24])}
