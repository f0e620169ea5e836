"""REST API v1 sharing routes: exports, activations, imports; cross-team isolation; refused input writes nothing.

No NATS process: every account is created before any BrokerNode exists, so re-signs have nothing to push to.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts_service import services
from accounts_service.models import Account, Activation, Export, Import
from accounts_service.rights import PLATFORM
from operators import claims, nkeys
from tests.api.routes import member_client

pytestmark = pytest.mark.django_db

EXPORTS = "/api/v1/accounts/{}/exports/"
EXPORT = "/api/v1/accounts/{}/exports/{}/"
ACTIVATIONS = "/api/v1/accounts/{}/exports/{}/activations/"
IMPORTS = "/api/v1/accounts/{}/imports/"
IMPORT = "/api/v1/accounts/{}/imports/{}/"


def _error(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "code", "extra"}, body
    return body


def _version(account: Account) -> int:
    return Account.objects.get(pk=account.pk).version


@pytest.fixture
def acct_a(operator_setup, team) -> Account:
    return services.account_create(actor=PLATFORM, team=team, name="orders")


@pytest.fixture
def acct_b(operator_setup, other_team) -> Account:
    return services.account_create(actor=PLATFORM, team=other_team, name="billing")


@pytest.fixture
def alice(team) -> APIClient:
    return member_client("alice", team)


@pytest.fixture
def bob(other_team) -> APIClient:
    return member_client("bob", other_team)


@pytest.fixture
def public_stream(acct_a) -> Export:
    return services.export_create(actor=PLATFORM,
                                  account=acct_a, name="events", subject="orders.events.>", type="stream")


@pytest.fixture
def private_service(acct_a) -> Export:
    return services.export_create(actor=PLATFORM,
                                  account=acct_a, name="lookup", subject="orders.lookup.*", type="service",
                                  private=True, response_type="Stream")


# --- exports -------------------------------------------------------------------------------------


def test_export_create_public_stream(alice, acct_a):
    before = _version(acct_a)
    r = alice.post(EXPORTS.format(acct_a.public_key),
                   {"name": "events", "subject": "orders.events.>", "type": "stream", "description": "all events"},
                   format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["name"] == "events" and body["subject"] == "orders.events.>" and body["type"] == "stream"
    assert body["private"] is False and body["description"] == "all events"
    export = Export.objects.get(pk=body["id"])
    assert export.account == acct_a and not export.token_req
    assert _version(acct_a) == before + 1  # the export is in the re-signed account JWT
    nats = claims.decode(Account.objects.get(pk=acct_a.pk).jwt).nats
    assert [e["subject"] for e in nats["exports"]] == ["orders.events.>"]


def test_export_create_private_service_with_response_type_and_token_position(alice, acct_a):
    r = alice.post(EXPORTS.format(acct_a.public_key),
                   {"name": "lookup", "subject": "orders.*.lookup", "type": "service", "private": True,
                    "response_type": "Chunked", "account_token_position": 2},
                   format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["private"] is True and body["response_type"] == "Chunked" and body["account_token_position"] == 2
    export = Export.objects.get(pk=body["id"])
    assert export.token_req and export.response_type == "Chunked" and export.account_token_position == 2


def test_export_list_is_paginated_and_scoped_to_the_account(alice, acct_a, acct_b, public_stream, private_service):
    services.export_create(actor=PLATFORM, account=acct_b, name="theirs", subject="billing.>", type="stream")
    r = alice.get(EXPORTS.format(acct_a.public_key))
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["count"] == 2
    assert {e["subject"] for e in body["results"]} == {"orders.events.>", "orders.lookup.*"}
    r = alice.get(EXPORTS.format(acct_a.public_key), {"limit": 1})
    assert r.json()["count"] == 2 and len(r.json()["results"]) == 1 and r.json()["next"]


def test_export_detail_and_delete(alice, acct_a, public_stream):
    r = alice.get(EXPORT.format(acct_a.public_key, public_stream.pk))
    assert r.status_code == 200 and r.json()["subject"] == "orders.events.>"
    before = _version(acct_a)
    r = alice.delete(EXPORT.format(acct_a.public_key, public_stream.pk))
    assert r.status_code == 204
    assert not Export.objects.filter(pk=public_stream.pk).exists()
    assert _version(acct_a) == before + 1
    _error(alice.get(EXPORT.format(acct_a.public_key, public_stream.pk)), 404)


def test_export_delete_drops_the_imports_of_other_teams(alice, bob, acct_a, acct_b, public_stream):
    r = bob.post(IMPORTS.format(acct_b.public_key),
                 {"exporter": acct_a.public_key, "subject": "orders.events.>"}, format="json")
    assert r.status_code == 201, r.content
    importer_before = _version(acct_b)
    assert alice.delete(EXPORT.format(acct_a.public_key, public_stream.pk)).status_code == 204
    assert not Import.objects.filter(account=acct_b).exists()
    assert _version(acct_b) == importer_before + 1  # the importer is re-signed without the import
    assert bob.get(IMPORTS.format(acct_b.public_key)).json()["count"] == 0


def test_unknown_export_id_is_404(alice, acct_a):
    _error(alice.get(EXPORT.format(acct_a.public_key, 999999)), 404)
    _error(alice.delete(EXPORT.format(acct_a.public_key, 999999)), 404)
    _error(alice.post(ACTIVATIONS.format(acct_a.public_key, 999999), {"target": "x"}, format="json"), 404)


def test_an_export_is_addressed_only_through_its_own_account(alice, team, acct_a, public_stream):
    sibling = services.account_create(actor=PLATFORM, team=team, name="sibling")
    _error(alice.get(EXPORT.format(sibling.public_key, public_stream.pk)), 404)
    _error(alice.delete(EXPORT.format(sibling.public_key, public_stream.pk)), 404)
    assert Export.objects.filter(pk=public_stream.pk).exists()


# --- activations and imports: the cross-team private flow ---------------------------------------


def test_private_export_activation_and_import_across_teams(alice, bob, acct_a, acct_b):
    # Team acme exports a private service...
    r = alice.post(EXPORTS.format(acct_a.public_key),
                   {"name": "lookup", "subject": "orders.lookup.*", "type": "service", "private": True},
                   format="json")
    assert r.status_code == 201, r.content
    export_id = r.json()["id"]

    # ...mints an activation for globex's account, narrowed and expiring...
    expires = (timezone.now() + dt.timedelta(days=7)).replace(microsecond=0)
    r = alice.post(ACTIVATIONS.format(acct_a.public_key, export_id),
                   {"target": acct_b.public_key, "subject": "orders.lookup.eu", "expires_at": expires.isoformat()},
                   format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert set(body) == {"id", "token", "target", "subject", "expires_at", "revoked_at", "created_at"}
    assert body["target"] == acct_b.public_key and body["subject"] == "orders.lookup.eu"
    assert dt.datetime.fromisoformat(body["expires_at"]) == expires
    act = claims.decode(body["token"], expected_type=claims.ACTIVATION)
    assert act.issuer == acct_a.public_key and act.subject == acct_b.public_key
    assert act.nats["subject"] == "orders.lookup.eu" and act.nats["kind"] == "service"
    assert Activation.objects.filter(export_id=export_id, target_public_key=acct_b.public_key).count() == 1

    # ...which globex hands to its own account's import.
    r = bob.post(IMPORTS.format(acct_b.public_key),
                 {"exporter": acct_a.public_key, "subject": "orders.lookup.eu", "local_subject": "lookup.eu",
                  "token": body["token"]},
                 format="json")
    assert r.status_code == 201, r.content
    imp = r.json()
    assert imp["exporter"] == acct_a.public_key and imp["type"] == "service" and imp["private"] is True
    assert imp["subject"] == "orders.lookup.eu" and imp["local_subject"] == "lookup.eu"
    assert Import.objects.get(pk=imp["id"]).token == body["token"]
    nats = claims.decode(Account.objects.get(pk=acct_b.pk).jwt).nats
    assert nats["imports"][0]["token"] == body["token"]

    r = bob.get(IMPORTS.format(acct_b.public_key))
    assert r.status_code == 200 and r.json()["count"] == 1 and r.json()["results"][0]["id"] == imp["id"]
    r = bob.get(IMPORT.format(acct_b.public_key, imp["id"]))
    assert r.status_code == 200 and r.json()["local_subject"] == "lookup.eu"

    before = _version(acct_b)
    assert bob.delete(IMPORT.format(acct_b.public_key, imp["id"])).status_code == 204
    assert not Import.objects.filter(pk=imp["id"]).exists()
    assert _version(acct_b) == before + 1
    assert Export.objects.filter(pk=export_id).exists()  # the exporter keeps its export


def test_activation_defaults_to_the_export_subject_without_expiry(alice, acct_a, acct_b, private_service):
    r = alice.post(ACTIVATIONS.format(acct_a.public_key, private_service.pk), {"target": acct_b.public_key},
                   format="json")
    assert r.status_code == 201, r.content
    assert r.json()["subject"] == "orders.lookup.*" and r.json()["expires_at"] is None


def test_public_export_of_another_team_is_imported_without_token(bob, acct_a, acct_b, public_stream):
    r = bob.post(IMPORTS.format(acct_b.public_key),
                 {"exporter": acct_a.public_key, "subject": "orders.events.>", "name": "order events"},
                 format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["name"] == "order events" and body["local_subject"] == "orders.events.>" and body["private"] is False
    assert Import.objects.get(pk=body["id"]).token == ""


def test_unknown_import_id_is_404(bob, acct_b):
    _error(bob.get(IMPORT.format(acct_b.public_key, 999999)), 404)
    _error(bob.delete(IMPORT.format(acct_b.public_key, 999999)), 404)


# --- isolation: another team's token gets a 404 on every route with the first team's ids ---------


@pytest.fixture
def a_import(acct_a, operator_setup, other_team) -> Import:
    """An import held by team acme's account (of a public export of a third account)."""
    third = services.account_create(actor=PLATFORM, team=other_team, name="third")
    services.export_create(actor=PLATFORM, account=third, name="feed", subject="feed.>", type="stream")
    return services.import_create(actor=PLATFORM,
                                  account=acct_a, exporter_public_key=third.public_key, subject="feed.>")


def _routes(acct_a, export, imp, acct_b):
    a = acct_a.public_key
    return [
        ("get", EXPORTS.format(a), None),
        ("post", EXPORTS.format(a), {"name": "x", "subject": "x.>", "type": "stream"}),
        ("get", EXPORT.format(a, export.pk), None),
        ("delete", EXPORT.format(a, export.pk), None),
        ("post", ACTIVATIONS.format(a, export.pk), {"target": acct_b.public_key}),
        ("get", IMPORTS.format(a), None),
        ("post", IMPORTS.format(a), {"exporter": acct_b.public_key, "subject": "billing.>"}),
        ("get", IMPORT.format(a, imp.pk), None),
        ("delete", IMPORT.format(a, imp.pk), None),
    ]


def test_another_teams_token_gets_404_on_every_sharing_route(bob, acct_a, acct_b, private_service, a_import):
    services.export_create(actor=PLATFORM, account=acct_b, name="billing", subject="billing.>", type="stream")
    before = (_version(acct_a), Export.objects.count(), Import.objects.count(), Activation.objects.count())
    for method, url, data in _routes(acct_a, private_service, a_import, acct_b):
        r = getattr(bob, method)(url, data, format="json") if data else getattr(bob, method)(url)
        body = _error(r, 404)
        assert acct_a.name not in body["message"], (method, url)
    assert (_version(acct_a), Export.objects.count(), Import.objects.count(), Activation.objects.count()) == before


def test_another_teams_ids_under_ones_own_account_are_404(bob, acct_a, acct_b, private_service, a_import):
    b = acct_b.public_key
    _error(bob.get(EXPORT.format(b, private_service.pk)), 404)
    _error(bob.delete(EXPORT.format(b, private_service.pk)), 404)
    _error(bob.post(ACTIVATIONS.format(b, private_service.pk), {"target": b}, format="json"), 404)
    _error(bob.get(IMPORT.format(b, a_import.pk)), 404)
    _error(bob.delete(IMPORT.format(b, a_import.pk)), 404)
    assert Export.objects.filter(pk=private_service.pk).exists() and Import.objects.filter(pk=a_import.pk).exists()
    assert not Activation.objects.exists()


def test_anonymous_requests_are_refused(acct_a):
    r = APIClient().get(EXPORTS.format(acct_a.public_key))
    assert r.status_code in (401, 403)
    assert set(r.json()) == {"message", "code", "extra"}


# --- refused input: 400, {message, extra}, nothing written ---------------------------------------


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "x", "subject": "orders..bad", "type": "stream"}, "subject"),
        ({"name": "x", "subject": "orders x", "type": "stream"}, "subject"),
        ({"name": "x", "subject": "orders.>", "type": "queue"}, "type"),
        ({"subject": "orders.>", "type": "stream"}, "name"),
        ({"name": "x", "type": "stream"}, "subject"),
        ({"name": "x", "subject": "orders.*", "type": "service", "response_type": "Many"}, "response_type"),
        ({"name": "x", "subject": "orders.a", "type": "service", "account_token_position": 2},
         "account_token_position"),
        ({"name": "x", "subject": "orders.*", "type": "stream", "account_token_position": -1},
         "account_token_position"),
    ],
)
def test_export_create_refuses_bad_input(alice, acct_a, data, field):
    before = _version(acct_a)
    body = _error(alice.post(EXPORTS.format(acct_a.public_key), data, format="json"), 400)
    assert field in body["extra"].get("fields", {}) or body["extra"].get("field") == field, body
    assert not Export.objects.exists()
    assert _version(acct_a) == before


def test_export_create_refuses_duplicates_and_overlaps(alice, acct_a, public_stream):
    url = EXPORTS.format(acct_a.public_key)
    before = _version(acct_a)
    body = _error(alice.post(url, {"name": "events", "subject": "other.>", "type": "stream"}, format="json"), 409)
    assert body["extra"] == {"field": "name"}
    body = _error(alice.post(url, {"name": "e2", "subject": "orders.events.x", "type": "stream"}, format="json"), 400)
    assert body["extra"] == {"field": "subject"}
    assert Export.objects.count() == 1 and _version(acct_a) == before


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "target"),
        ({"target": "not-a-key"}, "target"),
        ({"target": "OWN"}, "target"),
        ({"target": "USER_KEY"}, "target"),
        ({"target": "B", "subject": "billing.x"}, "subject"),
        ({"target": "B", "subject": "orders..x"}, "subject"),
        ({"target": "B", "expires_at": "next tuesday"}, "expires_at"),
        ({"target": "B", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_activation_refuses_bad_input(alice, acct_a, acct_b, private_service, data, field):
    data = dict(data)
    subs = {"OWN": acct_a.public_key, "B": acct_b.public_key,
            "USER_KEY": nkeys.generate(nkeys.KeyType.USER).public_key}
    if "target" in data:
        data["target"] = subs.get(data["target"], data["target"])
    body = _error(alice.post(ACTIVATIONS.format(acct_a.public_key, private_service.pk), data, format="json"), 400)
    assert field in body["extra"].get("fields", {}) or body["extra"].get("field") == field, body
    assert not Activation.objects.exists()


def test_activation_of_a_public_export_is_refused(alice, acct_a, acct_b, public_stream):
    body = _error(alice.post(ACTIVATIONS.format(acct_a.public_key, public_stream.pk),
                             {"target": acct_b.public_key}, format="json"), 400)
    assert body["extra"] == {"field": "export"}
    assert not Activation.objects.exists()


@pytest.fixture
def third_acct(operator_setup, other_team) -> Account:
    return services.account_create(actor=PLATFORM, team=other_team, name="third")


@pytest.mark.parametrize(
    ("case", "field"),
    [
        ("missing exporter", "exporter"),
        ("malformed exporter", "exporter"),
        ("unknown exporter", "exporter"),
        ("own account", "exporter"),
        ("subject not exported", "subject"),
        ("invalid subject", "subject"),
        ("private without token", "token"),
        ("garbage token", "token"),
        ("token for another account", "token"),
        ("token for a narrower subject", "token"),
        ("service import with wildcard", "subject"),
        ("local_subject adds wildcards", "local_subject"),
    ],
)
def test_import_create_refuses_bad_input(bob, acct_a, acct_b, third_acct, public_stream, private_service, case,
                                         field):
    def token_for(target: Account, subject: str = "orders.lookup.*") -> str:
        return services.activation_create(actor=PLATFORM, export=private_service, target_public_key=target.public_key,
                                          subject=subject).token

    a = acct_a.public_key
    data = {
        "missing exporter": {"subject": "orders.events.>"},
        "malformed exporter": {"exporter": "ABC", "subject": "orders.events.>"},
        "unknown exporter": {"exporter": nkeys.generate(nkeys.KeyType.ACCOUNT).public_key,
                             "subject": "orders.events.>"},
        "own account": {"exporter": acct_b.public_key, "subject": "orders.events.>"},
        "subject not exported": {"exporter": a, "subject": "orders.nothing"},
        "invalid subject": {"exporter": a, "subject": "orders..events"},
        "private without token": {"exporter": a, "subject": "orders.lookup.x"},
        "garbage token": {"exporter": a, "subject": "orders.lookup.x", "token": "not.a.jwt"},
        "token for another account": {"exporter": a, "subject": "orders.lookup.x", "token": token_for(third_acct)},
        "token for a narrower subject": {"exporter": a, "subject": "orders.lookup.x",
                                         "token": token_for(acct_b, "orders.lookup.y")},
        "service import with wildcard": {"exporter": a, "subject": "orders.lookup.*", "token": token_for(acct_b)},
        "local_subject adds wildcards": {"exporter": a, "subject": "orders.events.x", "local_subject": "mine.*"},
    }[case]
    before = _version(acct_b)
    body = _error(bob.post(IMPORTS.format(acct_b.public_key), data, format="json"), 400)
    assert field in body["extra"].get("fields", {}) or body["extra"].get("field") == field, body
    assert not Import.objects.exists()
    assert _version(acct_b) == before


def test_import_create_refuses_an_overlapping_local_subject(bob, acct_a, acct_b, public_stream):
    url = IMPORTS.format(acct_b.public_key)
    ok = bob.post(url, {"exporter": acct_a.public_key, "subject": "orders.events.>", "local_subject": "ev.>"},
                  format="json")
    assert ok.status_code == 201, ok.content
    body = _error(bob.post(url, {"exporter": acct_a.public_key, "subject": "orders.events.x",
                                 "local_subject": "ev.x"}, format="json"), 400)
    assert body["extra"] == {"field": "local_subject"}
    assert Import.objects.count() == 1


def test_a_token_position_export_refuses_an_activation_expiry_and_needs_no_token(alice, bob, acct_a, acct_b):
    export = services.export_create(actor=PLATFORM, account=acct_a, name="q", subject="quote.*", type="service",
                                    private=True, account_token_position=2)
    expiry = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    body = _error(alice.post(ACTIVATIONS.format(acct_a.public_key, export.pk),
                             {"target": acct_b.public_key, "expires_at": expiry}, format="json"), 400)
    assert body["code"] == "activation_not_enforced" and "would not be enforced" in body["message"]
    assert "private export without a token position" in body["message"]
    assert not Activation.objects.exists()
    # The server checks only the importer's key in the token position: no token is demanded.
    r = bob.post(IMPORTS.format(acct_b.public_key),
                 {"exporter": acct_a.public_key, "subject": f"quote.{acct_b.public_key}"}, format="json")
    assert r.status_code == 201, r.content
