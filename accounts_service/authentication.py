"""Bearer-token authentication for the REST API; tokens are looked up by their SHA-256 digest."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts_service.models import ApiToken
from accounts_service.services import api_token_digest

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
        # last_used_at is for people ("used 3 days ago"): refresh it at most once a minute, so an API call is
        # not also a write (and, on SQLite, a wait for the write lock).
        now = timezone.now()
        if record.last_used_at is None or now - record.last_used_at > LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
        return record.user, record

    def authenticate_header(self, request) -> str:
        return self.keyword
