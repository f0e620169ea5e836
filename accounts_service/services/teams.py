"""Writes of teams (the tenants): create, the personal team every person has, the platform's own team."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.text import slugify

from accounts_service.models import Account, AuditEvent, Team, TeamMembership
from accounts_service.plans import FREE_PLAN
from accounts_service.rights import PLATFORM
from accounts_service.services.accounts import account_create
from accounts_service.services.audit import audit_record
from accounts_service.validation import name_check

DEFAULT_ACCOUNT_NAME = "default"


def _unique_slug(base: str) -> str:
    base = slugify(base)[:80] or "team"
    slug, n = base, 1
    while Team.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def team_create(*, name: str, actor: Any, is_personal: bool = False, is_platform: bool = False,
                default_account: bool = False) -> Team:
    """A new team; a person who creates it is its first owner (the platform's teams have no members). With
    ``default_account`` it gets its first account on the free plan."""
    name = name_check(name, field="team name", max_length=100)
    team = Team.objects.create(name=name, slug=_unique_slug(name), is_personal=is_personal, is_platform=is_platform)
    if actor is not PLATFORM:
        TeamMembership.objects.create(team=team, user=actor, role=TeamMembership.Role.OWNER)
    if not is_personal:  # (a personal team comes with the person: nobody chose to make it)
        audit_record(action=AuditEvent.Action.TEAM_CREATE, actor=actor, team=team, target=team.slug,
                     detail={"name": team.name})
    if default_account:
        team_default_account_ensure(team=team)
    return team


def team_default_account_ensure(*, team: Team) -> Account | None:
    """A team's first account, on the free plan (only if the team has none yet)."""
    if team.accounts.exists():
        return None
    return account_create(team=team, name=DEFAULT_ACCOUNT_NAME, description="created with the team", plan=FREE_PLAN,
                          actor=PLATFORM)


def team_personal_ensure(*, user) -> Team:
    """Every person has a personal team, however the person was created (``user`` is its owner)."""
    team = Team.objects.filter(is_personal=True, memberships__user=user).first()
    return team or team_create(name=user.get_username(), actor=user, is_personal=True)


def team_get_or_create(*, name: str) -> Team:
    """The team whose slug or name is ``name`` (the operator CLI's ``--team``), created if missing."""
    team = Team.objects.filter(slug=name).first() or Team.objects.filter(name=name).first()
    return team or team_create(name=name, actor=PLATFORM)


def platform_team_get() -> Team:
    team = Team.objects.filter(is_platform=True).first()
    return team or team_create(name="platform", actor=PLATFORM, is_platform=True)


def team_member_add(*, team: Team, user, role: str = TeamMembership.Role.MEMBER) -> TeamMembership:
    """Make ``user`` a member (the operator's CLI; people join through invitations)."""
    membership, created = TeamMembership.objects.get_or_create(team=team, user=user, defaults={"role": role})
    if created:
        audit_record(action=AuditEvent.Action.MEMBER_JOIN, actor=PLATFORM, team=team,
                     target=user.email or user.get_username(), detail={"role": role})
    return membership
