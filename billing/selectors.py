"""Reads of billing: an account's usage over a window, the document ``ngs.usage`` and the REST API answer."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Max, Sum
from django.utils import timezone

from accounts_service.plans import PlanTerms
from billing import metering
from billing.models import AccountStorage, Plan, QuotaNotice, ServerAccountCounter, UsageDay, UsageHour, UsageMonth
from billing.pricing import cents_text
from billing.units import GIB
from core.db import rows_read
from core.templatetags.units import iec

WINDOWS = {"1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7),
           "30d": dt.timedelta(days=30)}
DEFAULT_WINDOW = "24h"
GIB_HOUR = GIB * 3600  # byte-seconds in a GiB-hour


def window_parse(value: str | None) -> str:
    """A window name; empty means 24h; anything else is a ValueError naming the choices."""
    value = (value or "").strip() or DEFAULT_WINDOW
    if value not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)} (or empty for {DEFAULT_WINDOW})")
    return value


def connections_current(*, account_public_key: str, now: dt.datetime | None = None) -> int:
    return _connected(account_public_key, now or timezone.now())[0]


def leafnodes_current(*, account_public_key: str, now: dt.datetime | None = None) -> int:
    """The account's leafnode connections (tenants' own servers) now, summed over servers as client connections
    are: each leaf is connected to one server, which alone reports it."""
    return _connected(account_public_key, now or timezone.now())[1]


def _connected(account_public_key: str, now: dt.datetime) -> tuple[int, int]:
    """(client connections, leafnode connections) now, from one read of the account's per-server counters."""
    rows = list(ServerAccountCounter.objects.filter(account_public_key=account_public_key)
                .values_list("conns", "leafnodes", "observed_at"))
    return (metering.connections_at(((c, at) for c, _, at in rows), now),
            metering.connections_at(((leaf, at) for _, leaf, at in rows), now))


def storage_current(*, account_public_key: str, now: dt.datetime | None = None) -> int:
    """JetStream bytes the account stores now (every replica), if a server reported them recently."""
    now = now or timezone.now()
    # The key is unique: a slice without .first()'s ORDER BY id, which SQLite (no statistics) may answer by walking
    # the whole table in id order (8 ms on the benchmark's ledger)
    found = AccountStorage.objects.filter(account_public_key=account_public_key,
                                          observed_at__gte=now - metering.OBSERVATION_FRESH).values_list("bytes",
                                                                                                           flat=True)
    return next(iter(found[:1]), 0)


_TOTALS = ("sent_msgs", "sent_bytes", "received_msgs", "received_bytes", "connection_seconds", "storage_byte_seconds")
_GRAINS = {"hour": UsageHour, "day": UsageDay, "month": UsageMonth}


def usage_totals(*, account_public_key: str, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Sums over the hours that start in [hour of ``start``, ``end``): a row is keyed by its hour's start, so the
    hour starting at ``end`` is after the window (as in the invoice's ``used_bytes_between``)."""
    return _totals_many(account_public_key, [(start, end)])[0]


def _totals_many(account_public_key: str, windows: list[tuple[dt.datetime, dt.datetime]]) -> list[dict[str, Any]]:
    return totals_read(account_public_key, windows)[0]


def totals_read(account_public_key: str, windows: list[tuple[dt.datetime, dt.datetime]],
                current_at: dt.datetime | None = None) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """The totals of several windows in one query (and with ``current_at`` the account's connections, leafnode
    connections and stored bytes then, in the same query). Each window is read as the fewest whole months, days and
    hours (billing.metering.spans_cover) from the rollups the ledger keeps beside its hours: a 30-day window is ~30
    day rows and the hours at its two ends, not 720 hours on as many pages. Windows that share rows (a window and
    the month so far both end with today's hours) read them once: the spans are cut at each other's bounds."""
    query = totals_query(account_public_key, windows, current_at)
    return totals_of(rows_read(query.sql, query.params) if query.sql else [], query)


class TotalsQuery(NamedTuple):
    """``totals_read``'s one query (``sql`` empty when there is nothing to read), and what its rows mean: the
    segments that make up each window, whether the current counts were asked."""

    sql: str
    params: list[Any]
    members: list[list[int]]
    current: bool


def totals_query(account_public_key: str, windows: list[tuple[dt.datetime, dt.datetime]],
                 current_at: dt.datetime | None = None) -> TotalsQuery:
    """``totals_read``'s query, to run with others (``core.db.rows_read_many``); ``totals_of`` reads its rows."""
    spans = [metering.spans_cover(start, end) for start, end in windows]
    cuts: dict[str, set[dt.datetime]] = {}
    for grain, lo, hi in (span for window in spans for span in window):
        cuts.setdefault(grain, set()).update((lo, hi))
    segments: dict[tuple[str, dt.datetime, dt.datetime], int] = {}
    members: list[list[int]] = []  # the segments of each window
    for window in spans:
        mine = []
        for grain, lo, hi in window:
            bounds = sorted(t for t in cuts[grain] if lo <= t <= hi)
            for a, b in itertools.pairwise(bounds):
                mine.append(segments.setdefault((grain, a, b), len(segments)))
        members.append(mine)
    sql, params = _segments_query(account_public_key, list(segments), current_at)
    return TotalsQuery(sql, params, members, current_at is not None)


def totals_of(rows: list[tuple], query: TotalsQuery) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """The totals of each window of ``query`` (and the current counts) from the rows its SQL read."""
    found = {row[0]: row[1:] for row in rows}
    current = None
    if query.current:
        conns, leafnodes, *_ = found.get(_CURRENT) or (0, 0)
        storage = (found.get(_STORED) or (0,))[0]
        current = {"conns": int(conns or 0), "leafnodes": int(leafnodes or 0), "storage": int(storage or 0)}
    out = []
    for mine in query.members:
        rows = [found[i] for i in mine if i in found]
        totals = {field: sum(int(r[j] or 0) for r in rows) for j, field in enumerate(_TOTALS)}
        # PostgreSQL sums bigints as numeric (Decimal): the document holds plain ints, and a float for seconds
        totals["connection_seconds"] = float(sum(float(r[_TOTALS.index("connection_seconds")] or 0) for r in rows))
        totals["peak"] = max((int(r[-1] or 0) for r in rows), default=0)
        out.append(totals)
    return out, current


_CURRENT, _STORED = -1, -2  # the rows of _segments_query that hold what is current, not a segment's sums


def _segments_query(account_public_key: str, segments: list[tuple[str, dt.datetime, dt.datetime]],
                    current_at: dt.datetime | None = None) -> tuple[str, list[Any]]:
    """The sums (and peak) of each (grain, from, to) segment with rows, tagged with its index, in one UNION ALL
    query; with ``current_at`` also, under _CURRENT, the client and leafnode connections of the servers heard from
    within OBSERVATION_FRESH (billing.metering.connections_at) and, under _STORED, the stored bytes reported as
    freshly. ("", []) when there is nothing to read."""
    if not segments and current_at is None:
        return "", []
    adapt = connection.ops.adapt_datetimefield_value
    quote = connection.ops.quote_name
    parts, params = [], []
    if current_at is not None:
        since = adapt(current_at - metering.OBSERVATION_FRESH)
        counters, stored = (quote(m._meta.db_table) for m in (ServerAccountCounter, AccountStorage))
        rest = "0 AS received_msgs, 0 AS received_bytes, 0.0 AS connection_seconds, 0 AS storage_byte_seconds, " \
               "0 AS peak_connections"  # (the union's column names: the first SELECT's)
        parts += [f"SELECT {_CURRENT} AS w, conns AS sent_msgs, leafnodes AS sent_bytes, {rest} "  # noqa: S608
                  f"FROM {counters} WHERE account_public_key = %s AND observed_at >= %s",
                  f"SELECT {_STORED} AS w, bytes AS sent_msgs, 0 AS sent_bytes, {rest} "  # noqa: S608
                  f"FROM {stored} WHERE account_public_key = %s AND observed_at >= %s"]
        params += [account_public_key, since, account_public_key, since]
    for tag, (grain, lo, hi) in enumerate(segments):
        meta = _GRAINS[grain]._meta
        column = quote(meta.get_field(grain).column)
        parts.append(f"SELECT {tag} AS w, {', '.join(_TOTALS)}, peak_connections FROM {quote(meta.db_table)} "  # noqa: S608
                     f"WHERE account_public_key = %s AND {column} >= %s AND {column} < %s")
        params += [account_public_key, adapt(lo), adapt(hi)]
    sums = ", ".join(f"SUM({c})" for c in _TOTALS)
    return (f"SELECT w, {sums}, MAX(peak_connections) FROM ({' UNION ALL '.join(parts)}) AS spans "  # noqa: S608
            "GROUP BY w", params)


# The same totals as ``totals_read``'s, as ORM aggregates (a team's bill groups many accounts' hours at once).
_TOTALS_AGGREGATES = {"sent_msgs": Sum("sent_msgs"), "sent_bytes": Sum("sent_bytes"),
                      "received_msgs": Sum("received_msgs"), "received_bytes": Sum("received_bytes"),
                      "connection_seconds": Sum("connection_seconds"), "peak": Max("peak_connections"),
                      "storage_byte_seconds": Sum("storage_byte_seconds")}


def usage_totals_by_account(*, account_public_keys: list[str], start: dt.datetime,
                            end: dt.datetime) -> dict[str, dict[str, Any]]:
    """``usage_totals`` of many accounts over the same hours, one grouped query per 500 accounts; every account
    asked is in the answer (zeros when it has no row)."""
    out = {key: dict.fromkeys(_TOTALS_AGGREGATES, 0) for key in account_public_keys}
    for i in range(0, len(account_public_keys), 500):
        rows = (UsageHour.objects.filter(account_public_key__in=account_public_keys[i:i + 500],
                                         hour__gte=metering.hour_floor(start), hour__lt=end)
                .values("account_public_key").annotate(**_TOTALS_AGGREGATES).order_by())
        for row in rows:
            account = row.pop("account_public_key")
            out[account] = {key: value or 0 for key, value in row.items()}
    return out


def usage_document(*, account_public_key: str, window: str, plan: str, data_bytes: int, used_bytes: int,
                   now: dt.datetime | None = None) -> dict[str, Any]:
    """The usage document of one account (the same for ``ngs.usage`` and ``GET .../usage``)."""
    now = now or timezone.now()
    totals = usage_totals(account_public_key=account_public_key, start=now - WINDOWS[window], end=now)
    return document_build(account_public_key=account_public_key, window=window, plan=plan, data_bytes=data_bytes,
                     used_bytes=used_bytes, now=now, totals=totals)


def document_build(*, account_public_key: str, window: str, plan: str, data_bytes: int, used_bytes: int,
              now: dt.datetime, totals: dict[str, Any], current: dict[str, int] | None = None) -> dict[str, Any]:
    start = now - WINDOWS[window]
    if current is None:
        conns, leafnodes = _connected(account_public_key, now)
        current = {"conns": conns, "leafnodes": leafnodes,
                   "storage": storage_current(account_public_key=account_public_key, now=now)}
    return {
        "account": account_public_key,
        "window": window,
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": now.isoformat().replace("+00:00", "Z"),
        "sent": {"msgs": totals["sent_msgs"], "bytes": totals["sent_bytes"]},
        "received": {"msgs": totals["received_msgs"], "bytes": totals["received_bytes"]},
        "connections": {"current": current["conns"], "peak": totals["peak"], "leafnodes": current["leafnodes"]},
        "plan": plan,
        "quota": {"data_bytes": data_bytes, "used_bytes": used_bytes},
        "jetstream": {"storage_bytes": current["storage"],
                      "gib_hours": round(totals["storage_byte_seconds"] / GIB_HOUR, 9)},
    }


def _terms(plan: Plan) -> PlanTerms:
    return PlanTerms(name=plan.name, title=plan.title, ceilings=plan.account_limits(),
                     accounts_per_team=plan.accounts_per_team, data_bytes=plan.data_bytes,
                     base_price_cents=plan.base_price_cents, overage_cents_per_gib=plan.overage_cents_per_gib)


def plan_terms_get(name: str) -> PlanTerms | None:
    """The terms of the plan called ``name`` (what accounts_service's plan hook asks), or None if none."""
    plan = Plan.objects.filter(name=name).first()
    return None if plan is None else _terms(plan)


def plan_terms_all() -> list[PlanTerms]:
    return [_terms(plan) for plan in Plan.objects.all()]


def period_start(now: dt.datetime | None = None) -> dt.datetime:
    """The start of the current billing period (the calendar month, UTC)."""
    now = now or timezone.now()
    return now.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def account_usage(*, account_public_key: str, plan_name: str, window: str, now: dt.datetime | None = None,
                  team_id: int | None = None) -> dict[str, Any]:
    """The usage document of an account on ``plan_name``: ``window``'s traffic, the month's data against the
    plan's allowance (sent plus received bytes; -1 for an unlimited or operator-managed account), and the month's
    bill so far and its estimate (``bill``: cents of its currency; docs/BILLING.md). The window's totals and the
    month's are read in one query. ``team_id``, when the caller has it, spares the bill a read."""
    now = now or timezone.now()
    plan = Plan.objects.filter(name=plan_name).first() if plan_name else None
    totals, month = _totals_many(account_public_key, [(now - WINDOWS[window], now), (period_start(now), now)])
    document = document_build(account_public_key=account_public_key, window=window, plan=plan_name,
                         data_bytes=plan.data_bytes if plan is not None else -1,
                         used_bytes=month["sent_bytes"] + month["received_bytes"], now=now, totals=totals)
    document["bill"] = _bill_summary(account_public_key=account_public_key, plan=plan, month=month, now=now,
                                     team_id=team_id)
    return document


def _bill_summary(*, account_public_key: str, plan: Plan | None, month: dict[str, Any], now: dt.datetime,
                  team_id: int | None) -> dict[str, Any]:
    """The month's bill so far and its estimate, from the month's totals already read (the bill of an account on
    one plan all month asks exactly these hours)."""
    from billing.bills import Known, account_bill, bill_summary  # (billing.bills reads the ledger through here)
    from billing.pricing import hour_ceil

    known = Known(plans={plan.name: plan} if plan is not None else {},
                  usage={(period_start(now), hour_ceil(now)): month})
    bill, _ = account_bill(account_public_key=account_public_key, now=now, team_id=team_id, known=known)
    return bill_summary(bill)


def month_used_bytes(*, account_public_key: str, now: dt.datetime | None = None) -> int:
    """What counts against the monthly data allowance: sent plus received bytes since the period started."""
    now = now or timezone.now()
    month = usage_totals(account_public_key=account_public_key, start=period_start(now), end=now)
    return month["sent_bytes"] + month["received_bytes"]


# ------------------------------------------------------------------------------------------------
# Charts and banners (the dashboard)
# ------------------------------------------------------------------------------------------------

CHARTS = {"24h": (24, dt.timedelta(hours=1)), "7d": (7 * 24, dt.timedelta(hours=1)), "30d": (30, dt.timedelta(days=1))}


def usage_series(*, account_public_key: str, chart: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Zero-filled buckets for a chart, oldest first: the last 24 or 168 hours (hourly), or 30 days (daily, UTC);
    each with sent and received msgs and bytes. The current bucket is the last one."""
    now = now or timezone.now()
    count, step = CHARTS[chart]
    last = metering.hour_floor(now)
    if step == dt.timedelta(days=1):
        last = last.replace(hour=0)
    first = last - step * (count - 1)
    buckets = {first + step * i: {"start": first + step * i, "sent_msgs": 0, "sent_bytes": 0, "received_msgs": 0,
                                  "received_bytes": 0} for i in range(count)}
    daily = step == dt.timedelta(days=1)
    model, column = (UsageDay, "day") if daily else (UsageHour, "hour")  # 30 day rows, not 720 hours
    rows = model.objects.filter(account_public_key=account_public_key, **{f"{column}__gte": first,
                                                                          f"{column}__lt": last + step})
    for row in rows.values(column, "sent_msgs", "sent_bytes", "received_msgs", "received_bytes"):
        bucket = buckets.get(row.pop(column).astimezone(dt.UTC))
        if bucket is not None:
            for field, value in row.items():
                bucket[field] += value
    return list(buckets.values())


def quota_notice_latest(*, account_public_key: str, now: dt.datetime | None = None) -> QuotaNotice | None:
    """The highest threshold the account crossed this period (80, 90 or 100 %), or None."""
    return (QuotaNotice.objects.filter(account_public_key=account_public_key, period_start=period_start(now))
            .order_by("-threshold").first())


# ------------------------------------------------------------------------------------------------
# Plan change: what the owner confirms
# ------------------------------------------------------------------------------------------------

# (field, label, kind): "bytes" and "count" treat -1 as unlimited; money fields are formatted by their own rule.
PLAN_COMPARED: tuple[tuple[str, str, str], ...] = (
    ("base_price_cents", "Price / month", "money"),
    ("data_bytes", "Data / month", "bytes"),
    ("overage_cents_per_gib", "Overage / GiB", "overage"),
    ("connection_hours", "Connection-hours / month included", "count"),
    ("connection_cents_per_1000_hours", "Connection-hours past it / 1,000", "rate"),
    ("storage_gib_hours", "JetStream GiB-hours / month included", "count"),
    ("storage_cents_per_1000_gib_hours", "JetStream GiB-hours past it / 1,000", "rate"),
    ("conn", "Connections", "count"),
    ("payload", "Max payload", "bytes"),
    ("subs", "Subscriptions", "count"),
    ("leaf", "Leafnode connections", "count"),
    ("imports", "Imports", "count"),
    ("exports", "Exports", "count"),
    ("mem_storage", "JetStream memory", "bytes"),
    ("disk_storage", "JetStream disk", "bytes"),
    ("streams", "Streams", "count"),
    ("consumer", "Consumers", "count"),
    ("accounts_per_team", "Accounts per team", "count"),
)


def _plan_value_text(value: int, kind: str) -> str:
    if kind == "money":
        return f"${cents_text(value)}"
    if kind == "overage":
        return f"${cents_text(value)}" if value else "none (suspends at 100%)"
    if kind == "rate":
        return f"${cents_text(value)}" if value else "not billed"
    if value < 0:
        return "unlimited"
    return iec(value) if kind == "bytes" else f"{value:,}"


def _plan_rank(value: int, kind: str) -> float:
    """How much the value gives (more is better for limits; for money, more costs more): -1 is unlimited."""
    return float("inf") if value < 0 and kind in ("bytes", "count") else float(value)


def _change_note(*, before: int, after: int, kind: str, up: bool) -> str:
    if kind == "money":
        return "costs more" if up else "costs less"
    if kind == "rate":
        if not before:
            return "billed past the allowance"
        return "no longer billed" if not after else "costs more" if up else "costs less"
    if kind == "overage":
        if not before:
            return "billed per GiB instead of suspending"
        if not after:
            return "suspends instead of billing"
        return "higher" if up else "lower"
    return "more" if up else "less"


def plan_change_rows(*, current: Plan | None, new: Plan) -> list[dict[str, Any]]:
    """Each compared term of the current plan and the new one, as text, and whether (and which way) it changes.
    ``current`` is None when the account's plan is no longer in the table."""
    rows = []
    for field, label, kind in PLAN_COMPARED:
        after = getattr(new, field)
        before = getattr(current, field) if current is not None else None
        change = note = ""
        if before is not None and before != after:
            change = "up" if _plan_rank(after, kind) > _plan_rank(before, kind) else "down"
            note = _change_note(before=before, after=after, kind=kind, up=change == "up")
        rows.append({"field": field, "label": label, "change": change, "note": note,
                     "before": _plan_value_text(before, kind) if before is not None else "—",
                     "after": _plan_value_text(after, kind)})
    return rows


PRICED_TERMS = ("base_price_cents", "data_bytes", "overage_cents_per_gib", "connection_hours",
                "connection_cents_per_1000_hours", "storage_gib_hours", "storage_cents_per_1000_gib_hours")


def plan_terms_key(plan: Plan) -> str:
    """The priced terms an owner confirms: a confirmation of other terms (staff edited the plan meanwhile) is stale."""
    return ":".join(str(getattr(plan, field)) for field in PRICED_TERMS)
