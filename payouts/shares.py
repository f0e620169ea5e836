"""Pure arithmetic of a payout statement: integer minor units split exactly, by largest remainder (Hamilton).

No Django here. Every amount is an ``int`` of cents; no float is ever formed, so a split is exact for any total and
any weights, and the parts always add up to the whole (tests/unit/test_payout_shares.py proves it for arbitrary
inputs with hypothesis).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

OPERATORS, PUBLISHERS, COMMUNITY = "operator", "publisher", "community"
# The network's shares of what was collected, in percent (docs/ECONOMICS.md).
BUCKET_PERCENT: tuple[tuple[str, int], ...] = ((OPERATORS, 80), (PUBLISHERS, 10), (COMMUNITY, 10))


class NothingToDivideBy(ValueError):
    """Every weight is zero: no part can be pro rata to anything."""


def largest_remainder(total: int, weights: Sequence[tuple[K, int]]) -> list[tuple[K, int]]:
    """``total`` split pro rata to ``weights`` (key, non-negative integer), in the order given: each part is the
    floor of its exact quota, and the cents left over (fewer than there are parts) go one each to the largest
    remainders, ties to the earlier key. The parts add up to ``total`` exactly; a zero weight gets 0."""
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValueError("total must be a non-negative integer of minor units")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for _, w in weights):
        raise ValueError("weights must be non-negative integers")
    whole = sum(w for _, w in weights)
    if whole == 0:
        raise NothingToDivideBy("every weight is zero")
    parts = [total * w // whole for _, w in weights]
    remainders = [total * w % whole for _, w in weights]
    left = total - sum(parts)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:left]:
        parts[i] += 1
    return [(key, part) for (key, _), part in zip(weights, parts, strict=True)]


@dataclass(frozen=True)
class Line:
    bucket: str
    payee: Hashable  # an operator's id, a team's id, or None for the community fund
    basis: int  # bytes carried (operators), messages used by others (publishers), 0 (community)
    cents: int


@dataclass(frozen=True)
class Split:
    collected: int
    buckets: dict[str, int]
    lines: list[Line]
    publishers_unused: bool  # no export was used by another team: the publishers' share went to the community


def statement_split(collected: int, *, operators: Sequence[tuple[Hashable, int]],
                    publishers: Sequence[tuple[Hashable, int]]) -> Split:
    """The whole statement: ``collected`` into the three buckets (80/10/10 by largest remainder), the operators'
    bucket pro rata to bytes, the publishers' pro rata to measured use, the community's as one line. With no
    measured use at all, the publishers' bucket is the community's too. Raises NothingToDivideBy when no operator
    carried anything (the operators' 80 % cannot be attributed)."""
    buckets = dict(largest_remainder(collected, BUCKET_PERCENT))
    operators = [(k, b) for k, b in operators if b > 0]
    publishers = [(k, u) for k, u in publishers if u > 0]
    if not operators:
        raise NothingToDivideBy("no operator's node carried any traffic")
    unused = not publishers
    if unused:
        buckets = {OPERATORS: buckets[OPERATORS], PUBLISHERS: 0, COMMUNITY: buckets[COMMUNITY] + buckets[PUBLISHERS]}
    basis = dict(operators)
    lines = [Line(OPERATORS, k, basis[k], c) for k, c in largest_remainder(buckets[OPERATORS], operators)]
    if publishers:
        basis = dict(publishers)
        lines += [Line(PUBLISHERS, k, basis[k], c) for k, c in largest_remainder(buckets[PUBLISHERS], publishers)]
    lines.append(Line(COMMUNITY, None, 0, buckets[COMMUNITY]))
    return Split(collected=collected, buckets=buckets, lines=lines, publishers_unused=unused)
