"""One URL list for a supercluster: ``GET /api/v1/connect`` puts the closest region first, and says why; an
account's home region is set with ``PUT /api/v1/accounts/{pk}/home-region`` (any member, audit-logged)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts_service import services
from accounts_service.models import AuditEvent
from accounts_service.rights import PLATFORM
from tests.api.routes import token_client
from tests.fleet import nodes_add

pytestmark = pytest.mark.django_db


@pytest.fixture
def regions(operator_setup):
    return {"us-east": nodes_add(2, region="us-east"), "eu-west": nodes_add(1, region="eu-west"),
            "ap-south": nodes_add(1, region="ap-south")}


@pytest.fixture
def member(team):
    person = get_user_model().objects.create_user(username="bob", password="pw-bob-12345")
    services.team_member_add(team=team, user=person, role="member")
    return person


@pytest.fixture
def account(team):
    return services.account_create(actor=PLATFORM, team=team, name="shop")


def _urls(nodes) -> list[str]:
    return [n.client_url for n in nodes]


def test_default_is_the_first_region_then_the_others_by_name(regions, member):
    body = token_client(member).get("/api/v1/connect").json()
    assert body["region"] == "us-east" and body["chosen_by"] == "default"
    assert body["servers"] == _urls(regions["us-east"]) + _urls(regions["eu-west"]) + _urls(regions["ap-south"])
    assert [(r["name"], r["servers"]) for r in body["regions"]] == [
        ("us-east", _urls(regions["us-east"])), ("eu-west", _urls(regions["eu-west"])),
        ("ap-south", _urls(regions["ap-south"]))]


def test_query_region_comes_first_and_an_unknown_one_is_a_404(regions, member):
    client = token_client(member)
    body = client.get("/api/v1/connect?region=eu-west").json()
    assert body["chosen_by"] == "query" and body["servers"][0] == regions["eu-west"][0].client_url
    assert [r["name"] for r in body["regions"]] == ["eu-west", "us-east", "ap-south"]
    missing = client.get("/api/v1/connect?region=mars")
    assert missing.status_code == 404 and missing.json()["code"] == "region_not_found"
    assert "us-east, eu-west, ap-south" in missing.json()["message"]


def test_home_region_is_set_by_a_member_audited_and_comes_first(regions, member, account):
    client = token_client(member)
    response = client.put(f"/api/v1/accounts/{account.public_key}/home-region", {"region": "ap-south"},
                          format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"account": account.public_key, "home_region": "ap-south"}
    before_jwt = account.jwt
    account.refresh_from_db()
    assert account.home_region == "ap-south" and account.jwt == before_jwt  # no re-sign: the servers don't care
    event = AuditEvent.objects.get(action=AuditEvent.Action.ACCOUNT_REGION)
    assert event.detail == {"before": "", "after": "ap-south"} and event.actor == member
    body = client.get(f"/api/v1/connect?account={account.public_key}").json()
    assert (body["region"], body["chosen_by"], body["home_region"]) == ("ap-south", "home_region", "ap-south")
    assert body["servers"][0] == regions["ap-south"][0].client_url
    # Back to automatic.
    assert client.put(f"/api/v1/accounts/{account.public_key}/home-region", {"region": ""},
                      format="json").json()["home_region"] == ""
    assert client.get(f"/api/v1/connect?account={account.public_key}").json()["chosen_by"] == "default"


@pytest.mark.parametrize(("region", "status", "code"), [
    ("mars", 404, "region_not_found"), ("EU_WEST", 400, "invalid"), ("x" * 33, 400, "invalid"),
])
def test_bad_home_region_is_refused_and_nothing_changes(regions, member, account, region, status, code):
    response = token_client(member).put(f"/api/v1/accounts/{account.public_key}/home-region", {"region": region},
                                        format="json")
    assert response.status_code == status and response.json()["code"] == code, response.content
    account.refresh_from_db()
    assert account.home_region == "" and not AuditEvent.objects.filter(action="account.region").exists()


def test_another_teams_account_is_a_404_on_both_routes(regions, account, other_team):
    stranger = get_user_model().objects.create_user(username="eve", password="pw-eve-12345")
    services.team_member_add(team=other_team, user=stranger, role="owner")
    client = token_client(stranger)
    assert client.get(f"/api/v1/connect?account={account.public_key}").status_code == 404
    assert client.put(f"/api/v1/accounts/{account.public_key}/home-region", {"region": "eu-west"},
                      format="json").status_code == 404


def test_region_of_the_accounts_connections_comes_first(regions, member, account):
    from billing.models import ServerAccountCounter

    now = timezone.now()
    west = regions["eu-west"][0]
    east = regions["us-east"][0]
    for node, conns, seen in ((west, 3, now), (east, 1, now), (regions["ap-south"][0], 9, now - timedelta(hours=1))):
        ServerAccountCounter.objects.create(server_id=f"N{node.name}", server_name=node.name, seq=1,
                                            account_public_key=account.public_key, observed_at=seen, conns=conns)
    body = token_client(member).get(f"/api/v1/connect?account={account.public_key}").json()
    # ap-south's 9 are an hour old: not connections now.
    assert (body["region"], body["chosen_by"]) == ("eu-west", "connections")


def test_a_drained_region_is_left_out_and_region_urls_override_its_nodes(regions, member, settings):
    from broker_gateway.nodes import region_desired_set

    region_desired_set(region="eu-west", desired="stopped")
    settings.NATS_REGION_URLS = {"ap-south": ["tls://ap.example.com:4222"]}
    body = token_client(member).get("/api/v1/connect").json()
    assert [r["name"] for r in body["regions"]] == ["us-east", "ap-south"]
    assert body["servers"] == [*_urls(regions["us-east"]), "tls://ap.example.com:4222"]
