"""The audit log: security actions are appended with who and what, and rows can never change."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts_service import services
from accounts_service.models import AuditEvent
from accounts_service.rights import PLATFORM

pytestmark = pytest.mark.django_db


def test_token_create_and_revoke_are_audited_to_the_personal_team():
    user = get_user_model().objects.create_user(username="ops", password="pw-ops-12345")
    record, token = services.api_token_create(actor=user, user=user, name="ci")
    services.api_token_revoke(actor=user, token=record)
    services.api_token_revoke(actor=user, token=record)  # already revoked: no second event
    team = services.team_personal_ensure(user=user)
    events = list(AuditEvent.objects.for_team(team).order_by("at", "pk"))
    assert [(e.action, e.target, e.actor_name) for e in events] == [
        ("token.create", record.prefix, "ops"), ("token.revoke", record.prefix, "ops")]
    assert all(token not in str(e.detail) for e in events)  # the token itself is never logged


def test_audit_events_are_append_only():
    event = services.audit_record(action=AuditEvent.Action.KEY_ROTATE, actor=PLATFORM, target="AABC")
    event.target = "changed"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        event.delete()
    with pytest.raises(TypeError):
        AuditEvent.objects.all().update(target="x")
    with pytest.raises(TypeError):
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(pk=event.pk).target == "AABC"


def test_unknown_action_is_refused():
    from core.errors import ApplicationError

    with pytest.raises(ApplicationError):
        services.audit_record(action="user.pwned", actor=PLATFORM)
    assert not AuditEvent.objects.exists()


def test_creds_download_and_revoke_through_the_api_are_audited(operator_setup):
    from rest_framework.test import APIClient

    owner = get_user_model().objects.create_user(username="dana", password="pw-dana-12345")
    team = services.team_create(name="shop", actor=owner)
    account = services.account_create(actor=PLATFORM, team=team, name="web")
    user = services.user_create(actor=PLATFORM, account=account, name="app", pub_allow=[">"])
    client = APIClient()
    _, token = services.api_token_create(actor=PLATFORM, user=owner)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    base = f"/api/v1/accounts/{account.public_key}/users/{user.public_key}"
    setup = list(AuditEvent.objects.values_list("pk", flat=True))  # (the creations above are audited too)
    assert client.get(f"{base}/creds").status_code == 200
    assert client.post(f"{base}/revoke").status_code == 200
    assert client.post(f"{base}/revoke").status_code == 200  # already revoked: not a second event
    events = [(e.action, e.target, e.actor_name)
              for e in AuditEvent.objects.for_team(team).exclude(pk__in=setup).order_by("at", "pk")]
    assert events == [("creds.download", user.public_key, "dana"), ("user.revoke", user.public_key, "dana")]
