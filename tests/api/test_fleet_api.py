"""Propagation status and fleet endpoints: per-node held versions, tenant scoping, staff-only fleet views."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from accounts_service import services
from accounts_service.models import Account
from accounts_service.rights import PLATFORM
from broker_gateway.models import BrokerNode, NodeClaim
from broker_gateway.nodes import node_add
from broker_gateway.selectors import healthy_nodes

pytestmark = pytest.mark.django_db

STATUS_URL = "/api/v1/accounts/{}/status"
NODES_URL = "/api/v1/fleet/nodes/"
PAGE_URL = "/staff/fleet/"


def _user(username: str, *, team=None, is_staff: bool = False):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, is_staff=is_staff)
    if team is not None:
        services.team_member_add(team=team, user=user)
    return user


def _client(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        _, token = services.api_token_create(actor=PLATFORM, user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _node(name: str, index: int, *, state: str = BrokerNode.Observed.HEALTHY, healthy_ago: float | None = 0.0,
          desired: str = BrokerNode.Desired.RUNNING) -> BrokerNode:
    # Explicit ports: nothing listens on them, no process is started.
    base = 41000 + index * 10
    node = node_add(name=name, ports={"client_port": base, "cluster_port": base + 1, "monitoring_port": base + 2,
                                      "leafnode_port": base + 3})
    last = None if healthy_ago is None else timezone.now() - dt.timedelta(seconds=healthy_ago)
    BrokerNode.objects.filter(pk=node.pk).update(observed_state=state, desired_state=desired, last_healthy_at=last,
                                                 version="2.11.0", pid=1000 + index)
    node.refresh_from_db()
    return node


def _hold(account: Account, node: BrokerNode, *, jti: str | None = None, iat: int | None = None) -> NodeClaim:
    return NodeClaim.objects.update_or_create(
        account=account, node=node,
        defaults={"jti": jti or account.jwt_jti, "iat": iat or account.jwt_iat, "updated_at": timezone.now()},
    )[0]


@pytest.fixture
def account(operator_setup, team) -> Account:
    # Created before any node exists, so the on-issue push has nothing to reach.
    return services.account_create(actor=PLATFORM, team=team, name="app")


@pytest.fixture
def member(team):
    return _user("alice", team=team)


@pytest.fixture
def staff(db):
    return _user("root", is_staff=True)


# --- GET /api/v1/accounts/{account_pk}/status ----------------------------------------------------


def test_status_shows_desired_against_held_per_running_node(account, member):
    n1, n2 = _node("n1", 1), _node("n2", 2)
    _node("n3", 3, state=BrokerNode.Observed.UNHEALTHY)
    _node("n4", 4, state=BrokerNode.Observed.STOPPED, desired=BrokerNode.Desired.STOPPED, healthy_ago=None)
    _hold(account, n1)
    _hold(account, n2, jti="an-older-jti", iat=account.jwt_iat - 5)

    response = _client(member).get(STATUS_URL.format(account.public_key))

    assert response.status_code == 200
    body = response.json()
    assert body["account"] == account.public_key
    assert body["desired"] == {"jti": account.jwt_jti, "iat": account.jwt_iat, "version": account.version}
    by_node = {n["node"]: n for n in body["nodes"]}
    assert list(by_node) == ["n1", "n2", "n3"]  # a node desired stopped is not expected to hold anything
    assert by_node["n1"]["held_jti"] == account.jwt_jti and by_node["n1"]["in_sync"] is True
    assert by_node["n2"]["held_jti"] == "an-older-jti" and by_node["n2"]["held_iat"] == account.jwt_iat - 5
    assert by_node["n2"]["in_sync"] is False
    assert by_node["n3"] == {"node": "n3", "state": "unhealthy", "healthy": False, "held_jti": None,
                             "held_iat": None, "held_at": None, "in_sync": False}
    assert (body["live_on"], body["healthy_nodes"], body["in_sync"]) == (1, 2, False)

    _hold(account, n2)
    body = _client(member).get(STATUS_URL.format(account.public_key)).json()
    # Only healthy nodes decide: n3 holding nothing does not keep the account out of sync.
    assert (body["live_on"], body["healthy_nodes"], body["in_sync"]) == (2, 2, True)
    assert [n["in_sync"] for n in body["nodes"]] == [True, True, False]


def test_status_without_any_healthy_node_is_not_in_sync(account, member):
    _node("n1", 1, state=BrokerNode.Observed.FAILED, healthy_ago=None)
    body = _client(member).get(STATUS_URL.format(account.public_key)).json()
    assert (body["live_on"], body["healthy_nodes"], body["in_sync"]) == (0, 0, False)


def test_status_of_another_teams_account_is_the_same_404_as_an_unknown_key(account, other_team):
    outsider = _client(_user("mallory", team=other_team))
    response = outsider.get(STATUS_URL.format(account.public_key))
    assert response.status_code == 404
    assert response.json() == {"message": f"no account {account.public_key}", "code": "not_found",
                               "extra": {"account": account.public_key}}

    unknown = "A" + "B" * 55
    response = outsider.get(STATUS_URL.format(unknown))
    assert response.status_code == 404
    assert response.json() == {"message": f"no account {unknown}", "code": "not_found", "extra": {"account": unknown}}


def test_status_for_staff_outside_the_team_is_404_too(account, staff):
    # Staff see the fleet, not the tenants' accounts: the tenant API stays scoped by membership.
    assert _client(staff).get(STATUS_URL.format(account.public_key)).status_code == 404


def test_status_and_fleet_need_authentication(account):
    for url in (STATUS_URL.format(account.public_key), NODES_URL):
        response = APIClient().get(url)
        assert response.status_code == 401
        assert response["WWW-Authenticate"] == "Bearer"
        assert set(response.json()) == {"message", "code", "extra"}
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert bad.get(STATUS_URL.format(account.public_key)).status_code == 401


# --- GET /api/v1/fleet/nodes/ --------------------------------------------------------------------


def test_fleet_nodes_is_forbidden_to_non_staff(account, member):
    _node("n1", 1)
    response = _client(member).get(NODES_URL)
    assert response.status_code == 403
    assert set(response.json()) == {"message", "code", "extra"}


def test_fleet_nodes_lists_every_node_with_health_and_accounts_in_sync(account, staff):
    n1, n2 = _node("n1", 1), _node("n2", 2, state=BrokerNode.Observed.FAILED, healthy_ago=None)
    BrokerNode.objects.filter(pk=n2.pk).update(last_error="exited with status 1", restarts=3)
    _hold(account, n1)
    _hold(account, n2, jti="an-older-jti")
    total = Account.objects.exclude(jwt="").count()  # the system account counts too

    response = _client(staff).get(NODES_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and body["next"] is None
    first, second = body["results"]
    assert (first["name"], first["state"], first["desired_state"], first["pid"]) == ("n1", "healthy", "running", 1001)
    assert first["client_url"] == "nats://127.0.0.1:41010" and first["monitoring_url"] == "http://127.0.0.1:41012"
    assert (first["accounts_in_sync"], first["accounts_total"]) == (1, total)
    assert (second["name"], second["state"], second["restarts"]) == ("n2", "failed", 3)
    assert second["last_error"] == "exited with status 1" and second["last_healthy_at"] is None
    assert (second["accounts_in_sync"], second["accounts_total"]) == (0, total)
    assert first["connections"] is None and second["connections"] is None  # no server behind these ports


def test_fleet_nodes_is_paginated(staff):
    for i in range(3):
        _node(f"n{i}", i)
    body = _client(staff).get(NODES_URL, {"limit": 2}).json()
    assert body["count"] == 3 and [n["name"] for n in body["results"]] == ["n0", "n1"]
    assert body["next"] is not None
    body = _client(staff).get(NODES_URL, {"limit": 2, "offset": 2}).json()
    assert [n["name"] for n in body["results"]] == ["n2"]


# --- the staff page ------------------------------------------------------------------------------


def test_fleet_page_shows_nodes_and_links_the_accounts_out_of_sync(client, account, staff):
    n1 = _node("n1", 1)
    _node("n2", 2)
    _node("n3", 3, state=BrokerNode.Observed.FAILED, healthy_ago=None)
    BrokerNode.objects.filter(pk=n1.pk).update(last_error="<script>boom</script>")
    _hold(account, n1)
    client.force_login(staff)

    response = client.get(PAGE_URL)

    assert response.status_code == 200
    # The node table polls its own fragment instead of reloading the whole page.
    assert "Refresh" not in response.headers
    html = response.content.decode()
    assert 'data-poll="/staff/fleet/nodes-fragment"' in html
    assert "n1" in html and "n2" in html and "nats://127.0.0.1:41010" in html and "http://127.0.0.1:41022" in html
    total = Account.objects.exclude(jwt="").count()
    assert "badge-healthy" in html and f'<td class="in-sync">1/{total}</td>' in html
    assert f'<td class="in-sync">0/{total}</td>' in html
    assert "badge-failed" in html and "never" in html
    assert "&lt;script&gt;boom" in html and "<script>boom" not in html
    # n2 is healthy and holds nothing, so the account is behind; the system account is too.
    assert response.context["behind_total"] == total and "/staff/out-of-sync/" in html


def test_out_of_sync_page_lists_the_accounts_a_healthy_node_lacks(client, account, staff):
    n1 = _node("n1", 1)
    _node("n2", 2)
    _hold(account, n1)
    client.force_login(staff)

    response = client.get("/staff/out-of-sync/")

    assert response.status_code == 200
    assert account.pk in {b["account"].pk for b in response.context["behind"]}
    html = response.content.decode()
    assert "Accounts out of sync" in html and "holds nothing" in html and f"v{account.version}" in html


def test_out_of_sync_page_with_everything_in_sync_says_so(client, account, staff):
    n1 = _node("n1", 1)
    for a in Account.objects.exclude(jwt=""):
        _hold(a, n1)
    client.force_login(staff)
    response = client.get("/staff/out-of-sync/")
    assert response.status_code == 200 and response.context["behind"] == []
    assert "Every healthy node holds every account at its latest version." in response.content.decode()


@pytest.mark.parametrize("staff_user", [False, None])
def test_fleet_page_sends_non_staff_to_login(client, team, staff_user):
    if staff_user is False:
        client.force_login(_user("bob", team=team))
    response = client.get(PAGE_URL)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={PAGE_URL}"


# --- healthy_nodes -------------------------------------------------------------------------------


def test_healthy_nodes_counts_only_fresh_running_healthy_nodes(db, settings):
    settings.FLEET_HEALTH_STALE_SECONDS = 20.0
    _node("fresh", 1, healthy_ago=1)
    _node("edge", 2, healthy_ago=15)
    _node("stale", 3, healthy_ago=30)  # the supervisor stopped confirming it
    _node("never", 4, healthy_ago=None)
    _node("unhealthy", 5, state=BrokerNode.Observed.UNHEALTHY)
    _node("stopping", 6, desired=BrokerNode.Desired.STOPPED)
    assert [n.name for n in healthy_nodes()] == ["edge", "fresh"]

    settings.FLEET_HEALTH_STALE_SECONDS = 10.0
    assert [n.name for n in healthy_nodes()] == ["fresh"]


def test_a_healthy_state_the_supervisor_stopped_confirming_does_not_count(account, settings):
    from django.utils import timezone

    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import node_add
    from broker_gateway.selectors import account_propagation, fleet_overview

    node = node_add(name="lonely", ports={"client_port": 24222, "cluster_port": 26222, "monitoring_port": 28222,
                                          "leafnode_port": 27422})
    BrokerNode.objects.filter(pk=node.pk).update(observed_state="healthy",
                                                 last_healthy_at=timezone.now() - timezone.timedelta(minutes=10))
    status = account_propagation(account=account)
    assert status["nodes"][0]["state"] == "unconfirmed" and status["nodes"][0]["healthy"] is False
    assert status["healthy_nodes"] == 0 and status["in_sync"] is False
    assert fleet_overview()[0]["state"] == "unconfirmed"
