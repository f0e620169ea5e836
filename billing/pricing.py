"""Pure pricing of a billing period (no Django): the stretches of a period an account held each plan, their lines
per priced dimension, the month to date and the estimate. docs/BILLING.md explains the model; in short:

- Money is integer minor units (cents) of one currency. Quantities are integers in their base unit: seconds held,
  bytes, connection-seconds, byte-seconds. Nothing here is a float.
- A plan held for part of the period costs its base price times the seconds held over the period's seconds, and
  grants its allowances prorated the same way (rounded half up to the base unit once).
- Each line's amount is the exact rational product, rounded once, half up, to a whole cent; a bill's total is the
  sum of its lines, so the lines always add up to the total.
- The estimate is the month to date plus the account's average usage rate so far (per second held this month)
  carried over the rest of the month, on the plan it holds now.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from billing.units import GIB

HOUR = 3600
SHOWN_PLACES = Decimal("0.000001")  # quantities are shown to 6 decimals; the exact figure is the integer beside it


class Kind(StrEnum):
    """What a line bills. Data lines were called ``overage`` before every dimension was priced."""

    BASE = "base"
    DATA = "data"
    CONNECTIONS = "connections"
    STORAGE = "storage"


@dataclass(frozen=True)
class Meter:
    """How one dimension is measured (an integer base unit), granted (the plan's allowance field counts
    ``allowance_unit`` base units) and priced (a unit price is for ``price_unit`` base units)."""

    kind: Kind
    measure_unit: str
    allowance_unit: int
    price_unit: int
    shown_unit: int  # base units in one unit of the shown quantity
    shown_label: str
    price_label: str
    title: str


METERS: dict[Kind, Meter] = {
    Kind.DATA: Meter(Kind.DATA, "byte", 1, GIB, GIB, "GiB", "GiB", "Data (sent + received)"),
    Kind.CONNECTIONS: Meter(Kind.CONNECTIONS, "connection-second", HOUR, 1000 * HOUR, HOUR, "connection-hours",
                            "1,000 connection-hours", "Connection-hours"),
    Kind.STORAGE: Meter(Kind.STORAGE, "byte-second", GIB * HOUR, 1000 * GIB * HOUR, GIB * HOUR, "GiB-hours",
                        "1,000 GiB-hours", "JetStream storage"),
}
BASE_UNIT = "second"  # a base line measures the seconds the plan was held


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero (both integers exact)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    return sign * ((2 * abs(numerator) + denominator) // (2 * denominator))


def cents_text(cents: int) -> str:
    """Integer minor units as a decimal with thousands separators, without floats: 123456 -> "1,234.56"."""
    sign = "-" if cents < 0 else ""
    major, minor = divmod(abs(int(cents)), 100)
    return f"{sign}{major:,}.{minor:02d}"


def whole_seconds(value: float | int | Decimal) -> int:
    """A ledger figure kept as a float (connection-seconds) as whole seconds, rounded half up once."""
    return int(Decimal(value).to_integral_value(rounding=ROUND_HALF_UP))


def shown(amount: int, unit: int) -> Decimal:
    """``amount / unit`` to 6 decimals, half up: for reading only, never for computing money."""
    return (Decimal(amount) / Decimal(unit)).quantize(SHOWN_PLACES, rounding=ROUND_HALF_UP)


def seconds(delta: dt.timedelta) -> int:
    return delta.days * 86400 + delta.seconds  # whole seconds: segment bounds are whole seconds already


def second_floor(at: dt.datetime) -> dt.datetime:
    return at.replace(microsecond=0)


def period_start(at: dt.datetime) -> dt.datetime:
    """The start of the billing period holding ``at``: the calendar month, UTC."""
    return at.astimezone(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def period_next(start: dt.datetime) -> dt.datetime:
    """The start of the period after the one starting at ``start``."""
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


# ------------------------------------------------------------------------------------------------
# Plans and usage as plain values
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rates:
    """A plan's base price and, per dimension, its monthly allowance (-1 unlimited) and unit price in cents
    (0: not priced; the plan's limits bound it and the base price covers it)."""

    plan: str
    title: str
    base_cents: int = 0
    data_bytes: int = -1
    data_cents_per_gib: int = 0
    connection_hours: int = -1
    connection_cents_per_1000_hours: int = 0
    storage_gib_hours: int = -1
    storage_cents_per_1000_gib_hours: int = 0

    def priced(self) -> list[tuple[Meter, int, int]]:
        """(meter, monthly allowance in the allowance field's unit, unit cents) of each dimension with a price."""
        terms = ((Kind.DATA, self.data_bytes, self.data_cents_per_gib),
                 (Kind.CONNECTIONS, self.connection_hours, self.connection_cents_per_1000_hours),
                 (Kind.STORAGE, self.storage_gib_hours, self.storage_cents_per_1000_gib_hours))
        return [(METERS[kind], allowance, price) for kind, allowance, price in terms if price > 0]


@dataclass(frozen=True)
class Usage:
    """What an account used, in base units: bytes sent plus received, connection-seconds, byte-seconds stored."""

    data_bytes: int = 0
    connection_seconds: int = 0
    storage_byte_seconds: int = 0

    def of(self, kind: Kind) -> int:
        return {Kind.DATA: self.data_bytes, Kind.CONNECTIONS: self.connection_seconds,
                Kind.STORAGE: self.storage_byte_seconds}[kind]

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.data_bytes + other.data_bytes, self.connection_seconds + other.connection_seconds,
                     self.storage_byte_seconds + other.storage_byte_seconds)

    def scaled(self, numerator: int, denominator: int) -> Usage:
        """Each figure times numerator/denominator, rounded half up to the base unit."""
        return Usage(*(round_half_up(v * numerator, denominator)
                       for v in (self.data_bytes, self.connection_seconds, self.storage_byte_seconds)))


@dataclass(frozen=True)
class Line:
    """One line of a bill: the base price of a plan for the seconds it was held, or one priced dimension's use
    past the prorated allowance. ``measured``, ``included`` and ``billed`` are integers in ``measure_unit``."""

    kind: Kind
    plan: str
    title: str
    start: dt.datetime
    end: dt.datetime
    measure_unit: str
    measured: int
    included: int
    billed: int
    unit_cents: int
    price_label: str
    quantity: Decimal  # ``billed`` in shown units (months held, GiB, connection-hours, GiB-hours), 6 decimals
    shown_label: str
    amount_cents: int


def total(lines: Iterable[Line]) -> int:
    """A bill's total: the sum of its lines' (already rounded) amounts, so lines and total always agree."""
    return sum(line.amount_cents for line in lines)


# ------------------------------------------------------------------------------------------------
# Segments: which plan an account held when, and which hours of the ledger belong to each
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A stretch [start, end) of the period during which the account held one plan (whole seconds). ``open``: no
    later change was recorded, so the plan is still held at ``end``."""

    plan: str
    start: dt.datetime
    end: dt.datetime
    open: bool = False


def segments_from_spans(spans: Sequence[tuple[dt.datetime, str]], *, start: dt.datetime,
                        end: dt.datetime) -> list[Segment]:
    """The plan history ``spans`` ((at, plan) in the order written; plan "" for none: deleted or off the plans)
    cut to [start, end). A change takes effect from the whole second it was made in; of several changes within
    one second the last counts. Adjacent stretches of the same plan are one segment. The plan held at ``end``
    is kept even when it started there (an empty, open segment: the estimate of a month just begun)."""
    points: list[tuple[dt.datetime, str]] = []
    for at, plan in spans:
        at = max(second_floor(at), start)
        if at > end:
            continue
        if points and points[-1][0] == at:
            points[-1] = (at, plan)
        else:
            points.append((at, plan))
    out: list[Segment] = []
    for i, (at, plan) in enumerate(points):
        last = i + 1 == len(points)
        stop = end if last else points[i + 1][0]
        if not plan or stop < at or (stop == at and not last):  # the plan held now, even from this very second
            continue
        if out and out[-1].plan == plan and out[-1].end == at:
            out[-1] = replace(out[-1], end=stop, open=last)
        else:
            out.append(Segment(plan=plan, start=at, end=stop, open=last))
    return out


def _hour_floor(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def hour_ceil(at: dt.datetime) -> dt.datetime:
    floor = _hour_floor(at)
    return floor if floor == at else floor + dt.timedelta(hours=1)


def segment_hours(segments: Sequence[Segment]) -> list[tuple[dt.datetime, dt.datetime]]:
    """The ledger hours (rows keyed by their start, as [first, stop)) whose usage each segment is billed for.
    An hour in which the plan changed belongs to the plan held last in it; an hour with no plan at all is not
    billed. Every hour is in at most one segment, so no usage is billed twice."""
    out = []
    for i, seg in enumerate(segments):
        stop = hour_ceil(seg.end)
        if i + 1 < len(segments):
            stop = min(stop, _hour_floor(segments[i + 1].start))
        first = _hour_floor(seg.start)
        out.append((first, max(first, stop)))
    return out


# ------------------------------------------------------------------------------------------------
# Lines
# ------------------------------------------------------------------------------------------------


def segment_lines(*, rates: Rates, usage: Usage, start: dt.datetime, end: dt.datetime, period_seconds: int,
                  allowance_end: dt.datetime | None = None) -> list[Line]:
    """The lines of one plan held over [start, end): its base price prorated by the seconds held, then each priced
    dimension's use past its allowance, prorated over [start, ``allowance_end`` or end)."""
    held = seconds(end - start)
    granted = seconds((allowance_end or end) - start)
    lines = [Line(kind=Kind.BASE, plan=rates.plan, title=rates.title, start=start, end=end, measure_unit=BASE_UNIT,
                  measured=held, included=0, billed=held, unit_cents=rates.base_cents, price_label="month",
                  quantity=shown(held, period_seconds), shown_label="months",
                  amount_cents=round_half_up(rates.base_cents * held, period_seconds))]
    for meter, allowance, unit_cents in rates.priced():
        measured = usage.of(meter.kind)
        if allowance < 0:  # an unlimited allowance leaves nothing to bill (Plan.clean refuses a price with it)
            included, billed = -1, 0
        else:
            included = round_half_up(allowance * meter.allowance_unit * granted, period_seconds)
            billed = max(0, measured - included)
        lines.append(Line(kind=meter.kind, plan=rates.plan, title=rates.title, start=start, end=end,
                          measure_unit=meter.measure_unit, measured=measured, included=included, billed=billed,
                          unit_cents=unit_cents, price_label=meter.price_label,
                          quantity=shown(billed, meter.shown_unit), shown_label=meter.shown_label,
                          amount_cents=round_half_up(billed * unit_cents, meter.price_unit)))
    return lines


@dataclass(frozen=True)
class Held:
    """A segment with its plan's rates and the usage of its hours."""

    segment: Segment
    rates: Rates
    usage: Usage


def bill_lines(held: Sequence[Held], *, period_start: dt.datetime, period_end: dt.datetime) -> list[Line]:
    """An account's lines for segments that are over (an invoice): each plan for the seconds it was held."""
    period_seconds = seconds(period_end - period_start)
    return [line for h in held if h.segment.end > h.segment.start
            for line in segment_lines(rates=h.rates, usage=h.usage, start=h.segment.start, end=h.segment.end,
                                      period_seconds=period_seconds)]


@dataclass(frozen=True)
class Bill:
    """An account's month so far: the lines to date, the lines of the estimate, and their totals (cents)."""

    to_date: list[Line]
    estimate: list[Line]

    @property
    def to_date_cents(self) -> int:
        return total(self.to_date)

    @property
    def estimate_cents(self) -> int:
        return total(self.estimate)


def bill_month(held: Sequence[Held], *, now: dt.datetime, period_start: dt.datetime,
               period_end: dt.datetime) -> Bill:
    """The month to date and the estimate at ``now`` (segments cut at now; the last one may still be held).

    To date: each plan's base price for the seconds held so far; the plan held now grants its allowances for the
    rest of the month too (so the figure only grows while the plan stays). Estimate: the plan held now kept to the
    period's end, and the month's usage so far per second held carried linearly over the seconds left."""
    now = second_floor(now)
    period_seconds = seconds(period_end - period_start)
    if not held:
        return Bill([], [])
    current = held[-1] if held[-1].segment.open else None
    past = held[:-1] if current is not None else held
    closed = bill_lines(past, period_start=period_start, period_end=period_end)
    if current is None:
        return Bill(closed, closed)
    seg = current.segment
    to_date = closed + segment_lines(rates=current.rates, usage=current.usage, start=seg.start, end=now,
                                     period_seconds=period_seconds, allowance_end=period_end)
    held_seconds = sum(seconds(h.segment.end - h.segment.start) for h in held)
    used = sum((h.usage for h in held), Usage())
    left = seconds(period_end - now)
    projected = used.scaled(left, held_seconds) if held_seconds > 0 else Usage()
    estimate = closed + segment_lines(rates=current.rates, usage=current.usage + projected, start=seg.start,
                                      end=period_end, period_seconds=period_seconds)
    return Bill(to_date, estimate)
