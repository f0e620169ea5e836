"""Models of the root of trust: sealed seeds, the operator, signing keys and issued account JWTs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class SealedSeed(models.Model):
    """One private nkey seed, encrypted at rest (AES-GCM, bound to ``public_key``)."""

    class KeyType(models.TextChoices):
        OPERATOR = "O", "operator"
        ACCOUNT = "A", "account"
        USER = "U", "user"

    public_key = models.CharField(max_length=56, unique=True)
    key_type = models.CharField(max_length=1, choices=KeyType.choices)
    key_id = models.CharField(max_length=64, db_index=True, help_text="id of the encryption key that sealed it")
    sealed = models.TextField(help_text="<key id>$base64(nonce || AES-GCM ciphertext)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(key_type__in=["O", "A", "U"]), name="%(app_label)s_%(class)s_key_type"),
        ]

    def __str__(self) -> str:
        return f"sealed seed of {self.public_key}"

    def __repr__(self) -> str:
        return f"<SealedSeed {self.public_key}>"


class Operator(models.Model):
    """The operator: root of trust whose JWT every broker node is configured with."""

    name = models.CharField(max_length=64, unique=True)
    public_key = models.CharField(max_length=56, unique=True)
    identity_seed = models.OneToOneField(
        SealedSeed,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="kept only with --store-identity-key; by default the identity seed lives offline",
    )
    system_account = models.CharField(max_length=56, unique=True)
    strict_signing_key_usage = models.BooleanField(default=True)
    account_server_url = models.CharField(max_length=200, blank=True)
    jwt = models.TextField()
    iat = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class SigningKey(models.Model):
    """A signing key of the operator (signs accounts) or of an account (signs users), optionally scoped.

    A scoped key has a ``role`` and a ``template``: users it signs get the template's permissions and
    limits and carry none of their own.
    """

    class OwnerKind(models.TextChoices):
        OPERATOR = "operator"
        ACCOUNT = "account"

    owner_kind = models.CharField(max_length=10, choices=OwnerKind.choices)
    owner_public_key = models.CharField(max_length=56, db_index=True)
    seed = models.OneToOneField(SealedSeed, on_delete=models.PROTECT, related_name="signing_key")
    public_key = models.CharField(max_length=56, unique=True)
    role = models.CharField(max_length=64, blank=True, help_text="empty for an unscoped key")
    template = models.JSONField(null=True, blank=True, help_text="scoped keys: permissions and limits of their users")
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_public_key", "role"],
                condition=~Q(role=""),
                name="%(app_label)s_%(class)s_unique_role",
            ),
            models.CheckConstraint(
                condition=(Q(role="") & Q(template__isnull=True)) | (~Q(role="") & Q(template__isnull=False)),
                name="%(app_label)s_%(class)s_scope_has_template",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.owner_kind} signing key {self.public_key}" + (f" ({self.role})" if self.role else "")

    @property
    def scoped(self) -> bool:
        return bool(self.role)


class IssuedAccountJwt(models.Model):
    """Every account JWT ever issued: its version history, and the source of strictly rising ``iat``."""

    account_public_key = models.CharField(max_length=56)
    jwt = models.TextField()
    jti = models.CharField(max_length=64, unique=True)
    iat = models.BigIntegerField()
    issued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account_public_key", "iat"], name="%(app_label)s_%(class)s_unique_iat"),
        ]
        indexes = [models.Index(fields=["account_public_key", "-iat"], name="operators_issued_acc_iat")]

    def __str__(self) -> str:
        return f"{self.account_public_key}@{self.iat}"
