"""The pure pricing of a billing period (billing/pricing.py): rounding, proration by the seconds each plan was held,
allowances, the hours each plan is billed for, the month to date and the estimate. Examples with exact figures, then
properties over random plan histories (hypothesis): the lines sum to the total, each amount is within half a cent of
the exact figure, no hour is billed twice, the estimate is never below the month to date and meets the invoice at the
period's end."""

from __future__ import annotations

import datetime as dt
import itertools
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from billing import pricing
from billing.pricing import Held, Kind, Rates, Segment, Usage, round_half_up, segment_lines
from billing.units import GIB

UTC = dt.UTC
NOV = dt.datetime(2026, 11, 1, tzinfo=UTC)
DEC = dt.datetime(2026, 12, 1, tzinfo=UTC)
NOV_SECONDS = 30 * 86400
HOUR = dt.timedelta(hours=1)

PRO = Rates(plan="pro", title="Pro", base_cents=4900, data_bytes=10 * GIB, data_cents_per_gib=40,
            connection_hours=1000, connection_cents_per_1000_hours=8, storage_gib_hours=100,
            storage_cents_per_1000_gib_hours=20)
DEV = Rates(plan="developer", title="Developer", base_cents=900, data_bytes=GIB, data_cents_per_gib=0,
            connection_hours=500, connection_cents_per_1000_hours=10)
FREE = Rates(plan="free", title="Free")


def _at(days: float = 0, **kw) -> dt.datetime:
    return NOV + dt.timedelta(days=days, **kw)


# ------------------------------------------------------------------------------------------------
# Rounding and formatting
# ------------------------------------------------------------------------------------------------


def test_round_half_up_is_exact_integer_arithmetic():
    assert [round_half_up(n, 10) for n in (4, 5, 6, 14, 15, 25, 0)] == [0, 1, 1, 1, 2, 3, 0]
    assert [round_half_up(n, 10) for n in (-4, -5, -15)] == [0, -1, -2]  # halves away from zero
    big = 10**30 + 5  # far past a float's 53 bits: still exact
    assert round_half_up(big, 10) == 10**29 + 1
    assert round_half_up(2 * 3600 * GIB * 1000 - 1, 2 * 3600 * GIB * 1000) == 1


def test_cents_text_uses_no_float():
    assert [pricing.cents_text(v) for v in (0, 5, 99, 100, 123456, -250, 10**17 + 1)] == [
        "0.00", "0.05", "0.99", "1.00", "1,234.56", "-2.50", "1,000,000,000,000,000.01"]


def test_whole_seconds_rounds_the_ledgers_float_once():
    assert [pricing.whole_seconds(v) for v in (0, 1.5, 2.4999, 2.5, 3599.999999, 0.1 + 0.2)] == [0, 2, 2, 3, 3600, 0]


# ------------------------------------------------------------------------------------------------
# Lines of one plan held
# ------------------------------------------------------------------------------------------------


def test_a_whole_month_costs_the_base_price_and_half_of_it_half():
    whole = segment_lines(rates=PRO, usage=Usage(), start=NOV, end=DEC, period_seconds=NOV_SECONDS)
    assert [(line.kind, line.amount_cents) for line in whole] == [
        (Kind.BASE, 4900), (Kind.DATA, 0), (Kind.CONNECTIONS, 0), (Kind.STORAGE, 0)]
    assert whole[0].measured == whole[0].billed == NOV_SECONDS and str(whole[0].quantity) == "1.000000"
    half = segment_lines(rates=PRO, usage=Usage(), start=_at(15), end=DEC, period_seconds=NOV_SECONDS)
    assert half[0].amount_cents == 2450 and str(half[0].quantity) == "0.500000"
    third = segment_lines(rates=DEV, usage=Usage(), start=_at(20), end=DEC, period_seconds=NOV_SECONDS)
    assert third[0].amount_cents == 300  # 900 / 3 exactly
    one_second = segment_lines(rates=PRO, usage=Usage(), start=NOV, end=_at(seconds=1), period_seconds=NOV_SECONDS)
    assert one_second[0].amount_cents == 0  # 4900 / 2,592,000 of a cent rounds to nothing


def test_unpriced_dimensions_get_no_line_and_free_only_its_base():
    assert [line.kind for line in segment_lines(rates=DEV, usage=Usage(10 * GIB, 10**9, 10**15), start=NOV, end=DEC,
                                                period_seconds=NOV_SECONDS)] == [Kind.BASE, Kind.CONNECTIONS]
    free = segment_lines(rates=FREE, usage=Usage(10 * GIB), start=NOV, end=DEC, period_seconds=NOV_SECONDS)
    assert [(line.kind, line.amount_cents) for line in free] == [(Kind.BASE, 0)]


def test_usage_past_the_prorated_allowance_is_billed_exactly_and_rounded_once():
    # Held 15 of 30 days: half of each allowance. 1,000 connection-hours a month -> 500 here, as 1,800,000 s.
    usage = Usage(data_bytes=5 * GIB + GIB // 4, connection_seconds=1_800_000 + 3600 * 1234 + 1,
                  storage_byte_seconds=50 * GIB * 3600 + 1)
    lines = {line.kind: line for line in segment_lines(rates=PRO, usage=usage, start=_at(15), end=DEC,
                                                       period_seconds=NOV_SECONDS)}
    data = lines[Kind.DATA]
    assert (data.measured, data.included, data.billed) == (5 * GIB + GIB // 4, 5 * GIB, GIB // 4)
    assert str(data.quantity) == "0.250000" and data.amount_cents == 10  # 0.25 GiB at 40 cents
    conns = lines[Kind.CONNECTIONS]
    assert (conns.included, conns.billed) == (1_800_000, 3600 * 1234 + 1)
    assert conns.measure_unit == "connection-second" and conns.shown_label == "connection-hours"
    assert str(conns.quantity) == "1234.000278"  # 1 s is 0.000277... h: shown to 6 decimals, billed exactly
    assert conns.amount_cents == 10  # 1234.000277... h at 8 cents / 1,000 h = 9.872... -> 10
    storage = lines[Kind.STORAGE]
    assert (storage.included, storage.billed, storage.amount_cents) == (50 * GIB * 3600, 1, 0)


def test_an_allowance_for_the_rest_of_the_month_when_asked():
    """The month to date's open plan: its base price for the seconds so far, its allowance to the period's end."""
    lines = segment_lines(rates=PRO, usage=Usage(data_bytes=6 * GIB), start=_at(15), end=_at(20),
                          period_seconds=NOV_SECONDS, allowance_end=DEC)
    assert lines[0].amount_cents == round_half_up(4900 * 5, 30) == 817
    assert lines[1].included == 5 * GIB and lines[1].amount_cents == 40  # 1 GiB past half of 10 GiB


# ------------------------------------------------------------------------------------------------
# Segments and their hours
# ------------------------------------------------------------------------------------------------


def test_segments_from_the_plan_history():
    spans = [(_at(-40), "free"), (_at(-3), "developer"), (_at(10, microseconds=700_000), "pro"),
             (_at(12), "pro"), (_at(20, hours=3), ""), ]
    assert pricing.segments_from_spans(spans, start=NOV, end=DEC) == [
        Segment("developer", NOV, _at(10)),  # the change counts from the whole second it was made in
        Segment("pro", _at(10), _at(20, hours=3)),  # the same plan twice is one segment; deleted at day 20
    ]
    same_second = [(_at(5, microseconds=100), "pro"), (_at(5, microseconds=900), "developer")]
    assert pricing.segments_from_spans(same_second, start=NOV, end=DEC) == [
        Segment("developer", _at(5), DEC, open=True)]  # the last change of a second wins
    later = [(_at(31), "pro")]
    assert pricing.segments_from_spans(later, start=NOV, end=DEC) == []
    just_now = [(_at(3), "pro")]
    assert pricing.segments_from_spans(just_now, start=NOV, end=_at(3)) == [Segment("pro", _at(3), _at(3), open=True)]


def test_the_hour_of_a_change_is_billed_to_the_plan_held_last_in_it():
    segs = [Segment("developer", NOV, _at(3, hours=14, minutes=23)), Segment("pro", _at(3, hours=14, minutes=23), DEC)]
    assert pricing.segment_hours(segs) == [(NOV, _at(3, hours=14)), (_at(3, hours=14), DEC)]
    gap = [Segment("pro", NOV, _at(1, minutes=30)), Segment("pro", _at(1, hours=2, minutes=10), DEC)]
    assert pricing.segment_hours(gap) == [(NOV, _at(1, hours=1)), (_at(1, hours=2), DEC)]  # the 01:00 hour: no plan
    quick = [Segment("a", _at(1, minutes=10), _at(1, minutes=20)), Segment("b", _at(1, minutes=20), DEC)]
    assert pricing.segment_hours(quick) == [(_at(1), _at(1)), (_at(1), DEC)]  # a changed within its hour: none


# ------------------------------------------------------------------------------------------------
# The month to date and the estimate
# ------------------------------------------------------------------------------------------------


def test_estimate_is_the_month_so_far_carried_on_linearly():
    seg = Segment("pro", NOV, _at(10), open=True)  # a third of the month gone, on Pro all along
    usage = Usage(data_bytes=5 * GIB, connection_seconds=500 * 3600)
    bill = pricing.bill_month([Held(seg, PRO, usage)], now=_at(10), period_start=NOV, period_end=DEC)
    to_date = {line.kind: line for line in bill.to_date}
    assert to_date[Kind.BASE].amount_cents == round_half_up(4900, 3) == 1633
    assert to_date[Kind.DATA].included == 10 * GIB and to_date[Kind.DATA].billed == 0  # the month's allowance
    estimate = {line.kind: line for line in bill.estimate}
    assert estimate[Kind.BASE].amount_cents == 4900
    assert estimate[Kind.DATA].measured == 15 * GIB and estimate[Kind.DATA].amount_cents == 200  # 5 GiB past, 40 c
    assert estimate[Kind.CONNECTIONS].measured == 1500 * 3600 and estimate[Kind.CONNECTIONS].amount_cents == 4
    assert (bill.to_date_cents, bill.estimate_cents) == (1633, 4900 + 200 + 4)


def test_estimate_after_a_plan_change_and_of_a_deleted_account():
    dev = Segment("developer", NOV, _at(15))
    pro = Segment("pro", _at(15), _at(20), open=True)
    held = [Held(dev, DEV, Usage(connection_seconds=200 * 3600)), Held(pro, PRO, Usage(connection_seconds=100 * 3600))]
    bill = pricing.bill_month(held, now=_at(20), period_start=NOV, period_end=DEC)
    assert bill.to_date_cents == 450 + round_half_up(4900 * 5, 30)  # 15 days of Developer, 5 so far of Pro
    # 300 connection-hours over 20 days held: 150 more in the 10 days left, all on Pro
    estimate_conns = [line for line in bill.estimate if line.kind == Kind.CONNECTIONS]
    assert [line.measured for line in estimate_conns] == [200 * 3600, 250 * 3600]
    assert [line.included for line in estimate_conns] == [250 * 3600, 500 * 3600]  # 500 and 1,000 h, halved
    assert bill.estimate_cents == 450 + 2450  # both within their prorated allowances
    over = [Held(dev, DEV, Usage(connection_seconds=400 * 3600)), held[1]]  # 150 h past Developer's 250
    assert pricing.bill_month(over, now=_at(20), period_start=NOV, period_end=DEC).to_date_cents == 450 + 817 + 2
    deleted = [Held(Segment("pro", NOV, _at(10)), PRO, Usage(data_bytes=GIB))]
    gone = pricing.bill_month(deleted, now=_at(20), period_start=NOV, period_end=DEC)
    assert gone.to_date_cents == gone.estimate_cents == 1633  # nothing more will come


def test_a_month_just_begun_estimates_the_base_price():
    bill = pricing.bill_month([Held(Segment("pro", NOV, NOV, open=True), PRO, Usage())], now=NOV, period_start=NOV,
                              period_end=DEC)
    assert (bill.to_date_cents, bill.estimate_cents) == (0, 4900)


# ------------------------------------------------------------------------------------------------
# Properties over random plan histories
# ------------------------------------------------------------------------------------------------

PLANS = {"pro": PRO, "developer": DEV, "free": FREE,
         "metered": Rates(plan="metered", title="Metered", base_cents=1, data_bytes=0, data_cents_per_gib=7,
                          connection_hours=0, connection_cents_per_1000_hours=3, storage_gib_hours=0,
                          storage_cents_per_1000_gib_hours=999)}

rates_st = st.builds(
    Rates, plan=st.just("random"), title=st.just("Random"), base_cents=st.integers(0, 10**7),
    data_bytes=st.one_of(st.just(-1), st.integers(0, 10**13)), data_cents_per_gib=st.integers(0, 10**4),
    connection_hours=st.integers(0, 10**7), connection_cents_per_1000_hours=st.integers(0, 10**4),
    storage_gib_hours=st.integers(0, 10**6), storage_cents_per_1000_gib_hours=st.integers(0, 10**4))
usage_st = st.builds(Usage, data_bytes=st.integers(0, 10**14), connection_seconds=st.integers(0, 10**11),
                     storage_byte_seconds=st.integers(0, 10**19))
history_st = st.lists(st.tuples(st.integers(-5 * 86400, NOV_SECONDS + 86400), st.integers(0, 999_999),
                                st.sampled_from(["pro", "developer", "free", "metered", ""])), max_size=8)


def _history(raw) -> list[tuple[dt.datetime, str]]:
    return [(NOV + dt.timedelta(seconds=s, microseconds=us), plan) for s, us, plan in sorted(raw)]


def _exact(line: pricing.Line) -> Fraction:
    """The unrounded amount of a line, from its integers."""
    if line.kind == Kind.BASE:
        return Fraction(line.unit_cents * line.billed, NOV_SECONDS)
    return Fraction(line.billed * line.unit_cents, pricing.METERS[line.kind].price_unit)


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(history_st, st.lists(usage_st, min_size=9, max_size=9))
def test_invoice_lines_are_exact_to_half_a_cent_and_sum_to_the_total(raw, usages):
    held = _held(pricing.segments_from_spans(_history(raw), start=NOV, end=DEC), usages, PLANS)
    lines = pricing.bill_lines(held, period_start=NOV, period_end=DEC)
    assert pricing.total(lines) == sum(line.amount_cents for line in lines)
    for line in lines:
        assert line.amount_cents >= 0 and abs(line.amount_cents - _exact(line)) <= Fraction(1, 2)
        assert line.billed == (line.measured if line.kind == Kind.BASE else max(0, line.measured - line.included))
    # The seconds billed are exactly the seconds on a plan, without overlap, within the period.
    bases = [line for line in lines if line.kind == Kind.BASE]
    assert all(a.end <= b.start for a, b in itertools.pairwise(bases))
    assert all(NOV <= line.start < line.end <= DEC for line in bases)
    # A plan held all month in k pieces costs its base price to within k/2 cents (each piece rounded once).
    for plan, rates in PLANS.items():
        pieces = [line for line in bases if line.plan == plan]
        held_seconds = sum(line.billed for line in pieces)
        exact = Fraction(rates.base_cents * held_seconds, NOV_SECONDS)
        assert abs(sum(line.amount_cents for line in pieces) - exact) <= Fraction(len(pieces), 2)


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(history_st)
def test_every_hour_is_billed_to_at_most_one_plan_and_whole_hours_to_theirs(raw):
    segments = pricing.segments_from_spans(_history(raw), start=NOV, end=DEC)
    ranges = pricing.segment_hours(segments)
    for (first, stop), seg in zip(ranges, segments, strict=True):
        assert first == seg.start.replace(minute=0, second=0) and first <= stop <= max(first, seg.end + HOUR)
        hour = first if first == seg.start else first + HOUR
        while hour + HOUR <= seg.end:  # an hour wholly on this plan is billed to it
            assert first <= hour < stop
            hour += HOUR
    for (_, stop), (first, _) in itertools.pairwise(ranges):
        assert stop <= first


def _held(segments: list[Segment], usages: list[Usage], plans: dict[str, Rates]) -> list[Held]:
    """Each segment with a usage of its own, none when no hour is billed to it (as the ledger would give)."""
    ranges = pricing.segment_hours(segments)
    return [Held(seg, plans[seg.plan], usages[i] if ranges[i][1] > ranges[i][0] else Usage())
            for i, seg in enumerate(segments)]


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(history_st, st.integers(0, NOV_SECONDS), st.lists(usage_st, min_size=9, max_size=9), rates_st)
def test_the_estimate_is_never_below_the_month_to_date_and_meets_the_invoice_at_the_end(raw, elapsed, usages,
                                                                                          random_rates):
    plans = {**PLANS, "metered": random_rates}
    now = NOV + dt.timedelta(seconds=elapsed)
    held = _held(pricing.segments_from_spans(_history(raw), start=NOV, end=now), usages, plans)
    bill = pricing.bill_month(held, now=now, period_start=NOV, period_end=DEC)
    assert bill.to_date_cents <= bill.estimate_cents
    assert bill.to_date_cents == sum(line.amount_cents for line in bill.to_date)
    # At the period's end the month to date, the estimate and the invoice are one figure.
    held_end = _held(pricing.segments_from_spans(_history(raw), start=NOV, end=DEC), usages, plans)
    end = pricing.bill_month(held_end, now=DEC, period_start=NOV, period_end=DEC)
    invoice = pricing.total(pricing.bill_lines(held_end, period_start=NOV, period_end=DEC))
    assert end.to_date_cents == end.estimate_cents == invoice
