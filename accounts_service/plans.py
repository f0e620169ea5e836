"""Plans as accounts_service sees them: the ceilings of an account's limits and a team's room for accounts.

``accounts_service`` never imports ``billing`` (docs/ARCHITECTURE.md: imports point one way), so billing, which keeps
plans as data, hands them in through :func:`plan_provider_set` when it loads. A ceiling of -1 means
unlimited; a tenant's limit must be within the ceiling (and may not be -1 when the ceiling is finite). The
system account and the operator's tooling are not bound by plans.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.errors import ApplicationError, Conflict

FREE_PLAN = "free"


@dataclass(frozen=True)
class PlanTerms:
    """What a plan grants: limit ceilings (by the account model's field names), how many accounts a team may
    hold on it (-1 unlimited), the monthly data allowance and the price, for display."""

    name: str
    title: str
    ceilings: Mapping[str, int] = field(default_factory=dict)
    accounts_per_team: int = -1
    data_bytes: int = -1
    base_price_cents: int = 0
    overage_cents_per_gib: int = 0


_get: Callable[[str], PlanTerms | None] | None = None
_all: Callable[[], Sequence[PlanTerms]] | None = None


def plan_provider_set(get: Callable[[str], PlanTerms | None] | None,
                      all_plans: Callable[[], Sequence[PlanTerms]] | None = None) -> None:
    """Billing registers ``get(plan_name) -> PlanTerms or None`` (None: no such plan) and ``all_plans()``."""
    global _get, _all
    _get, _all = get, all_plans


def plan_terms(plan: str) -> PlanTerms:
    """The terms of ``plan``; an unknown plan is a 400 naming the field."""
    terms = _get(plan) if _get is not None and isinstance(plan, str) else None
    if terms is None:
        raise ApplicationError(f"unknown plan {plan!r}", extra={"field": "plan"})
    return terms


def plans_all() -> list[PlanTerms]:
    """Every plan a tenant can choose, cheapest first."""
    return list(_all()) if _all is not None else []


def plan_limits(plan: str) -> dict[str, int]:
    """The ceilings of ``plan`` (also the allowance a new account on it gets); an unknown plan is a 400."""
    return dict(plan_terms(plan).ceilings)


def limits_within(*, plan: str, limits: Mapping[str, Any]) -> None:
    """Raise a 400 listing every limit above the plan's ceiling."""
    ceilings = plan_limits(plan)
    over = {}
    for name, value in limits.items():
        ceiling = ceilings.get(name)
        if ceiling is None or ceiling == -1 or not isinstance(value, int) or isinstance(value, bool):
            continue
        if value == -1 or value > ceiling:
            over[name] = ceiling
    if over:
        parts = ", ".join(f"{name} at most {ceiling}" for name, ceiling in sorted(over.items()))
        raise ApplicationError(f"the {plan} plan allows {parts}", extra={"fields": sorted(over), "ceilings": over})


def team_room_check(*, plan: str, accounts_on_plan: int) -> None:
    """A 409 when a team that already holds ``accounts_on_plan`` accounts on ``plan`` may not add another."""
    terms = plan_terms(plan)
    if 0 <= terms.accounts_per_team <= accounts_on_plan:
        raise Conflict(
            f"the {terms.title} plan allows {terms.accounts_per_team} account"
            f"{'' if terms.accounts_per_team == 1 else 's'} per team; this team has {accounts_on_plan} "
            f"(upgrade an account's plan, or delete one)",
            extra={"field": "plan", "accounts_per_team": terms.accounts_per_team})
