"""Reads of what accounts and teams owe: the plan history (accounts_service's ``PlanSpan``) cut into segments, each
segment's usage from the ledger, priced by the pure ``billing.pricing``. Invoices, the month to date and the estimate
(web, REST, ``ngs.usage``) all come from here, so they cannot disagree."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from accounts_service.models import Account, PlanSpan
from billing import pricing
from billing.models import Plan
from billing.pricing import METERS, Kind
from billing.selectors import usage_totals, usage_totals_by_account

log = logging.getLogger(__name__)


def currency() -> str:
    """The currency plans are priced in (ISO 4217; amounts are integers of its minor unit)."""
    return settings.BILLING_CURRENCY


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------
# What an account held in a period, with each segment's usage
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountHeld:
    """An account a team held on some plan during a period: its segments with their rates and usage."""

    public_key: str
    name: str
    held: list[pricing.Held]

    @property
    def plan(self) -> str:
        return self.held[-1].segment.plan if self.held else ""


@dataclass(frozen=True)
class Known:
    """Reads a caller already made, so a bill does not make them again (the usage document's plan and month):
    plans by name, and ``usage_totals`` results by the hours they cover, (first hour, hour after the last)."""

    plans: dict[str, Plan] = field(default_factory=dict)
    usage: dict[tuple[dt.datetime, dt.datetime], dict[str, Any]] = field(default_factory=dict)


NOTHING_KNOWN = Known()


def segment_usage(*, account_public_key: str, first: dt.datetime, stop: dt.datetime,
                  known: Known = NOTHING_KNOWN) -> pricing.Usage:
    """The ledger's usage in the hours [first, stop), in the pricing's integer base units."""
    if stop <= first:
        return pricing.Usage()
    totals = known.usage.get((first, stop))
    if totals is None:
        totals = usage_totals(account_public_key=account_public_key, start=first, end=stop)
    return pricing.Usage(data_bytes=int(totals["sent_bytes"]) + int(totals["received_bytes"]),
                         connection_seconds=pricing.whole_seconds(totals["connection_seconds"]),
                         storage_byte_seconds=int(totals["storage_byte_seconds"]))


def account_held_of(*, public_key: str, spans: list[PlanSpan], start: dt.datetime, end: dt.datetime,
                  plans: dict[str, Plan], known: Known = NOTHING_KNOWN) -> AccountHeld | None:
    segments = pricing.segments_from_spans([(s.at, s.plan) for s in spans], start=start, end=end)
    held = []
    for segment, (first, stop) in zip(segments, pricing.segment_hours(segments), strict=True):
        plan = plans.get(segment.plan)
        if plan is None:  # a plan staff deleted: nothing to price it by; say so rather than bill a guess
            log.warning("billing: account %s was on plan %r, which no longer exists", public_key, segment.plan)
            continue
        held.append(pricing.Held(segment=segment, rates=plan.rates(),
                                 usage=segment_usage(account_public_key=public_key, first=first, stop=stop,
                                                     known=known)))
    if not held:
        return None
    return AccountHeld(public_key=public_key, name=spans[-1].account_name, held=held)


def _by_account(spans: Iterable[PlanSpan]) -> dict[str, list[PlanSpan]]:
    out: dict[str, list[PlanSpan]] = {}
    for span in spans:
        out.setdefault(span.account_public_key, []).append(span)
    return out


def until(end: dt.datetime) -> dt.datetime:
    """Spans recorded before this count: a change made within ``end``'s second takes effect from that second."""
    return pricing.second_floor(end) + dt.timedelta(seconds=1)


def team_accounts_held(*, team_id: int, start: dt.datetime, end: dt.datetime) -> list[AccountHeld]:
    """The accounts ``team_id`` held on a plan at some time in [start, end), in the order it got them (an account
    deleted during the period included). The hours of accounts that share a range (every account on one plan all
    month shares the month's) are summed in one grouped query per range, not one per account."""
    plans = {p.name: p for p in Plan.objects.all()}
    spans = _by_account(PlanSpan.objects.filter(team_id=team_id, at__lt=until(end)).order_by("at", "pk"))
    ranges: dict[tuple[dt.datetime, dt.datetime], list[str]] = {}
    for key, rows in spans.items():
        segments = pricing.segments_from_spans([(s.at, s.plan) for s in rows], start=start, end=end)
        for first, stop in pricing.segment_hours(segments):
            if stop > first:
                ranges.setdefault((first, stop), []).append(key)
    known: dict[str, Known] = {key: Known(usage={}) for key in spans}
    for (first, stop), keys in ranges.items():
        for key, totals in usage_totals_by_account(account_public_keys=keys, start=first, end=stop).items():
            known[key].usage[(first, stop)] = totals
    found = (account_held_of(public_key=key, spans=rows, start=start, end=end, plans=plans, known=known[key])
             for key, rows in spans.items())
    return [a for a in found if a is not None]


def account_held(*, account_public_key: str, start: dt.datetime, end: dt.datetime, team_id: int | None = None,
                 known: Known = NOTHING_KNOWN) -> AccountHeld | None:
    if team_id is None:
        team_id = Account.objects.filter(public_key=account_public_key).values_list("team_id", flat=True).first()
    spans = PlanSpan.objects.filter(account_public_key=account_public_key, at__lt=until(end)).order_by("at", "pk")
    if team_id is not None:
        spans = spans.filter(team_id=team_id)  # (team, at) is indexed
    rows = list(spans)
    if not rows:
        return None
    names = {r.plan for r in rows if r.plan}
    plans = {name: plan for name, plan in known.plans.items() if name in names}
    if names - set(plans):
        plans |= {p.name: p for p in Plan.objects.filter(name__in=names - set(plans))}
    return account_held_of(public_key=account_public_key, spans=rows, start=start, end=end, plans=plans, known=known)


# ------------------------------------------------------------------------------------------------
# The month to date and the estimate
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime

    @classmethod
    def at(cls, now: dt.datetime | None = None) -> Period:
        now = pricing.second_floor(now or timezone.now())
        start = pricing.period_start(now)
        return cls(start=start, end=pricing.period_next(start), now=now)


def month_bill(account: AccountHeld | None, period: Period) -> pricing.Bill:
    if account is None:
        return pricing.Bill([], [])
    return pricing.bill_month(account.held, now=period.now, period_start=period.start, period_end=period.end)


def account_bill(*, account_public_key: str, now: dt.datetime | None = None, team_id: int | None = None,
                 known: Known = NOTHING_KNOWN) -> tuple[pricing.Bill, Period]:
    """An account's month to date and estimate at ``now`` (default: now)."""
    period = Period.at(now)
    held = account_held(account_public_key=account_public_key, start=period.start, end=period.now, team_id=team_id,
                        known=known)
    return month_bill(held, period), period


def bill_summary(bill: pricing.Bill) -> dict[str, Any]:
    """The ``bill`` of the usage document (``ngs.usage`` and ``GET .../usage``): cents of ``currency``."""
    return {"to_date": bill.to_date_cents, "estimate": bill.estimate_cents, "currency": currency()}


def line_description(*, kind: str, title: str, account_name: str) -> str:
    if kind == Kind.BASE:
        return f"{title} plan, account {account_name}"
    return f"{METERS[Kind(kind)].title} on {title}, account {account_name}"


def line_document(line: pricing.Line, *, account_name: str) -> dict[str, Any]:
    """A computed line as the API shows it (the same keys as an invoice's line, less its position)."""
    return {"kind": str(line.kind), "description": line_description(kind=line.kind, title=line.title,
                                                                    account_name=account_name),
            "plan": line.plan, "start": iso(line.start), "end": iso(line.end), "measure_unit": line.measure_unit,
            "measured": line.measured, "included": line.included, "billed": line.billed,
            "quantity": str(line.quantity), "quantity_unit": line.shown_label, "unit_cents": line.unit_cents,
            "unit": line.price_label, "amount_cents": line.amount_cents}


def _account_document(account: AccountHeld, bill: pricing.Bill) -> dict[str, Any]:
    return {"account": account.public_key, "name": account.name, "plan": account.plan,
            "to_date": bill.to_date_cents, "estimate": bill.estimate_cents,
            "lines": [line_document(line, account_name=account.name) for line in bill.to_date],
            "estimate_lines": [line_document(line, account_name=account.name) for line in bill.estimate]}


def _document(accounts: list[AccountHeld], period: Period) -> dict[str, Any]:
    docs = [_account_document(a, month_bill(a, period)) for a in accounts]
    return {"period": {"start": iso(period.start), "end": iso(period.end)}, "at": iso(period.now),
            "currency": currency(), "to_date": sum(d["to_date"] for d in docs),
            "estimate": sum(d["estimate"] for d in docs), "accounts": docs}


def account_bill_document(*, account: Account, now: dt.datetime | None = None) -> dict[str, Any]:
    """The account's month: to date and estimate with their lines (``GET /api/v1/accounts/{pk}/bill``, the web)."""
    period = Period.at(now)
    held = account_held(account_public_key=account.public_key, start=period.start, end=period.now,
                        team_id=account.team_id)
    return {"account": account.public_key, **_document([held] if held else [], period)}


def team_bill_document(*, team_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """The team's month: every account it held this month (deleted ones too, as the invoice will bill them), each
    with its month to date and estimate; the team's figures are their sums."""
    period = Period.at(now)
    return {"team": team_id, **_document(team_accounts_held(team_id=team_id, start=period.start, end=period.now),
                                         period)}


# ------------------------------------------------------------------------------------------------
# For people: the lines side by side, quantities in the units they are priced in
# ------------------------------------------------------------------------------------------------


def _number(value) -> str:
    """A Decimal without trailing zeros, never in exponent form: 12.500000 -> "12.5", 10.000000 -> "10"."""
    text = format(value.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".")


def quantity_text(kind: str, amount: int) -> str:
    """``amount`` (in the kind's base unit) as a person reads it: days held, GiB, connection-hours, GiB-hours."""
    if amount < 0:
        return "unlimited"
    if kind == Kind.BASE:
        return f"{_number(pricing.shown(amount, 86400))} days"
    meter = METERS[Kind(kind)]
    return f"{_number(pricing.shown(amount, meter.shown_unit))} {meter.shown_label}"


def bill_rows(bill: pricing.Bill, *, account_name: str = "") -> list[dict[str, Any]]:
    """Each line of the estimate beside the same line to date (same plan, start and kind): what it is, what was
    used and included so far, and both amounts in cents."""
    to_date = {(line.kind, line.plan, line.start): line for line in bill.to_date}
    rows = []
    for line in bill.estimate:
        now = to_date.get((line.kind, line.plan, line.start))
        rows.append({
            "kind": str(line.kind), "plan": line.plan, "start": line.start, "end": line.end,
            "label": f"{line.title} plan" if line.kind == Kind.BASE else METERS[line.kind].title,
            "used": quantity_text(line.kind, now.measured if now is not None else 0),
            "used_exact": f"{now.measured if now is not None else 0:,} {line.measure_unit}s",
            "included": "" if line.kind == Kind.BASE else quantity_text(line.kind, line.included),
            "price": f"{pricing.cents_text(line.unit_cents)} / {line.price_label}",
            "to_date": now.amount_cents if now is not None else 0, "estimate": line.amount_cents,
            "estimate_used": quantity_text(line.kind, line.measured),
        })
    return rows


def team_bill_rows(*, team_id: int, now: dt.datetime | None = None) -> dict[str, Any]:
    """The team's month per account, for its page: each account's to date and estimate, and the sums."""
    document = team_bill_document(team_id=team_id, now=now)
    live = set(Account.objects.filter(public_key__in=[a["account"] for a in document["accounts"]])
               .values_list("public_key", flat=True))
    for account in document["accounts"]:
        account["live"] = account["account"] in live
    return document
