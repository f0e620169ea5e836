"""Writes of API tokens: a person's bearer tokens for the REST API (only a digest is stored)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts_service.models import ApiToken, AuditEvent
from accounts_service.rights import PLATFORM
from accounts_service.services.audit import audit_record
from accounts_service.services.teams import team_personal_ensure
from accounts_service.validation import description_check
from core.errors import Invalid, NotFound

API_TOKEN_PREFIX = "nct_"


def api_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _self_or_platform(*, user, actor: Any) -> None:
    # A person manages only their own tokens (another person's is a 404); the operator's CLI any.
    if actor is not PLATFORM and getattr(actor, "pk", None) != user.pk:
        raise NotFound("no such token")


@transaction.atomic
def api_token_create(*, user, actor: Any, name: str = "") -> tuple[ApiToken, str]:
    """A new API token for ``user`` (the person, or the operator's CLI for them); returned once, only its digest
    is kept."""
    _self_or_platform(user=user, actor=actor)
    if not user.is_active:
        raise Invalid("the user is inactive", code="token_owner_inactive")
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken.objects.create(user=user, name=description_check(name, field="name")[:64],
                                     prefix=token[: len(API_TOKEN_PREFIX) + 6], digest=api_token_digest(token))
    audit_record(action=AuditEvent.Action.TOKEN_CREATE, actor=actor, team=team_personal_ensure(user=user),
                 target=record.prefix, detail={"name": record.name})
    return record, token


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: Any, reason: str = "") -> ApiToken:
    """Revoke a token (its person's, or the operator CLI's for them). Idempotent."""
    _self_or_platform(user=token.user, actor=actor)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action=AuditEvent.Action.TOKEN_REVOKE, actor=actor, team=team_personal_ensure(user=token.user),
                     target=token.prefix, detail={"name": token.name, **({"reason": reason} if reason else {})})
    return token


@transaction.atomic
def api_tokens_revoke_all(*, user, actor: Any, reason: str) -> int:
    """Revoke every active token of ``user`` (a password reset does: whoever knew the old password may have made
    one). Each revocation is audited; returns how many."""
    tokens = list(ApiToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True))
    for token in tokens:
        api_token_revoke(token=token, actor=actor, reason=reason)
    return len(tokens)


def django_user_get(*, username: str):
    """A person by username (the operator's CLI)."""
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}", code="person_unknown")
    return user
