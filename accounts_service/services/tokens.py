"""Writes of API tokens: a person's bearer tokens for the REST API (only a digest is stored)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts_service.models import ApiToken, AuditEvent, Team
from accounts_service.models.tenancy import token_team_id
from accounts_service.rights import PLATFORM, member_required
from accounts_service.services.audit import audit_record
from accounts_service.services.teams import team_personal_ensure
from accounts_service.validation import description_check, future_check
from core.errors import Invalid, NotFound

API_TOKEN_PREFIX = "nct_"


def api_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _self_or_platform(*, user, actor: Any) -> None:
    # A person manages only their own tokens (another person's is a 404); the operator's CLI any.
    if actor is not PLATFORM and getattr(actor, "pk", None) != user.pk:
        raise NotFound("no such token")


MAX_TOKEN_DAYS = 3650


def api_token_expiry(*, expires_at: dt.datetime | None = None, expires_in_days: int | None = None
                     ) -> dt.datetime | None:
    """When a new token expires: ``expires_at`` (in the future) or ``expires_in_days`` from now, not both; None:
    never."""
    if expires_at is not None and expires_in_days is not None:
        raise Invalid("give expires_at or expires_in_days, not both", extra={"field": "expires_in_days"},
                      code="token_expiry_twice")
    if expires_in_days is not None:
        if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int) or not (
                1 <= expires_in_days <= MAX_TOKEN_DAYS):
            raise Invalid(f"expires_in_days must be from 1 to {MAX_TOKEN_DAYS}", extra={"field": "expires_in_days"})
        return timezone.now() + dt.timedelta(days=expires_in_days)
    return future_check(expires_at, field="expires_at")


@transaction.atomic
def api_token_create(*, user, actor: Any, name: str = "", scope: str = ApiToken.Scope.WRITE,
                     team: Team | None = None, expires_at: dt.datetime | None = None,
                     expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """A new API token for ``user`` (the person, or the operator's CLI for them); returned once, only its digest
    is kept. ``scope`` ``read`` allows only reads; ``team`` (one of the person's) restricts it to that team's
    objects; it expires at ``expires_at`` or after ``expires_in_days``. A token restricted to a team can only make
    tokens restricted to the same team (never a wider one)."""
    _self_or_platform(user=user, actor=actor)
    if not user.is_active:
        raise Invalid("the user is inactive", code="token_owner_inactive")
    if scope not in ApiToken.Scope.values:
        raise Invalid(f"scope must be one of {', '.join(ApiToken.Scope.values)}", extra={"field": "scope"})
    restricted = token_team_id(actor) if actor is not PLATFORM else None
    if team is not None:
        member_required(team=team, actor=user)  # (another person's team is a 404, as an unknown one)
        if restricted is not None and team.pk != restricted:
            raise NotFound("no such team, or not yours", code="not_a_member")
    elif restricted is not None:
        team = Team.objects.get(pk=restricted)
    expires = api_token_expiry(expires_at=expires_at, expires_in_days=expires_in_days)
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken.objects.create(user=user, name=description_check(name, field="name")[:64], scope=scope,
                                     team=team, expires_at=expires,
                                     prefix=token[: len(API_TOKEN_PREFIX) + 6], digest=api_token_digest(token))
    audit_record(action=AuditEvent.Action.TOKEN_CREATE, actor=actor, team=team or team_personal_ensure(user=user),
                 target=record.prefix, detail={"name": record.name, "scope": scope,
                                               "team": team.slug if team else None,
                                               "expires_at": expires.isoformat() if expires else None})
    return record, token


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: Any, reason: str = "") -> ApiToken:
    """Revoke a token (its person's, or the operator CLI's for them). Idempotent."""
    _self_or_platform(user=token.user, actor=actor)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action=AuditEvent.Action.TOKEN_REVOKE, actor=actor,
                     team=token.team or team_personal_ensure(user=token.user),
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
