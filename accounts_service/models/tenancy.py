"""Tenancy: teams, memberships, and the scoping every tenant-facing query goes through."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# ------------------------------------------------------------------------------------------------
# Tenancy
# ------------------------------------------------------------------------------------------------

# Set on the request's user by the bearer authentication when its API token is restricted to one team: every
# scoped query (``for_user``) and every role check (``rights.role_of``) then sees that team alone, so another team
# of the same person is a 404 as a stranger's, on every route, without a view having to remember it.
TOKEN_TEAM_ATTR = "_natsctl_token_team_id"


def token_team_id(user) -> int | None:
    """The one team ``user``'s API token is restricted to, or None (a session, or a token for every team)."""
    return getattr(user, TOKEN_TEAM_ATTR, None)


class TeamQuerySet(models.QuerySet):
    def for_user(self, user) -> TeamQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        if (only := token_team_id(user)) is not None:
            return self.filter(memberships__user=user, pk=only)
        return self.filter(memberships__user=user)


class Team(models.Model):
    """The tenant: owns accounts; people belong to it through memberships."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    is_personal = models.BooleanField(default=False)
    is_platform = models.BooleanField(default=False, help_text="the operator's own team (system account)")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="TeamMembership", related_name="teams")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TeamQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    """A person's role in a team."""

    class Role(models.TextChoices):
        OWNER = "owner"
        MEMBER = "member"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="%(app_label)s_%(class)s_unique_member"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"


class TenantQuerySet(models.QuerySet):
    """Tenant scoping: every tenant-facing query goes through ``for_team`` or ``for_user``."""

    team_path = "team"

    def for_team(self, team: Team) -> TenantQuerySet:
        return self.filter(**{self.team_path: team})

    def for_user(self, user) -> TenantQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        if (only := token_team_id(user)) is not None:
            return self.filter(**{f"{self.team_path}__memberships__user": user, f"{self.team_path}_id": only})
        return self.filter(**{f"{self.team_path}__memberships__user": user})


class AccountQuerySet(TenantQuerySet):
    team_path = "team"


class AccountChildQuerySet(TenantQuerySet):
    team_path = "account__team"
