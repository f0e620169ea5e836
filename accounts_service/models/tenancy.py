"""Tenancy: teams, memberships, and the scoping every tenant-facing query goes through."""

from __future__ import annotations

from django.conf import settings
from django.db import models

# ------------------------------------------------------------------------------------------------
# Tenancy
# ------------------------------------------------------------------------------------------------


class TeamQuerySet(models.QuerySet):
    def for_user(self, user) -> TeamQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
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
        return self.filter(**{f"{self.team_path}__memberships__user": user})


class AccountQuerySet(TenantQuerySet):
    team_path = "team"


class AccountChildQuerySet(TenantQuerySet):
    team_path = "account__team"
