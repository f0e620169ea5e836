"""What belongs to people: API tokens, the audit log, invitations and the attempt counters of the web."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts_service.models.tenancy import Team, TeamMembership

# ------------------------------------------------------------------------------------------------
# API tokens
# ------------------------------------------------------------------------------------------------


class ApiToken(models.Model):
    """A REST API bearer token; only its SHA-256 digest is stored, the token is shown once. A ``read`` token may
    only read (GET/HEAD); a token with a ``team`` sees only that team's objects; past ``expires_at`` it is refused."""

    class Scope(models.TextChoices):
        READ = "read"
        WRITE = "write"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64, blank=True)
    scope = models.CharField(max_length=8, choices=Scope.choices, default=Scope.WRITE)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True, related_name="api_tokens",
                             help_text="only this team's objects (none: every team of the person)")
    expires_at = models.DateTimeField(null=True, blank=True)
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name or 'unnamed'})"


# ------------------------------------------------------------------------------------------------
# Audit log
# ------------------------------------------------------------------------------------------------


class AuditEventQuerySet(models.QuerySet):
    def for_team(self, team: Team) -> AuditEventQuerySet:
        return self.filter(team=team)

    def update(self, **kwargs):  # append-only: rows are never changed
        raise TypeError("audit events are append-only")

    def delete(self):
        raise TypeError("audit events are append-only")


class AuditEvent(models.Model):
    """Every change to a team's objects (accounts, users, exports, imports, activations, signing keys, plans,
    members, API tokens) and every creds download, by whom, on what, when; ``detail`` holds before/after of what
    changed. Append-only: the model refuses updates and deletes; the team sees its own events."""

    class Action(models.TextChoices):
        CREDS_DOWNLOAD = "creds.download"
        USER_REVOKE = "user.revoke"
        TOKEN_CREATE = "token.create"
        TOKEN_REVOKE = "token.revoke"
        KEY_ROTATE = "key.rotate"
        MEMBER_INVITE = "member.invite"
        MEMBER_JOIN = "member.join"
        MEMBER_REMOVE = "member.remove"
        ACCOUNT_DELETE = "account.delete"
        PLAN_CHANGE = "account.plan"
        USER_DELETE = "user.delete"
        EXPORT_DELETE = "export.delete"
        IMPORT_DELETE = "import.delete"
        MEMBER_ROLE = "member.role"
        ACCOUNT_REGION = "account.region"
        LEAFNODE_DOWNLOAD = "leafnode.download"
        JWT_DOWNLOAD = "jwt.download"
        CONNECTION_TEST = "user.connection_test"
        ACCOUNT_CREATE = "account.create"
        ACCOUNT_UPDATE = "account.update"
        ACCOUNT_SUSPEND = "account.suspend"
        ACCOUNT_RESUME = "account.resume"
        USER_CREATE = "user.create"
        USER_UPDATE = "user.update"
        EXPORT_CREATE = "export.create"
        IMPORT_CREATE = "import.create"
        ACTIVATION_CREATE = "activation.create"
        ACTIVATION_REVOKE = "activation.revoke"
        KEY_ADD = "key.add"
        TEAM_CREATE = "team.create"
        INVITE_REVOKE = "member.invite_revoke"
        # The platform team's log: staff's acts on node operators and payouts (payouts/, broker_gateway).
        OPERATOR_CREATE = "operator.create"
        OPERATOR_MEMBER_ADD = "operator.member_add"
        OPERATOR_MEMBER_REMOVE = "operator.member_remove"
        NODE_ASSIGN = "node.assign"
        PAYOUT_RUN = "payout.run"

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="audit_events", null=True, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="audit_events")
    actor_name = models.CharField(max_length=150, blank=True, help_text="kept when the actor is deleted")
    action = models.CharField(max_length=32, choices=Action.choices)
    target = models.CharField(max_length=128, blank=True, help_text="public key or token prefix acted on")
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name} {self.action} {self.target}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("audit events are append-only")


# ------------------------------------------------------------------------------------------------
# Web: invitations and attempt counters
# ------------------------------------------------------------------------------------------------


class Invitation(models.Model):
    """An invitation to join a team, sent by email; only the digest of its token is stored."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=TeamMembership.Role.choices, default=TeamMembership.Role.MEMBER)
    digest = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                    related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "email"],
                                    condition=Q(accepted_at__isnull=True, revoked_at__isnull=True),
                                    name="%(app_label)s_%(class)s_one_open_per_email"),
        ]

    def __str__(self) -> str:
        return f"{self.email} to {self.team} ({self.role})"


class AttemptCounter(models.Model):
    """Failed logins and sign-ups per key (an email or a client address) in a fixed window; kept in the
    database so every web worker sees the same count."""

    key = models.CharField(max_length=200, unique=True)
    count = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField()
    blocked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
