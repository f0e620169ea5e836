"""Plan ceilings for the limits a tenant may set on an account.

``accounts_service`` never imports ``billing`` (DESIGN.md: imports point one way), so billing, which keeps
plans as data, hands them in through :func:`plan_provider_set` when it loads. A ceiling of -1 means
unlimited; a tenant's limit must be within the ceiling (and may not be -1 when the ceiling is finite). The
system account and the operator's tooling are not bound by plans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from operators.errors import ApplicationError

FREE_PLAN = "free"

_provider: Callable[[str], Mapping[str, int] | None] | None = None


def plan_provider_set(provider: Callable[[str], Mapping[str, int] | None] | None) -> None:
    """Billing registers ``provider(plan_name) -> ceilings or None`` (None: no such plan)."""
    global _provider
    _provider = provider


def plan_limits(plan: str) -> dict[str, int]:
    """The ceilings of ``plan`` (also the allowance a new account on it gets); an unknown plan is a 400."""
    ceilings = _provider(plan) if _provider is not None else None
    if ceilings is None:
        raise ApplicationError(f"unknown plan {plan!r}", extra={"field": "plan"})
    return dict(ceilings)


def limits_within(*, plan: str, limits: Mapping[str, Any]) -> None:
    """Raise a 400 listing every limit above the plan's ceiling."""
    ceilings = plan_limits(plan)
    over = {}
    for field, value in limits.items():
        ceiling = ceilings.get(field)
        if ceiling is None or ceiling == -1 or not isinstance(value, int) or isinstance(value, bool):
            continue
        if value == -1 or value > ceiling:
            over[field] = ceiling
    if over:
        parts = ", ".join(f"{field} at most {ceiling}" for field, ceiling in sorted(over.items()))
        raise ApplicationError(f"the {plan} plan allows {parts}", extra={"fields": sorted(over), "ceilings": over})
