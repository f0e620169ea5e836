"""REST API: a new user's ``.creds`` in the creation's answer (``POST .../users/`` with ``Accept: text/plain``).

One round trip, as ``nsc add user`` then ``nsc generate creds``: the same checks and 4xx as the JSON creation, two
audit rows (the creation and the download) in one transaction, and nothing written when anything fails.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth import get_user_model

from accounts_service import services
from accounts_service.models import Account, ApiToken, AuditEvent, NatsUser
from accounts_service.rights import PLATFORM
from operators import claims, creds, nkeys
from operators import services as op_services
from operators.nkeys import KeyType
from tests.api.routes import token_client

pytestmark = pytest.mark.django_db

PERMISSIONS = {"pub": {"allow": ["orders.>"]}, "sub": {"allow": ["_INBOX.>"]}}


@pytest.fixture
def person(team):
    person = get_user_model().objects.create_user(username="carol", password="pw-carol")
    services.team_member_add(team=team, user=person)
    return person


@pytest.fixture
def api(person):
    return token_client(person)


@pytest.fixture
def account(operator_setup, team) -> Account:
    return services.account_create(actor=PLATFORM, team=team, name="app")


def _users_url(account: Account) -> str:
    return f"/api/v1/accounts/{account.public_key}/users/"


def _post_creds(api, account: Account, payload: dict):
    return api.post(_users_url(account), payload, format="json", HTTP_ACCEPT="text/plain")


def _written(account: Account) -> tuple[int, int]:
    return NatsUser.objects.filter(account=account).count(), AuditEvent.objects.count()


def test_post_with_accept_text_plain_answers_the_new_users_creds(api, account):
    response = _post_creds(api, account, {"name": "worker", "permissions": PERMISSIONS, "limits": {"subs": 7}})
    assert response.status_code == 201, response.content
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"] == 'attachment; filename="worker.creds"'
    parsed = creds.parse_creds(response.content)
    user = NatsUser.objects.get(account=account, name="worker")
    assert response["Location"] == f"{_users_url(account)}{user.public_key}/"
    # The seed is the user's own key, the JWT the one stored (signed for this key, with the permissions asked).
    assert nkeys.from_seed(parsed.seed, KeyType.USER).public_key == user.public_key
    assert parsed.jwt == user.jwt
    jwt = claims.decode(parsed.jwt, expected_type="user")
    assert jwt.subject == user.public_key and jwt.nats["issuer_account"] == account.public_key
    assert jwt.nats["pub"] == {"allow": ["orders.>"]} and jwt.nats["subs"] == 7
    # The same file the creds route hands out later.
    again = api.get(f"{_users_url(account)}{user.public_key}/creds", HTTP_ACCEPT="text/plain")
    assert again.status_code == 200 and again.content == response.content
    # Audited as a creation and a download, by the person, for this user.
    events = list(AuditEvent.objects.filter(target=user.public_key).order_by("pk")
                  .values_list("action", "actor_name", "detail"))
    assert [(a, n) for a, n, _ in events[:2]] == [("user.create", "carol"), ("creds.download", "carol")]
    assert events[1][2] == {"account": account.public_key, "user": "worker", "via": "api"}
    assert events[0][2]["own_key"] is False


def test_post_without_accept_text_plain_is_the_json_user_as_before(api, account):
    for accept in ("application/json", "*/*"):
        response = api.post(_users_url(account), {"name": f"u-{len(accept)}"}, format="json", HTTP_ACCEPT=accept)
        assert response.status_code == 201, response.content
        assert response["Content-Type"].startswith("application/json")
        body = response.json()
        assert body["creds_available"] is True and "seed" not in response.content.decode().lower()
        assert not AuditEvent.objects.filter(target=body["public_key"], action="creds.download").exists()


def test_own_public_key_with_accept_text_plain_is_400_and_writes_nothing(api, account):
    before = _written(account)
    key = nkeys.generate(KeyType.USER).public_key
    response = _post_creds(api, account, {"name": "byo", "public_key": key})
    assert response.status_code == 400, response.content
    body = json.loads(response.content)  # (the one error shape, as JSON text under the text/plain asked for)
    assert body["code"] == "creds_seed_unknown" and body["extra"] == {"field": "public_key"}
    assert "seed" in body["message"]
    assert _written(account) == before


def _holds_a_seed(body: bytes) -> bool:
    """A user seed (SU + 56 base32 characters) or a .creds block anywhere in ``body`` (an account's public key may
    well contain the letters SU)."""
    return re.search(rb"(?<![A-Z2-7])SU[A-Z2-7]{56}(?![A-Z2-7])", body) is not None or b"NKEY SEED" in body


@pytest.mark.parametrize(("payload", "status", "field"), [
    ({}, 400, "name"),
    ({"name": "u", "permissions": {"pub": {"allow": ["bad subject"]}}}, 400, "pub_allow"),
    ({"name": "u", "limits": {"subs": "lots"}}, 400, "subs"),
    ({"name": "u", "seed": "SU..."}, 400, "seed"),
    ({"name": "taken"}, 409, "name"),
])
def test_bad_input_with_accept_text_plain_is_the_same_error_and_writes_nothing(api, account, payload, status, field):
    services.user_create(actor=PLATFORM, account=account, name="taken")
    before = _written(account)
    response = _post_creds(api, account, payload)
    json_response = api.post(_users_url(account), payload, format="json")
    assert response.status_code == json_response.status_code == status, response.content
    assert response.content == json_response.content  # the one error shape, whichever was asked for
    assert field in response.content.decode() and not _holds_a_seed(response.content)
    assert _written(account) == before


def test_a_failure_after_the_insert_rolls_back_the_user_and_both_audit_rows(api, account, monkeypatch):
    before = _written(account)

    def broken(**kwargs):
        raise RuntimeError("the keyring is unavailable")

    monkeypatch.setattr(op_services, "creds_render", broken)
    with pytest.raises(RuntimeError):
        _post_creds(api, account, {"name": "half"})
    assert _written(account) == before and not NatsUser.objects.filter(name="half").exists()


def test_read_only_token_and_another_team_get_no_user_and_no_creds(person, account, other_team):
    before = _written(account)
    _, token = services.api_token_create(actor=PLATFORM, user=person, scope=ApiToken.Scope.READ)
    reader = token_client(person)
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert _post_creds(reader, account, {"name": "r"}).status_code == 403
    outsider = get_user_model().objects.create_user(username="mallory", password="pw-m")
    services.team_member_add(team=other_team, user=outsider)
    response = _post_creds(token_client(outsider), account, {"name": "m"})
    assert response.status_code == 404 and not _holds_a_seed(response.content)
    assert NatsUser.objects.filter(account=account).count() == before[0]
    assert not AuditEvent.objects.filter(action__in=["user.create", "creds.download"],
                                         detail__user__in=["r", "m"]).exists()


def test_the_list_still_answers_json_only(api, account):
    assert api.get(_users_url(account), HTTP_ACCEPT="text/plain").status_code == 406
    assert api.get(_users_url(account), HTTP_ACCEPT="application/json").status_code == 200


def test_service_creates_and_audits_in_one_step(account):
    user, text = services.user_create_with_creds(account=account, actor=PLATFORM, name="svc2", via="test",
                                                 pub_allow=["a.>"])
    assert text == services.user_creds_get(user=user)
    assert list(AuditEvent.objects.filter(target=user.public_key).values_list("action", flat=True).order_by("pk")) \
        == ["user.create", "creds.download"]
