"""Models of the tenant domain: teams, NATS accounts, users, exports, imports, activations, API tokens."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from operators.models import SealedSeed, SigningKey

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


# ------------------------------------------------------------------------------------------------
# Accounts
# ------------------------------------------------------------------------------------------------

LIMIT_FIELDS = (
    "conn", "subs", "data", "payload", "imports", "exports", "leaf",
    "mem_storage", "disk_storage", "streams", "consumer",
)  # fmt: skip


def _limit(help_text: str, default: int = -1) -> models.BigIntegerField:
    return models.BigIntegerField(default=default, help_text=help_text)


class Account(models.Model):
    """A NATS account: isolated subject space owned by a team; its JWT carries its whole state."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="accounts")
    name = models.CharField(max_length=64)
    description = models.CharField(max_length=200, blank=True)
    public_key = models.CharField(max_length=56, unique=True)
    identity_seed = models.OneToOneField(SealedSeed, on_delete=models.PROTECT, related_name="account")
    is_system = models.BooleanField(default=False)
    plan = models.CharField(max_length=32, blank=True,
                            help_text="the plan whose ceilings bound the limits; empty: operator-managed, no ceilings")
    suspended_at = models.DateTimeField(null=True, blank=True,
                                        help_text="suspended: the JWT allows no connection until resumed")
    suspended_reason = models.CharField(max_length=200, blank=True)

    conn = _limit("max client connections (-1 unlimited)")
    subs = _limit("max subscriptions per connection")
    data = _limit("max bytes a connection may send")
    payload = _limit("max message payload bytes")
    imports = _limit("max imports")
    exports = _limit("max exports")
    leaf = _limit("max leafnode connections")
    wildcard_exports = models.BooleanField(default=True)
    mem_storage = _limit("JetStream memory bytes (0 = JetStream off)", 0)
    disk_storage = _limit("JetStream disk bytes (0 = JetStream off)", 0)
    streams = _limit("JetStream streams", 0)
    consumer = _limit("JetStream consumers", 0)

    jwt = models.TextField(blank=True)
    jwt_iat = models.BigIntegerField(default=0)
    jwt_jti = models.CharField(max_length=64, blank=True)
    version = models.PositiveIntegerField(default=0, help_text="bumped on every re-sign")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="%(app_label)s_%(class)s_unique_name_per_team"),
            models.UniqueConstraint(
                fields=["is_system"], condition=Q(is_system=True), name="%(app_label)s_%(class)s_one_system_account"
            ),
            *[
                models.CheckConstraint(condition=Q(**{f"{f}__gte": -1}), name=f"%(app_label)s_%(class)s_{f}_gte_-1")
                for f in LIMIT_FIELDS
            ],
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_key[:8]}…)"


class PlanSpan(models.Model):
    """An account's plan from ``at`` on (``plan`` empty: the account was deleted or left the plans). Written by
    the services on every plan an account takes, and kept after the account is gone, so a period's invoice
    knows which accounts the team held on which plan."""

    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="plan_spans")
    account_public_key = models.CharField(max_length=56)
    account_name = models.CharField(max_length=64)
    plan = models.CharField(max_length=32, blank=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["team", "at"], name="accounts_planspan_team_at")]
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.account_name}: {self.plan or '(none)'} from {self.at:%Y-%m-%d %H:%M}"


class NatsUserQuerySet(AccountChildQuerySet):
    def active(self) -> NatsUserQuerySet:
        return self.filter(revoked_at__isnull=True)


class NatsUser(models.Model):
    """A NATS user of an account. Its seed is kept only if we generated it (so creds can be re-downloaded)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="users")
    name = models.CharField(max_length=64)
    public_key = models.CharField(max_length=56, unique=True)
    seed = models.OneToOneField(SealedSeed, null=True, blank=True, on_delete=models.PROTECT, related_name="nats_user")
    signing_key = models.ForeignKey(SigningKey, on_delete=models.PROTECT, related_name="users")
    pub_allow = models.JSONField(default=list, blank=True)
    pub_deny = models.JSONField(default=list, blank=True)
    sub_allow = models.JSONField(default=list, blank=True)
    sub_deny = models.JSONField(default=list, blank=True)
    allow_responses = models.BooleanField(default=False, help_text="may reply to requests it receives")
    subs = models.BigIntegerField(default=-1)
    data = models.BigIntegerField(default=-1)
    payload = models.BigIntegerField(default=-1)
    bearer_token = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    jwt = models.TextField()
    jwt_iat = models.BigIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = NatsUserQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "name"], name="%(app_label)s_%(class)s_unique_name"),
            *[
                models.CheckConstraint(condition=Q(**{f"{f}__gte": -1}), name=f"%(app_label)s_%(class)s_{f}_gte_-1")
                for f in ("subs", "data", "payload")
            ],
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.public_key[:8]}…)"


class Revocation(models.Model):
    """A revoked user key: user JWTs issued at or before ``revoked_at_ts`` are refused."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="revocations")
    public_key = models.CharField(max_length=56)
    revoked_at_ts = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccountChildQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "public_key"], name="%(app_label)s_%(class)s_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.public_key} revoked at {self.revoked_at_ts}"


# ------------------------------------------------------------------------------------------------
# Sharing: exports, imports, activations
# ------------------------------------------------------------------------------------------------


class Export(models.Model):
    """A stream or service an account offers to others; private ones need an activation per importer."""

    class Type(models.TextChoices):
        STREAM = "stream"
        SERVICE = "service"

    class ResponseType(models.TextChoices):
        SINGLETON = "Singleton"
        STREAM = "Stream"
        CHUNKED = "Chunked"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="account_exports")
    name = models.CharField(max_length=64)
    subject = models.CharField(max_length=512)
    type = models.CharField(max_length=7, choices=Type.choices)
    token_req = models.BooleanField(default=False, help_text="private: importers need an activation token")
    response_type = models.CharField(max_length=9, choices=ResponseType.choices, default=ResponseType.SINGLETON)
    account_token_position = models.PositiveSmallIntegerField(default=0)
    advertise = models.BooleanField(default=False)
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccountChildQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "subject"], name="%(app_label)s_%(class)s_unique_subject"),
            models.UniqueConstraint(fields=["account", "name"], name="%(app_label)s_%(class)s_unique_name"),
            models.CheckConstraint(condition=Q(type__in=["stream", "service"]), name="%(app_label)s_%(class)s_type"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.subject}"


class Activation(models.Model):
    """An activation token letting one account import a private export."""

    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="activations")
    target_public_key = models.CharField(max_length=56)
    subject = models.CharField(max_length=512)
    token = models.TextField()
    jti = models.CharField(max_length=64, unique=True)
    iat = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["export", "target_public_key"], name="acc_activation_target")]

    def __str__(self) -> str:
        return f"activation of {self.subject} for {self.target_public_key[:8]}…"


class Import(models.Model):
    """Another account's export brought into this account, under ``local_subject``."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="account_imports")
    export = models.ForeignKey(Export, on_delete=models.CASCADE, related_name="imports")
    name = models.CharField(max_length=64)
    subject = models.CharField(max_length=512, help_text="the exporter's subject (or a subset of it)")
    local_subject = models.CharField(max_length=512)
    token = models.TextField(blank=True)
    share = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AccountChildQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "local_subject"], name="%(app_label)s_%(class)s_unique_local"),
        ]

    def __str__(self) -> str:
        return f"import {self.subject} as {self.local_subject}"


# ------------------------------------------------------------------------------------------------
# API tokens
# ------------------------------------------------------------------------------------------------


class ApiToken(models.Model):
    """A REST API bearer token; only its SHA-256 digest is stored, the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64, blank=True)
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
    """A security action (creds download, revocation, API token created or revoked, key rotation) by whom,
    on what, when. Append-only: the model refuses updates and deletes; the team sees its own events."""

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
