"""The usage document of one account by its public key, as ``ngs.usage`` answers it: two plain queries.

1. the account's plan, with the plan's row (its allowance and prices) and the account's plan history
   (``PlanSpan``) up to now joined;
2. the window's, the month's and each plan segment's totals, with the current connections and stored bytes, in one
   ``UNION ALL`` (``billing.selectors.totals_read``: segments that share rows read them once).

The bill comes from these reads through ``billing.bills`` and ``billing.pricing``, the same code the REST bill and
the invoices use, so the three cannot disagree (tests/api/test_bills.py, tests/unit/test_metering.py). The ORM's
query building cost more than the reads themselves on this path (docs/BENCHMARKS.md, "Metering").
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from django.db import connection
from django.utils import timezone

from accounts_service.models import Account, PlanSpan
from billing import bills, pricing
from billing.models import Plan
from billing.selectors import WINDOWS, document_build, period_start, totals_read
from core.db import rows_read

_PLAN_FIELDS = [f for f in Plan._meta.concrete_fields]


class _Span(NamedTuple):
    """A PlanSpan row as the bill reads it."""

    at: dt.datetime
    plan: str
    account_name: str


def _aware(value: Any) -> dt.datetime:
    """A datetime column read with plain SQL: SQLite gives the stored UTC time naive (or as text), PostgreSQL an
    aware one."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def _account_plan_spans(public_key: str, end: dt.datetime) -> tuple[int, str, Plan | None, list[_Span]] | None:
    """The account's team and plan name, its plan's row (None without one) and what ``billing.bills.account_held``
    reads: its spans in this team recorded before ``end``'s second ended, in the order written. One query: a row
    per span (the account's and plan's columns repeated), by the (account, team, at) index."""
    quote = connection.ops.quote_name
    columns = ", ".join(f"p.{quote(f.column)}" for f in _PLAN_FIELDS)
    spans = PlanSpan._meta
    at = quote(spans.get_field("at").column)
    rows = rows_read(f"SELECT a.team_id, a.plan, s.{at}, s.plan, s.account_name, {columns} "  # noqa: S608
                     f"FROM {quote(Account._meta.db_table)} a "
                     f"LEFT JOIN {quote(Plan._meta.db_table)} p ON p.name = a.plan AND a.plan <> '' "
                     f"LEFT JOIN {quote(spans.db_table)} s ON s.account_public_key = a.public_key "
                     f"AND s.team_id = a.team_id AND s.{at} < %s "
                     f"WHERE a.public_key = %s ORDER BY s.{at}, s.id",
                     [connection.ops.adapt_datetimefield_value(bills.until(end)), public_key])
    if not rows:
        return None
    team_id, plan_name, _, _, _, *values = rows[0]
    plan = None
    if values[0] is not None:  # (the plan's id: no plan row joined when the account has none)
        plan = Plan.from_db(connection.alias, [f.attname for f in _PLAN_FIELDS], values)
    found = [_Span(_aware(r[2]), r[3], r[4]) for r in rows if r[2] is not None]
    return team_id, plan_name or "", plan, found


def account_usage_by_key(*, public_key: str, window: str, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """``billing.selectors.account_usage`` of the account with ``public_key`` (None if there is none), in two
    queries (see the module's docstring)."""
    now = now or timezone.now()
    period = bills.Period.at(now)
    found = _account_plan_spans(public_key, period.now)
    if found is None:
        return None
    _, plan_name, plan, spans = found
    segments = pricing.segments_from_spans([(s.at, s.plan) for s in spans], start=period.start, end=period.now)
    ranges = [r for r in pricing.segment_hours(segments) if r[1] > r[0]]
    month_range = (period_start(now), now)
    windows = [(now - WINDOWS[window], now), month_range, *ranges]
    (totals, month, *by_range), current = totals_read(public_key, windows, current_at=now)
    document = document_build(account_public_key=public_key, window=window, plan=plan_name,
                         data_bytes=plan.data_bytes if plan is not None else -1,
                         used_bytes=month["sent_bytes"] + month["received_bytes"], now=now, totals=totals,
                         current=current)
    plans = {plan.name: plan} if plan is not None else {}
    others = {s.plan for s in spans if s.plan} - set(plans)
    if others:  # the plan changed this month: the earlier plans' prices too (rare: one more query)
        plans |= {p.name: p for p in Plan.objects.filter(name__in=others)}
    known = bills.Known(plans=plans, usage={**dict(zip(ranges, by_range, strict=True)),
                                            (period.start, pricing.hour_ceil(now)): month})
    held = bills.account_held_of(public_key=public_key, spans=spans, start=period.start, end=period.now,
                                 plans=plans, known=known) if spans else None
    document["bill"] = bills.bill_summary(bills.month_bill(held, period))
    return document
