"""The usage document of one account by its public key, as ``ngs.usage`` answers it: two plain queries.

1. the account's plan, with the plan's row (its allowance and prices) and the account's plan history
   (``PlanSpan``) up to now joined;
2. the window's, the month's and each plan segment's totals, with the current connections and stored bytes, in one
   ``UNION ALL`` (``billing.selectors.totals_read``: segments that share rows read them once).

On PostgreSQL the two go in **one round trip** (``core.db.rows_read_many``) when the process knows the account's
plan history from an earlier answer (or from ``spans_preload`` at a responder's start): the second query is built
from that history, and it is used only if the history the first query read gives the very same windows; otherwise
it is read again from the history just read (a plan changed: a third query). The history kept is a guess, never
an answer.

The bill comes from these reads through ``billing.bills`` and ``billing.pricing``, the same code the REST bill and
the invoices use, so the three cannot disagree (tests/api/test_bills.py, tests/unit/test_metering.py). The ORM's
query building cost more than the reads themselves on this path (docs/BENCHMARKS.md, "Metering").
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, NamedTuple

from django.db import connection
from django.utils import timezone

from accounts_service.models import Account, PlanSpan
from billing import bills, pricing
from billing.models import Plan
from billing.selectors import WINDOWS, document_build, period_start, totals_of, totals_query, totals_read
from core.db import prepared_reads, rows_read, rows_read_many

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


def _plan_spans_query(public_key: str, end: dt.datetime) -> tuple[str, list[Any]]:
    """The account's team and plan name, its plan's row and what ``billing.bills.account_held`` reads: its spans in
    this team recorded before ``end``'s second ended, in the order written. A row per span (the account's and
    plan's columns repeated), by the (account, team, at) index; ``_plan_spans_of`` reads them."""
    quote = connection.ops.quote_name
    columns = ", ".join(f"p.{quote(f.column)}" for f in _PLAN_FIELDS)
    spans = PlanSpan._meta
    at = quote(spans.get_field("at").column)
    return (f"SELECT a.team_id, a.plan, s.{at}, s.plan, s.account_name, {columns} "  # noqa: S608
            f"FROM {quote(Account._meta.db_table)} a "
            f"LEFT JOIN {quote(Plan._meta.db_table)} p ON p.name = a.plan AND a.plan <> '' "
            f"LEFT JOIN {quote(spans.db_table)} s ON s.account_public_key = a.public_key "
            f"AND s.team_id = a.team_id AND s.{at} < %s "
            f"WHERE a.public_key = %s ORDER BY s.{at}, s.id",
            [connection.ops.adapt_datetimefield_value(bills.until(end)), public_key])


def _plan_spans_of(rows: list[tuple]) -> tuple[int, str, Plan | None, list[_Span]] | None:
    """(team id, plan name, the plan's row or None, the spans) from ``_plan_spans_query``'s rows; None when the
    account does not exist."""
    if not rows:
        return None
    team_id, plan_name, _, _, _, *values = rows[0]
    plan = None
    if values[0] is not None:  # (the plan's id: no plan row joined when the account has none)
        plan = Plan.from_db(connection.alias, [f.attname for f in _PLAN_FIELDS], values)
    found = [_Span(_aware(r[2]), r[3], r[4]) for r in rows if r[2] is not None]
    return team_id, plan_name or "", plan, found


# Each account's plan history as this process last read it ((at, plan) per span): what the second query is built
# from before the first has answered. Bounded by the number of accounts; a guess, checked on every answer.
_HISTORY: dict[str, list[tuple[dt.datetime, str]]] = {}
HISTORY_MAX = 200_000  # accounts kept (past it, new accounts are not kept: their answers take two round trips)


def _windows(history: list[tuple[dt.datetime, str]], window: str, now: dt.datetime,
             period: bills.Period) -> list[tuple[dt.datetime, dt.datetime]]:
    """The window, the month so far and the hours of each plan segment of the month, as the answer reads them."""
    segments = pricing.segments_from_spans(history, start=period.start, end=period.now)
    ranges = [r for r in pricing.segment_hours(segments) if r[1] > r[0]]
    return [(now - WINDOWS[window], now), (period_start(now), now), *ranges]


def spans_preload() -> int:
    """Every account's plan history (its spans in its current team), for the first answers' guesses: a responder
    process calls it once at its start, on PostgreSQL (elsewhere the guess saves nothing). One query; returns how
    many accounts are kept."""
    if not prepared_reads():
        return 0
    quote = connection.ops.quote_name
    spans = PlanSpan._meta
    at = quote(spans.get_field("at").column)
    rows = rows_read(f"SELECT a.public_key, s.{at}, s.plan FROM {quote(Account._meta.db_table)} a "  # noqa: S608
                     f"LEFT JOIN {quote(spans.db_table)} s ON s.account_public_key = a.public_key "
                     f"AND s.team_id = a.team_id ORDER BY a.public_key, s.{at}, s.id", [])
    history: dict[str, list[tuple[dt.datetime, str]]] = {}
    for key, span_at, plan in rows:
        spans_of = history.setdefault(key, [])
        if span_at is not None:
            spans_of.append((_aware(span_at), plan))
    _HISTORY.clear()
    _HISTORY.update(itertools.islice(history.items(), HISTORY_MAX))
    return len(_HISTORY)


def account_usage_by_key(*, public_key: str, window: str, now: dt.datetime | None = None) -> dict[str, Any] | None:
    """``billing.selectors.account_usage`` of the account with ``public_key`` (None if there is none), in two
    queries, on PostgreSQL in one round trip when the plan history is known (see the module's docstring)."""
    now = now or timezone.now()
    period = bills.Period.at(now)
    first = _plan_spans_query(public_key, period.now)
    guessing = prepared_reads()
    guess = _HISTORY.get(public_key) if guessing else None
    guessed = read = second = None
    if guess is not None:
        guessed = _windows(guess, window, now, period)
        second = totals_query(public_key, guessed, current_at=now)
        rows, read = rows_read_many([first, (second.sql, second.params)])
    else:
        rows = rows_read(*first)
    found = _plan_spans_of(rows)
    if found is None:
        _HISTORY.pop(public_key, None)
        return None
    _, plan_name, plan, spans = found
    history = [(s.at, s.plan) for s in spans]
    if guessing and (public_key in _HISTORY or len(_HISTORY) < HISTORY_MAX):
        _HISTORY[public_key] = history
    windows = _windows(history, window, now, period)
    ranges = windows[2:]
    if windows == guessed:
        (totals, month, *by_range), current = totals_of(read, second)
    else:  # no guess, or the plan changed since it was read: the windows of the history just read
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
