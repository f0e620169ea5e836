"""The API's teams, members, tokens (scopes, team restriction, expiry), audit log and activation routes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts_service import services
from accounts_service.models import Account, ApiToken, AuditEvent, TeamMembership
from accounts_service.rights import PLATFORM
from operators import claims
from tests.api.routes import member_client

pytestmark = pytest.mark.django_db


def _client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def alice(operator_setup):
    return get_user_model().objects.create_user(username="alice", email="alice@example.com", password="pw-alice-123")


@pytest.fixture
def acme(alice):
    return services.team_create(name="acme", actor=alice)


@pytest.fixture
def api(alice):
    _, token = services.api_token_create(actor=alice, user=alice)
    return _client(token)


# ------------------------------------------------------------------------------------------------
# Teams and members
# ------------------------------------------------------------------------------------------------


def test_teams_lists_the_callers_teams_with_ids_and_roles_and_creates_one(api, acme):
    body = api.get("/api/v1/teams/").json()
    assert {(t["slug"], t["role"], t["personal"]) for t in body["results"]} == {("alice", "owner", True),
                                                                                ("acme", "owner", False)}
    assert {t["id"] for t in body["results"] if t["slug"] == "acme"} == {acme.pk}
    assert api.get(f"/api/v1/teams/{acme.pk}/").json()["name"] == "acme"
    created = api.post("/api/v1/teams/", {"name": "Initech"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["role"] == "owner"
    assert Account.objects.filter(team_id=created.json()["id"], name="default").exists()  # as on the web
    assert AuditEvent.objects.filter(action="team.create", team_id=created.json()["id"]).exists()


def test_members_invite_role_and_the_last_owner(api, acme, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invited = api.post(f"/api/v1/teams/{acme.pk}/members/", {"email": "Bob@Example.com", "role": "member"},
                           format="json")
    assert invited.status_code == 201, invited.content
    assert invited.json()["email"] == "bob@example.com"
    assert mail.outbox and "bob@example.com" in mail.outbox[-1].to  # the web's invitation service mailed it
    bob_api = member_client("bob", acme)
    members = api.get(f"/api/v1/teams/{acme.pk}/members/").json()["results"]
    assert [m["username"] for m in members] == ["alice", "bob"]
    bob_id = next(m["id"] for m in members if m["username"] == "bob")
    alice_id = next(m["id"] for m in members if m["username"] == "alice")
    # A member cannot invite, change roles or remove others: 403.
    refused = bob_api.post(f"/api/v1/teams/{acme.pk}/members/", {"email": "eve@example.com"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "owner_required")
    assert bob_api.patch(f"/api/v1/teams/{acme.pk}/members/{alice_id}/", {"role": "member"},
                         format="json").status_code == 403
    assert bob_api.delete(f"/api/v1/teams/{acme.pk}/members/{alice_id}/").status_code == 403
    # The last owner can be neither demoted nor removed.
    last = api.patch(f"/api/v1/teams/{acme.pk}/members/{alice_id}/", {"role": "member"}, format="json")
    assert (last.status_code, last.json()["code"]) == (409, "last_owner")
    assert api.delete(f"/api/v1/teams/{acme.pk}/members/{alice_id}/").status_code == 409
    promoted = api.patch(f"/api/v1/teams/{acme.pk}/members/{bob_id}/", {"role": "owner"}, format="json")
    assert (promoted.status_code, promoted.json()["role"]) == (200, "owner")
    assert api.delete(f"/api/v1/teams/{acme.pk}/members/{bob_id}/").status_code == 204
    assert not TeamMembership.objects.filter(team=acme, user__username="bob").exists()
    actions = list(AuditEvent.objects.for_team(acme).values_list("action", flat=True))
    assert {"member.invite", "member.role", "member.remove"} <= set(actions)


def test_invitations_mailed_to_the_caller_are_listed_and_accepted_by_id(api, alice, acme):
    bob = get_user_model().objects.create_user(username="bob", email="bob@example.com", password="pw-bob-123")
    invitation = services.invitation_create(team=acme, email="bob@example.com", role="member", actor=alice,
                                            base_url="http://testserver")
    _, token = services.api_token_create(actor=bob, user=bob)
    bob_api = _client(token)
    listed = bob_api.get("/api/v1/invitations/").json()["results"]
    assert [(i["id"], i["team_id"], i["team"], i["role"], i["invited_by"]) for i in listed] == [
        (invitation.pk, acme.pk, "acme", "member", "alice@example.com")]
    assert api.get("/api/v1/invitations/").json()["results"] == []  # alice was not invited
    # Only the invited email may accept: alice's own attempt is the 404 of an unknown id, and writes nothing.
    refused = api.post(f"/api/v1/invitations/{invitation.pk}/accept")
    assert (refused.status_code, refused.json()["code"]) == (404, "invitation_not_found")
    joined = bob_api.post(f"/api/v1/invitations/{invitation.pk}/accept")
    assert (joined.status_code, joined.json()["username"], joined.json()["role"]) == (200, "bob", "member")
    assert TeamMembership.objects.filter(team=acme, user=bob).exists()
    assert AuditEvent.objects.filter(team=acme, action="member.join", target="bob@example.com").count() == 1
    assert bob_api.get("/api/v1/invitations/").json()["results"] == []
    assert bob_api.post(f"/api/v1/invitations/{invitation.pk}/accept").status_code == 404  # used


# ------------------------------------------------------------------------------------------------
# Tokens
# ------------------------------------------------------------------------------------------------


def test_tokens_list_create_shown_once_and_revoke(api, alice):
    created = api.post("/api/v1/tokens/", {"name": "ci", "scope": "read", "expires_in_days": 30}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["token"].startswith(body["prefix"]) and body["scope"] == "read" and body["team"] is None
    assert dt.timedelta(days=29) < dt.datetime.fromisoformat(body["expires_at"]) - timezone.now() <= dt.timedelta(30)
    listed = api.get("/api/v1/tokens/").json()["results"]
    assert body["prefix"] in {t["prefix"] for t in listed}
    assert all("token" not in t for t in listed)  # never shown again
    assert api.get(f"/api/v1/tokens/{body['prefix']}/").json()["name"] == "ci"
    assert _client(body["token"]).get("/api/v1/teams/").status_code == 200
    assert api.delete(f"/api/v1/tokens/{body['prefix']}/").status_code == 204
    assert _client(body["token"]).get("/api/v1/teams/").status_code == 401
    both = api.post("/api/v1/tokens/", {"name": "x", "expires_in_days": 1, "expires_at": "2099-01-01T00:00:00Z"},
                    format="json")
    assert both.status_code == 400


def test_a_read_token_cannot_write(api, acme):
    token = api.post("/api/v1/tokens/", {"name": "ro", "scope": "read"}, format="json").json()["token"]
    reader = _client(token)
    assert reader.get("/api/v1/accounts/").status_code == 200
    refused = reader.post("/api/v1/accounts/", {"name": "shop", "team": acme.pk}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "token_read_only" and "read-only" in refused.json()["message"]
    assert not Account.objects.filter(name="shop").exists()
    assert reader.post("/api/v1/tokens/", {"name": "wider"}, format="json").status_code == 403  # no escalation


def test_a_team_restricted_token_sees_only_its_team(api, alice, acme):
    other = services.team_create(name="globex", actor=alice)
    mine = services.account_create(actor=PLATFORM, team=acme, name="shop")
    theirs = services.account_create(actor=PLATFORM, team=other, name="feed")
    body = api.post("/api/v1/tokens/", {"name": "acme-ci", "team": acme.pk}, format="json").json()
    scoped = _client(body["token"])
    assert body["team"] == acme.pk
    assert [t["id"] for t in scoped.get("/api/v1/teams/").json()["results"]] == [acme.pk]
    assert {a["public_key"] for a in scoped.get("/api/v1/accounts/").json()["results"]} == {mine.public_key}
    assert scoped.get(f"/api/v1/accounts/{mine.public_key}/").status_code == 200
    for path in (f"/api/v1/accounts/{theirs.public_key}/", f"/api/v1/teams/{other.pk}/",
                 f"/api/v1/teams/{other.pk}/audit/"):
        assert scoped.get(path).status_code == 404, path  # as for a stranger
    assert scoped.delete(f"/api/v1/accounts/{theirs.public_key}/").status_code == 404
    # A new account lands in the token's team; a token made with it is restricted to the same team.
    created = scoped.post("/api/v1/accounts/", {"name": "new"}, format="json")
    assert created.status_code == 201 and Account.objects.get(public_key=created.json()["public_key"]).team == acme
    assert scoped.post("/api/v1/accounts/", {"name": "x", "team": other.pk}, format="json").status_code == 404
    assert scoped.post("/api/v1/tokens/", {"name": "t"}, format="json").json()["team"] == acme.pk
    assert scoped.post("/api/v1/tokens/", {"name": "t2", "team": other.pk}, format="json").status_code == 404


def test_an_expired_token_is_a_401_that_says_so(alice):
    record, token = services.api_token_create(actor=alice, user=alice, expires_in_days=1)
    ApiToken.objects.filter(pk=record.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = _client(token).get("/api/v1/accounts/")
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


def test_the_web_token_page_takes_scope_team_and_expiry(client, alice, acme):
    client.force_login(alice)
    response = client.post("/tokens/", {"name": "web-ro", "scope": "read", "team": str(acme.pk),
                                        "expires_in_days": "7"})
    assert response.status_code == 200, response.content[:500]
    record = ApiToken.objects.get(name="web-ro")
    assert (record.scope, record.team_id) == ("read", acme.pk) and record.expires_at is not None
    assert b"read" in response.content


# ------------------------------------------------------------------------------------------------
# Audit log
# ------------------------------------------------------------------------------------------------


def test_audit_is_filterable_and_paginated(api, acme, alice):
    account = services.account_create(actor=alice, team=acme, name="shop")
    services.account_update(actor=alice, account=account, limits={"conn": 5})
    services.account_update(actor=alice, account=account, name="shop2")
    url = f"/api/v1/teams/{acme.pk}/audit/"
    updates = api.get(url, {"action": "account.update"}).json()
    assert updates["count"] == 2
    assert updates["results"][1]["detail"]["changes"] == {"conn": {"before": -1, "after": 5}}  # only what changed
    assert api.get(url, {"action": "account."}).json()["count"] == 3
    assert api.get(url, {"target": account.public_key, "actor": "alice"}).json()["count"] == 3
    assert api.get(url, {"actor": "nobody"}).json()["count"] == 0
    assert api.get(url, {"until": "2000-01-01T00:00:00Z"}).json()["count"] == 0
    assert api.get(url, {"since": "2000-01-01T00:00:00Z", "limit": 1}).json()["next"]
    assert api.get(url, {"since": "yesterday"}).status_code == 400


# ------------------------------------------------------------------------------------------------
# Activations
# ------------------------------------------------------------------------------------------------


def test_activations_list_and_revoke(api, acme):
    exporter = services.account_create(actor=PLATFORM, team=acme, name="feed")
    importer = services.account_create(actor=PLATFORM, team=acme, name="shop")
    export = services.export_create(actor=PLATFORM, account=exporter, name="q", subject="q.>", type="stream",
                                    private=True)
    base = f"/api/v1/accounts/{exporter.public_key}/exports/{export.pk}/activations/"
    created = api.post(base, {"target": importer.public_key}, format="json")
    assert created.status_code == 201, created.content
    activation_id = created.json()["id"]
    listed = api.get(base).json()["results"]
    assert [(a["id"], a["target"], a["revoked_at"]) for a in listed] == [(activation_id, importer.public_key, None)]
    assert "token" not in listed[0]
    revoked = api.post(f"{base}{activation_id}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    exports = claims.decode(Account.objects.get(pk=exporter.pk).jwt).nats["exports"]
    assert importer.public_key in exports[0]["revocations"]  # re-signed: the push carries it to the servers
    assert api.post(f"{base}{activation_id}/revoke").status_code == 200  # idempotent
    assert AuditEvent.objects.filter(action="activation.revoke", target=importer.public_key).count() == 1
    assert api.get(f"{base}999999/").status_code == 404
