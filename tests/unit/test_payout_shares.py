"""The payout arithmetic: exact in minor units for arbitrary inputs (largest remainder, no float anywhere)."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.shares import (
    BUCKET_PERCENT,
    COMMUNITY,
    OPERATORS,
    PUBLISHERS,
    NothingToDivideBy,
    largest_remainder,
    statement_split,
)

totals = st.integers(min_value=0, max_value=10**15)
weights = st.lists(st.integers(min_value=0, max_value=10**18), min_size=1, max_size=30).filter(any)
bases = st.lists(st.integers(min_value=0, max_value=10**15), max_size=20)


@given(total=totals, ws=weights)
def test_parts_add_up_and_each_is_its_quota_rounded_down_or_up(total, ws):
    parts = largest_remainder(total, list(enumerate(ws)))
    assert sum(c for _, c in parts) == total
    assert [key for key, _ in parts] == list(range(len(ws)))  # every payee, in the order given
    whole = sum(ws)
    for (_, cents), w in zip(parts, ws, strict=True):
        quota = Fraction(total * w, whole)
        assert isinstance(cents, int)
        assert cents in (quota.numerator // quota.denominator, -(-quota.numerator // quota.denominator))
        assert w or cents == 0  # nothing is paid for nothing


@given(total=totals, ws=weights)
def test_the_cents_left_over_go_to_the_largest_remainders(total, ws):
    parts = [c for _, c in largest_remainder(total, list(enumerate(ws)))]
    whole = sum(ws)
    rounded_up = [i for i, (c, w) in enumerate(zip(parts, ws, strict=True)) if c * whole > total * w]
    kept_down = [i for i, (c, w) in enumerate(zip(parts, ws, strict=True)) if c * whole < total * w]
    if rounded_up and kept_down:  # no part kept down had a larger remainder than one rounded up
        assert min(total * ws[i] % whole for i in rounded_up) >= max(total * ws[i] % whole for i in kept_down)


@given(collected=st.integers(min_value=0, max_value=10**15), operators=bases.filter(any), publishers=bases)
def test_a_statement_adds_up_exactly_in_every_bucket_and_overall(collected, operators, publishers):
    split = statement_split(collected, operators=list(enumerate(operators)), publishers=list(enumerate(publishers)))
    assert sum(split.buckets.values()) == collected
    assert sum(line.cents for line in split.lines) == collected
    for bucket in (OPERATORS, PUBLISHERS, COMMUNITY):
        assert sum(line.cents for line in split.lines if line.bucket == bucket) == split.buckets[bucket]
    exact = dict(largest_remainder(collected, BUCKET_PERCENT))
    assert split.buckets[OPERATORS] == exact[OPERATORS]
    if any(publishers):
        assert split.buckets == exact and not split.publishers_unused
    else:  # no measured use at all: the publishers' tenth is the community's
        assert split.publishers_unused and split.buckets[PUBLISHERS] == 0
        assert split.buckets[COMMUNITY] == exact[COMMUNITY] + exact[PUBLISHERS]
    assert all(line.basis > 0 for line in split.lines if line.bucket != COMMUNITY)


def test_a_hand_computed_example():
    # 100.01 collected: 80 % is 80.008 -> 80.01 (largest remainder), 10 % twice is 10.001 -> 10.00 each.
    assert largest_remainder(10001, BUCKET_PERCENT) == [(OPERATORS, 8001), (PUBLISHERS, 1000), (COMMUNITY, 1000)]
    # 80.01 by bytes 1:2 -> 26.67 and 53.34 (remainders 1/3 and 2/3: the cent goes to the second).
    assert largest_remainder(8001, [("a", 1), ("b", 2)]) == [("a", 2667), ("b", 5334)]
    # Equal remainders: the earlier key takes the cent.
    assert largest_remainder(1, [("a", 1), ("b", 1)]) == [("a", 1), ("b", 0)]


def test_refusals():
    with pytest.raises(NothingToDivideBy):
        largest_remainder(100, [("a", 0)])
    with pytest.raises(NothingToDivideBy):
        statement_split(100, operators=[("a", 0)], publishers=[("t", 5)])
    for total in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="non-negative integer"):
            largest_remainder(total, [("a", 1)])
    with pytest.raises(ValueError, match="weights"):
        largest_remainder(10, [("a", 1.0)])
