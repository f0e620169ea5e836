"""Reads of tenants for staff pages and the connect panel: teams, their members, accounts and NATS users.

Reads only; nothing here knows of billing or the broker fleet.
"""

from __future__ import annotations

from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from accounts_service.models import Account, NatsUser, Team, TeamMembership
from core.errors import NotFound

# ------------------------------------------------------------------------------------------------
# Tenants (staff)
# ------------------------------------------------------------------------------------------------


def _count_of(model, *, team_path: str) -> Subquery:
    """A correlated COUNT(*) of ``model`` rows of the outer team: one subquery per column, no join fan-out."""
    rows = model.objects.filter(**{team_path: OuterRef("pk")}).order_by().values(team_path)
    return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")[:1]), 0)


def tenant_list(*, q: str = "") -> QuerySet[Team]:
    """Every tenant team (not the platform's own), newest first, with its counts annotated; ``q`` matches
    the team's name or slug or a member's email or username."""
    teams = Team.objects.filter(is_platform=False)
    q = q.strip()
    if q:
        members = TeamMembership.objects.filter(Q(user__email__icontains=q) | Q(user__username__icontains=q))
        teams = teams.filter(Q(name__icontains=q) | Q(slug__icontains=q) | Q(pk__in=members.values("team_id")))
    owners = TeamMembership.objects.filter(role=TeamMembership.Role.OWNER).select_related("user").order_by("pk")
    return (teams.annotate(members_count=_count_of(TeamMembership, team_path="team"),
                           accounts_count=_count_of(Account, team_path="team"),
                           users_count=_count_of(NatsUser, team_path="account__team"))
            .prefetch_related(Prefetch("memberships", queryset=owners, to_attr="owner_memberships"))
            .order_by("-created_at", "-pk"))


def tenant_get(*, slug: str) -> Team:
    """Any team by slug (staff only: no tenant scoping)."""
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        raise NotFound(f"no team {slug}", extra={"team": slug})
    return team


def tenant_members(*, team: Team) -> QuerySet[TeamMembership]:
    return TeamMembership.objects.filter(team=team).select_related("user").order_by("role", "user__email", "pk")


def tenant_accounts(*, team: Team) -> QuerySet[Account]:
    """A team's accounts with their NATS user counts, by name."""
    return (Account.objects.for_team(team).annotate(users_count=_count_of(NatsUser, team_path="account"))
            .order_by("name", "pk"))


def platform_team() -> Team | None:
    """The operator's own team (it holds the system account), listed apart from tenants."""
    return Team.objects.filter(is_platform=True).first()


# ------------------------------------------------------------------------------------------------
# The connect panel (tenant-facing: scoped to the requesting user)
# ------------------------------------------------------------------------------------------------


def connect_accounts(*, user) -> QuerySet[Account]:
    """The accounts of ``user``'s teams a client can connect to (never the system account)."""
    return Account.objects.for_user(user).filter(is_system=False).select_related("team").order_by("name", "pk")


def connect_users(*, account: Account, limit: int = 20) -> list[NatsUser]:
    """Active NATS users of an account the caller already holds (scoped by ``account_for_user_get``)."""
    return list(NatsUser.objects.filter(account=account).active().select_related("signing_key")
                .order_by("name", "pk")[:limit])
