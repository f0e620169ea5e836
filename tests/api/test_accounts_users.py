"""REST API v1 accounts and users: happy paths, cross-team 404s, bad input in the one error shape, creds, revoke."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from accounts_service import services
from accounts_service.models import Account, AuditEvent, NatsUser, Revocation, Team, TeamMembership
from accounts_service.rights import PLATFORM
from operators import claims, nkeys
from operators.nkeys import KeyType
from tests.api.routes import token_client

pytestmark = pytest.mark.django_db

ACCOUNTS = "/api/v1/accounts/"


def _account_url(account: Account, suffix: str = "") -> str:
    return f"{ACCOUNTS}{account.public_key}/{suffix}"


def _user_url(user: NatsUser, suffix: str = "") -> str:
    return f"{ACCOUNTS}{user.account.public_key}/users/{user.public_key}/{suffix}"


def _person(username: str, *, team: Team | None = None):
    person = get_user_model().objects.create_user(username=username, password="pw-" + username)
    if team is not None:
        services.team_member_add(team=team, user=person)
    return person


_client = token_client


def _assert_error(response, status_code: int) -> dict:
    assert response.status_code == status_code, response.content
    body = response.json()
    assert set(body) == {"message", "code", "extra"} and isinstance(body["code"], str)
    assert isinstance(body["message"], str) and body["message"]
    return body


@pytest.fixture
def alice(team):
    return _person("alice", team=team)


@pytest.fixture
def api(alice) -> APIClient:
    return _client(alice)


@pytest.fixture
def intruder(other_team) -> APIClient:
    return _client(_person("mallory", team=other_team))


@pytest.fixture
def account(operator_setup, team) -> Account:
    # Created before any BrokerNode exists, so the on-issue push has nothing to reach.
    return services.account_create(actor=PLATFORM, team=team, name="app")


@pytest.fixture
def nats_user(account) -> NatsUser:
    return services.user_create(actor=PLATFORM,
                                account=account, name="svc", pub_allow=["orders.>"], sub_allow=["_INBOX.>"])


def _public_user_key() -> str:
    return nkeys.generate(KeyType.USER).public_key


# ------------------------------------------------------------------------------------------------
# Accounts
# ------------------------------------------------------------------------------------------------


def test_account_list_shows_only_the_callers_teams(api, account, other_team):
    services.account_create(actor=PLATFORM, team=other_team, name="theirs")
    response = api.get(ACCOUNTS)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert [a["public_key"] for a in body["results"]] == [account.public_key]


def test_account_list_is_paginated(api, team, operator_setup):
    for i in range(3):
        services.account_create(actor=PLATFORM, team=team, name=f"a{i}")
    body = api.get(ACCOUNTS, {"limit": 2}).json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


def test_account_create_defaults_to_the_personal_team(api, alice, operator_setup):
    response = api.post(ACCOUNTS, {"name": "mine", "description": "first", "plan": "free"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    personal = Team.objects.get(is_personal=True, memberships__user=alice)
    assert body["team"] == personal.pk
    assert body["name"] == "mine" and body["description"] == "first"
    assert body["version"] == 1 and body["jwt_iat"] > 0 and body["jwt_jti"]
    assert set(body) == {"public_key", "name", "description", "team", "plan", "limits", "version", "jwt_iat",
                         "jwt_jti", "created_at", "updated_at"}
    assert body["plan"] == "free" and body["limits"]["conn"] == 50  # the free plan's allowance
    assert Account.objects.filter(public_key=body["public_key"], team=personal).exists()


def test_account_limits_stay_within_the_plan(api, alice, operator_setup):
    created = api.post(ACCOUNTS, {"name": "capped", "limits": {"conn": 10}}, format="json")
    assert created.status_code == 201 and created.json()["limits"]["conn"] == 10
    pk = created.json()["public_key"]
    over = api.patch(f"{ACCOUNTS}{pk}/", {"limits": {"conn": 10_000, "leaf": -1}}, format="json")
    assert over.status_code == 400
    assert over.json()["message"] == "the free plan allows conn at most 50, leaf at most 2"
    assert over.json()["extra"]["fields"] == ["conn", "leaf"]
    assert api.get(f"{ACCOUNTS}{pk}/").json()["limits"]["conn"] == 10
    refused = api.post(ACCOUNTS, {"name": "huge", "limits": {"disk_storage": -1}}, format="json")
    assert refused.status_code == 400 and "disk_storage" in refused.json()["message"]


def test_account_create_in_a_named_team_with_limits(api, team, operator_setup):
    response = api.post(ACCOUNTS, {"name": "big", "team": team.pk, "limits": {"conn": 10, "wildcard_exports": False}},
                        format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["team"] == team.pk
    assert body["limits"]["conn"] == 10 and body["limits"]["wildcard_exports"] is False
    assert body["limits"]["subs"] == 1000  # the rest is the free plan's allowance


def test_account_create_in_another_team_is_404(api, other_team, operator_setup):
    before = Account.objects.count()
    _assert_error(api.post(ACCOUNTS, {"name": "x", "team": other_team.pk}, format="json"), 404)
    assert Account.objects.count() == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "ok", "plan": "platinum"}, "plan"),
        ({"name": "ok", "plan": "Pro!"}, "plan"),
        ({"name": "ok", "limits": {"conn": -5}}, "conn"),
        ({"name": "ok", "limits": {"conn": "many"}}, "conn"),
        ({"name": "ok", "limits": {"bogus": 1}}, "bogus"),
        ({"name": "ok", "limits": [1]}, "limits"),
        ({"name": "ok", "team": "acme"}, "team"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"name": "bad\x01name"}, "name"),
    ],
)
def test_account_create_bad_input_is_400_and_writes_nothing(api, operator_setup, payload, field):
    before = Account.objects.count()
    body = _assert_error(api.post(ACCOUNTS, payload, format="json"), 400)
    assert field in str(body)
    assert Account.objects.count() == before


def test_account_create_duplicate_name_is_409(api, account, team):
    body = _assert_error(api.post(ACCOUNTS, {"name": "app", "team": team.pk}, format="json"), 409)
    assert body["extra"] == {"field": "name"}
    assert Account.objects.filter(team=team).count() == 1


def test_account_detail(api, account):
    response = api.get(_account_url(account))
    assert response.status_code == 200
    assert response.json()["public_key"] == account.public_key
    assert "jwt" not in response.json()


def test_account_patch(api, account):
    response = api.patch(_account_url(account), {"description": "new", "limits": {"subs": 100}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["description"] == "new" and body["limits"]["subs"] == 100
    assert body["version"] == account.version + 1
    account.refresh_from_db()
    assert account.subs == 100


def test_account_patch_bad_input_changes_nothing(api, account):
    _assert_error(api.patch(_account_url(account), {"name": "renamed", "limits": {"subs": -9}}, format="json"), 400)
    _assert_error(api.patch(_account_url(account), {"plan": "Free!"}, format="json"), 400)
    _assert_error(api.patch(_account_url(account), {"plan": "free"}, format="json"), 403)  # owners only
    fresh = Account.objects.get(pk=account.pk)
    assert (fresh.name, fresh.subs, fresh.version, fresh.plan) == ("app", -1, account.version, "")


def test_account_delete_needs_an_owner(api, alice, account, nats_user):
    """A member's DELETE is refused as the web refuses it (403, nothing deleted); an owner's is audited."""
    body = _assert_error(api.delete(_account_url(account)), 403)
    assert body["code"] == "owner_required"
    assert Account.objects.filter(pk=account.pk).exists()
    TeamMembership.objects.filter(user=alice).update(role=TeamMembership.Role.OWNER)
    assert _client(alice).delete(_account_url(account)).status_code == 204
    assert not Account.objects.filter(pk=account.pk).exists()
    assert not NatsUser.objects.filter(pk=nats_user.pk).exists()
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNT_DELETE, target=account.public_key)
    assert event.actor == alice and event.team_id == account.team_id


def test_system_account_delete_is_refused(operator_setup):
    from accounts_service.services import platform_team_get

    admin = _person("root", team=platform_team_get())
    TeamMembership.objects.filter(user=admin).update(role=TeamMembership.Role.OWNER)
    system = Account.objects.get(is_system=True)
    _assert_error(_client(admin).delete(_account_url(system)), 409)
    assert Account.objects.filter(pk=system.pk).exists()


def test_account_jwt_is_plain_text(api, account):
    response = api.get(_account_url(account, "jwt"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == account.jwt
    # A client asking for text explicitly is not refused by content negotiation.
    assert api.get(_account_url(account, "jwt"), HTTP_ACCEPT="text/plain").status_code == 200


def test_unknown_account_is_404(api, operator_setup):
    _assert_error(api.get(f"{ACCOUNTS}ANOTAREALKEY/"), 404)


def test_anonymous_is_refused(account):
    response = APIClient().get(ACCOUNTS)
    assert response.status_code in (401, 403)
    assert set(response.json()) == {"message", "code", "extra"}


# ------------------------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------------------------


def test_user_list(api, account, nats_user):
    services.user_create(actor=PLATFORM, account=account, name="second")
    body = api.get(_account_url(account, "users/"), {"limit": 1}).json()
    assert body["count"] == 2 and len(body["results"]) == 1
    assert body["results"][0]["public_key"] == nats_user.public_key


def test_user_create_generated_key(api, account):
    expires = (timezone.now() + dt.timedelta(days=30)).replace(microsecond=0)
    payload = {
        "name": "worker",
        "permissions": {"pub": {"allow": ["orders.>"], "deny": ["orders.secret"]}, "sub": {"allow": ["_INBOX.>"]},
                        "allow_responses": True},
        "limits": {"subs": 10, "data": -1, "payload": 1024},
        "expires_at": expires.isoformat(),
    }
    response = api.post(_account_url(account, "users/"), payload, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["public_key"].startswith("U")
    assert body["account"] == account.public_key
    assert body["permissions"] == {"pub": {"allow": ["orders.>"], "deny": ["orders.secret"]},
                                   "sub": {"allow": ["_INBOX.>"], "deny": []}, "allow_responses": True}
    assert body["limits"] == {"subs": 10, "data": -1, "payload": 1024}
    assert body["creds_available"] is True and body["revoked_at"] is None
    assert dt.datetime.fromisoformat(body["expires_at"]) == expires
    assert not any("seed" in key for key in body)
    user = NatsUser.objects.get(public_key=body["public_key"])
    seed_line = next(line for line in services.user_creds_get(user=user).splitlines() if line.startswith("SU"))
    assert seed_line not in response.content.decode()  # the seed never appears in the output
    assert user.seed_id is not None and user.payload == 1024


def test_user_create_from_public_key_has_no_creds(api, account):
    key = _public_user_key()
    response = api.post(_account_url(account, "users/"), {"name": "byo", "public_key": key}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["public_key"] == key and response.json()["creds_available"] is False
    user = NatsUser.objects.get(public_key=key)
    assert user.seed_id is None
    body = _assert_error(api.get(_user_url(user, "creds")), 409)
    assert "seed" in body["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": "u", "permissions": {"pub": {"allow": ["bad subject"]}}}, "pub_allow"),
        ({"name": "u", "permissions": {"pub": {"allow": "orders.>"}}}, "allow"),
        ({"name": "u", "permissions": {"pub": {"alow": ["x"]}}}, "alow"),
        ({"name": "u", "permissions": {"publish": {"allow": ["x"]}}}, "publish"),
        ({"name": "u", "limits": {"subs": -2}}, "subs"),
        ({"name": "u", "limits": {"subs": "lots"}}, "subs"),
        ({"name": "u", "limits": {"conn": 1}}, "conn"),
        ({"name": "u", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "u", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "u", "public_key": "not-a-key"}, "public_key"),
        ({"name": "u", "public_key": "ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA"}, "public_key"),
        ({"name": "u", "seed": "SU..."}, "seed"),
        ({"name": "svc"}, "name"),  # taken by the fixture's user: a conflict, 409
    ],
)
def test_user_create_bad_input_is_400_and_writes_nothing(api, account, nats_user, payload, field):
    before = (NatsUser.objects.count(), Account.objects.get(pk=account.pk).version)
    expected = 409 if payload == {"name": "svc"} else 400
    body = _assert_error(api.post(_account_url(account, "users/"), payload, format="json"), expected)
    assert field in str(body)
    assert (NatsUser.objects.count(), Account.objects.get(pk=account.pk).version) == before


def test_user_detail(api, nats_user):
    response = api.get(_user_url(nats_user))
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "svc" and body["permissions"]["pub"]["allow"] == ["orders.>"]
    assert "jwt" not in body and "seed" not in body


def test_user_patch(api, nats_user):
    response = api.patch(_user_url(nats_user), {"permissions": {"sub": {"allow": ["events.>"]}},
                                                "limits": {"subs": 5}}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["permissions"]["sub"]["allow"] == ["events.>"]
    assert body["permissions"]["pub"]["allow"] == ["orders.>"]  # untouched
    assert body["limits"]["subs"] == 5
    assert body["jwt_iat"] > nats_user.jwt_iat
    # The earlier JWT of the key is revoked in the account JWT.
    assert Revocation.objects.filter(public_key=nats_user.public_key).exists()


def test_user_patch_bad_input_changes_nothing(api, nats_user):
    for payload in ({"limits": {"subs": -3}}, {"public_key": _public_user_key()}, {"permissions": {"pub": 1}},
                    {"name": ""}):
        _assert_error(api.patch(_user_url(nats_user), payload, format="json"), 400)
    fresh = NatsUser.objects.get(pk=nats_user.pk)
    assert (fresh.subs, fresh.jwt, fresh.name) == (nats_user.subs, nats_user.jwt, nats_user.name)


def test_user_delete(api, nats_user):
    assert api.delete(_user_url(nats_user)).status_code == 204
    assert not NatsUser.objects.filter(pk=nats_user.pk).exists()
    assert Revocation.objects.filter(public_key=nats_user.public_key).exists()


def test_user_creds(api, nats_user):
    response = api.get(_user_url(nats_user, "creds"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"] == 'attachment; filename="svc.creds"'
    text = response.content.decode()
    assert "BEGIN NATS USER JWT" in text and nats_user.jwt in text and "BEGIN USER NKEY SEED" in text


def test_creds_filename_is_sanitized(api, account):
    user = services.user_create(actor=PLATFORM, account=account, name='we"ird/näme')
    response = api.get(_user_url(user, "creds"))
    assert response["Content-Disposition"] == 'attachment; filename="we_ird_n_me.creds"'


def test_user_revoke(api, nats_user):
    version = Account.objects.get(pk=nats_user.account_id).version
    response = api.post(_user_url(nats_user, "revoke"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["revoked_at"] and body["creds_available"] is False
    assert Account.objects.get(pk=nats_user.account_id).version == version + 1
    assert Revocation.objects.filter(public_key=nats_user.public_key).exists()
    # Revoked: no creds, no changes; revoking again is a no-op.
    _assert_error(api.get(_user_url(nats_user, "creds")), 409)
    _assert_error(api.patch(_user_url(nats_user), {"limits": {"subs": 1}}, format="json"), 409)
    assert api.post(_user_url(nats_user, "revoke")).status_code == 200


def test_user_of_another_account_is_404_under_this_one(api, account, team, nats_user):
    sibling = services.account_create(actor=PLATFORM, team=team, name="sibling")
    wrong = f"{ACCOUNTS}{sibling.public_key}/users/{nats_user.public_key}/"
    for response in (api.get(wrong), api.get(wrong + "creds"), api.post(wrong + "revoke"), api.delete(wrong)):
        _assert_error(response, 404)
    assert NatsUser.objects.get(pk=nats_user.pk).revoked_at is None


def test_unknown_user_is_404(api, account):
    _assert_error(api.get(f"{_account_url(account)}users/{_public_user_key()}/"), 404)


# ------------------------------------------------------------------------------------------------
# Isolation: another team's token gets a 404 on every route, and nothing changes
# ------------------------------------------------------------------------------------------------


def _requests(account: Account, user: NatsUser):
    a, u = _account_url(account), _user_url(user)
    return [
        ("get", a, None),
        ("patch", a, {"description": "pwned"}),
        ("delete", a, None),
        ("get", a + "jwt", None),
        ("get", a + "users/", None),
        ("post", a + "users/", {"name": "intruder"}),
        ("get", u, None),
        ("patch", u, {"limits": {"subs": 1}}),
        ("delete", u, None),
        ("get", u + "creds", None),
        ("post", u + "revoke", None),
    ]


@pytest.mark.parametrize("index", range(11))
def test_another_team_gets_404_everywhere(intruder, account, nats_user, index):
    method, url, payload = _requests(account, nats_user)[index]
    response = getattr(intruder, method)(url, payload, format="json")
    body = _assert_error(response, 404)
    assert "pwned" not in str(body)
    fresh_account = Account.objects.get(pk=account.pk)
    fresh_user = NatsUser.objects.get(pk=nats_user.pk)
    assert (fresh_account.description, fresh_account.version) == ("", account.version)
    assert (fresh_user.revoked_at, fresh_user.subs) == (None, -1)
    assert NatsUser.objects.filter(account=account).count() == 1


def test_another_team_does_not_see_the_account_in_lists(intruder, account):
    assert intruder.get(ACCOUNTS).json()["count"] == 0


def test_user_tags_are_set_shown_and_signed(api, account):
    response = api.post(_account_url(account, "users/"), {"name": "t", "tags": ["Site:Lyon", "edge"]}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["tags"] == ["edge", "site:lyon"]
    user = NatsUser.objects.get(account=account, name="t")
    assert claims.decode(user.jwt).nats["tags"] == ["edge", "site:lyon"]
    bad = api.post(_account_url(account, "users/"), {"name": "u", "tags": ["a b"]}, format="json")
    assert bad.status_code == 400 and bad.json()["extra"]["field"] == "tags"
