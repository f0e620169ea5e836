"""Sharing between accounts: exports (streams and services), activation tokens, imports."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from accounts_service.models.accounts import Account
from accounts_service.models.tenancy import AccountChildQuerySet

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
