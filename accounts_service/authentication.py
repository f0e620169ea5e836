"""Bearer-token authentication for the REST API; tokens are looked up by their SHA-256 digest.

A token's limits are applied here, once for every route: an expired token is a 401; a token restricted to one
team marks the request's user (``TOKEN_TEAM_ATTR``), so every scoped query and role check sees that team alone;
``TokenScopePermission`` (a default permission class) refuses a read-only token anything but GET/HEAD/OPTIONS.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from accounts_service.models import ApiToken
from accounts_service.models.tenancy import TOKEN_TEAM_ATTR
from accounts_service.services import api_token_digest
from core.errors import Forbidden

LAST_USED_RESOLUTION = timedelta(minutes=1)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <token>")
        token = header[1].decode("ascii", errors="replace")
        # The digest is unique: a slice, not .first(), whose ORDER BY only costs here (every API request).
        record = next(iter(
            ApiToken.objects.select_related("user").filter(digest=api_token_digest(token), revoked_at__isnull=True)[:1]
        ), None)
        if record is None or not record.user.is_active:
            raise exceptions.AuthenticationFailed("invalid or revoked token")
        now = timezone.now()
        if record.expires_at is not None and record.expires_at <= now:
            raise exceptions.AuthenticationFailed(
                f"this token expired at {record.expires_at:%Y-%m-%dT%H:%M:%SZ}: create a new one", code="token_expired")
        if record.team_id is not None:
            setattr(record.user, TOKEN_TEAM_ATTR, record.team_id)
        # last_used_at is for people ("used 3 days ago"): refresh it at most once a minute, so an API call is
        # not also a write (and, on SQLite, a wait for the write lock).
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
        return record.user, record

    def authenticate_header(self, request) -> str:
        return self.keyword


class TokenScopePermission(permissions.BasePermission):
    """A ``read`` token may only read: every other method is a 403 (a default permission class, so no view can
    forget it)."""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if (isinstance(token, ApiToken) and token.scope == ApiToken.Scope.READ
                and request.method not in permissions.SAFE_METHODS):
            raise Forbidden("this API token is read-only (scope read): use a token with scope write to make changes",
                            code="token_read_only")
        return True
