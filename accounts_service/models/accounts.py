"""NATS accounts (their limits and plan history), their users and the users' revocations."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from accounts_service.models.tenancy import AccountChildQuerySet, AccountQuerySet, Team
from operators.models import SealedSeed, SigningKey

# ------------------------------------------------------------------------------------------------
# Accounts
# ------------------------------------------------------------------------------------------------

LIMIT_FIELDS = (
    "conn", "subs", "data", "payload", "imports", "exports", "leaf",
    "mem_storage", "disk_storage", "streams", "consumer",
)  # fmt: skip

# What each limit's value means, the same on the API, the console and the CLI: -1 unlimited, 0 none, N at most N.
# nats-server reads 0 streams or consumers as unlimited; the JWT encoding makes 0 mean none (see
# ``selectors.account_jetstream_limits``).
LIMIT_HELP = {
    "conn": "max client connections (-1 unlimited, 0 none)",
    "subs": "max subscriptions per connection (-1 unlimited)",
    "data": "max bytes a connection may send (-1 unlimited)",
    "payload": "max message payload bytes (-1 unlimited)",
    "imports": "max imports (-1 unlimited, 0 none)",
    "exports": "max exports (-1 unlimited, 0 none)",
    "leaf": "max leafnode connections (-1 unlimited, 0 none)",
    "mem_storage": "JetStream memory bytes (-1 unlimited, 0 none; 0 memory and 0 disk: JetStream off)",
    "disk_storage": "JetStream disk bytes (-1 unlimited, 0 none; 0 memory and 0 disk: JetStream off)",
    "streams": "JetStream streams (-1 unlimited, 0 none: JetStream off)",
    "consumer": "JetStream consumers (-1 unlimited, at least 1 while JetStream is on; 0 only with JetStream off)",
}


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
    home_region = models.CharField(max_length=32, blank=True,
                                   help_text="the region its clients connect to first; empty: the region its last "
                                             "connection used")

    conn = _limit(LIMIT_HELP["conn"])
    subs = _limit(LIMIT_HELP["subs"])
    data = _limit(LIMIT_HELP["data"])
    payload = _limit(LIMIT_HELP["payload"])
    imports = _limit(LIMIT_HELP["imports"])
    exports = _limit(LIMIT_HELP["exports"])
    leaf = _limit(LIMIT_HELP["leaf"])
    wildcard_exports = models.BooleanField(default=True)
    mem_storage = _limit(LIMIT_HELP["mem_storage"], 0)
    disk_storage = _limit(LIMIT_HELP["disk_storage"], 0)
    streams = _limit(LIMIT_HELP["streams"], 0)
    consumer = _limit(LIMIT_HELP["consumer"], 0)

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
        # (team, at): a team's bill; (account, team, at): one account's (ngs.usage), in a team of thousands of accounts
        indexes = [models.Index(fields=["team", "at"], name="accounts_planspan_team_at"),
                   models.Index(fields=["account_public_key", "team", "at"],
                                name="accounts_planspan_account_at")]
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
    # In the user JWT's tags: a scoped signing key's template reads them ({{tag(name)}} from "name:value").
    tags = models.JSONField(default=list, blank=True)
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
