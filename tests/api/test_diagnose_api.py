"""POST /api/v1/diagnose: the answer for one's own creds or user, the same 404 for another team's and unknown ones,
input limits, no-store, and the seed never in the answer."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts_service import services
from accounts_service.models import NatsUser
from accounts_service.rights import PLATFORM
from operators import creds as creds_mod
from operators import nkeys
from operators.nkeys import KeyType
from tests.api.routes import token_client

pytestmark = pytest.mark.django_db
URL = "/api/v1/diagnose"


@pytest.fixture
def setup(operator_setup):
    alice = get_user_model().objects.create_user(username="alice", password="pw-alice-123")
    mallory = get_user_model().objects.create_user(username="mallory", password="pw-mallory-123")
    acme = services.team_create(name="acme", actor=alice)
    services.team_create(name="globex", actor=mallory)
    account = services.account_create(actor=PLATFORM, team=acme, name="shop")
    user = services.user_create(actor=PLATFORM, account=account, name="app", pub_allow=["orders.>"],
                                pub_deny=["orders.secret"])
    text = services.user_creds_get(user=user)
    return {"alice": token_client(alice), "mallory": token_client(mallory), "account": account, "user": user,
            "creds": text}


def _seed(text: str) -> str:
    return creds_mod.parse_creds(text).seed


def test_own_creds_get_the_checklist_without_the_seed(setup):
    r = setup["alice"].post(URL, {"creds": setup["creds"], "subject": "orders.secret", "action": "pub"},
                            format="json")
    assert r.status_code == 200, r.content
    assert r["Cache-Control"] == "no-store"
    body = r.json()
    assert _seed(setup["creds"]) not in r.content.decode()
    assert body["account"] == setup["account"].public_key and body["user"] == setup["user"].public_key
    assert body["verdict"] == {"ok": False, "cause": "permission", "message": body["checks"][0]["message"]}
    perm = body["checks"][0]
    assert perm["detail"]["rule"] == "deny" and perm["detail"]["pattern"] == "orders.secret"
    names = [c["check"] for c in body["checks"]]
    assert {"creds", "user_jwt", "seed_pair", "issuer", "revocation", "suspension", "conn_limit", "nodes"} <= set(names)


def test_picked_user_and_allowed_subject(setup):
    r = setup["alice"].post(URL, {"account": setup["account"].public_key, "user": setup["user"].public_key,
                                  "subject": "orders.new", "action": "pub"}, format="json")
    assert r.status_code == 200, r.content
    perm = next(c for c in r.json()["checks"] if c["check"] == "permission")
    assert perm["ok"] and perm["detail"]["rule"] == "allow"


def test_revoked_user_is_the_verdict(setup):
    services.user_revoke(actor=PLATFORM, user=setup["user"])
    body = setup["alice"].post(URL, {"creds": setup["creds"]}, format="json").json()
    assert body["verdict"]["cause"] == "revocation" and not body["verdict"]["ok"]


def test_another_teams_creds_and_user_are_the_same_404_as_unknown(setup):
    """Isolation: mallory learns nothing about acme's creds, account or user, whatever she sends."""
    stranger_acc = nkeys.generate(KeyType.ACCOUNT)
    unknown_user = nkeys.generate(KeyType.USER)
    from operators import claims

    unknown_jwt = claims.encode(claims.USER, subject=unknown_user.public_key, nats=claims.user_nats(),
                                signer=stranger_acc)
    unknown_creds = creds_mod.format_creds(unknown_jwt, unknown_user.seed)
    answers = []
    for body in ({"creds": setup["creds"]}, {"creds": unknown_creds},
                 {"account": setup["account"].public_key, "user": setup["user"].public_key},
                 {"account": stranger_acc.public_key, "user": unknown_user.public_key}):
        r = setup["mallory"].post(URL, body, format="json")
        assert r.status_code == 404, (body, r.content)
        answers.append(r.json())
        assert setup["account"].public_key not in r.content.decode()
        assert setup["user"].public_key not in r.content.decode()
    assert all(a == answers[0] for a in answers), answers
    assert answers[0]["code"] == "diagnose_not_yours"
    # alice reaches the same objects (so the 404 above is isolation)
    assert setup["alice"].post(URL, {"creds": setup["creds"]}, format="json").status_code == 200


@pytest.mark.parametrize("body", [
    {},
    {"creds": "x", "account": "A"},
    {"account": "A"},
    {"creds": "x" * (16 * 1024 + 1)},
    {"creds": "x", "subject": "a"},
    {"creds": "x", "subject": "a b", "action": "pub"},
    {"creds": "x", "subject": "a.*", "action": "pub"},
    {"creds": "x", "action": "publish", "subject": "a"},
    {"creds": "x", "seed": "SU..."},
    {"creds": 12},
])
def test_bad_input_is_a_400_in_the_one_error_shape(setup, body):
    r = setup["alice"].post(URL, body, format="json")
    assert r.status_code == 400, (body, r.content)
    assert set(r.json()) == {"message", "code", "extra"}


def test_unreadable_creds_are_a_checklist_not_an_error(setup):
    r = setup["alice"].post(URL, {"creds": "not creds"}, format="json")
    assert r.status_code == 200
    assert r.json()["verdict"]["cause"] == "creds"


def test_wrong_seed_is_named_and_neither_seed_echoed(setup):
    other = nkeys.generate(KeyType.USER)
    jwt = NatsUser.objects.get(pk=setup["user"].pk).jwt
    text = creds_mod.format_creds(jwt, other.seed)
    r = setup["alice"].post(URL, {"creds": text}, format="json")
    assert r.json()["verdict"]["cause"] == "seed_pair"
    assert other.seed not in r.content.decode()


def test_in_the_openapi_schema(setup):
    r = setup["alice"].get("/api/schema/?format=json")
    assert "/api/v1/diagnose" in r.json()["paths"]
