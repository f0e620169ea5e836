"""Staff web pages: the fleet (live connections, add/stop/start/remove), accounts out of sync, tenants."""

from __future__ import annotations

import socket
import time

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from accounts_service import services
from accounts_service.models import Account, Team
from accounts_service.rights import PLATFORM
from broker_gateway.models import BrokerNode, NodeClaim
from broker_gateway.nodes import node_add
from broker_gateway.selectors import node_connections
from broker_gateway.services import gateway_open
from tests.natsproc import free_port

pytestmark = pytest.mark.django_db

FLEET = "/staff/fleet/"
FRAGMENT = "/staff/fleet/nodes-fragment"
TENANTS = "/staff/tenants/"


def _user(username: str, *, team=None, is_staff: bool = False, email: str = "", role: str = "member"):
    # No password: tests log in with force_login, and hashing one costs a fifth of a second.
    user = get_user_model().objects.create_user(username=username, email=email, is_staff=is_staff)
    if team is not None:
        services.team_member_add(team=team, user=user, role=role)
    return user


def _node(name: str, *, monitoring_port: int | None = None, client_port: int | None = None,
          state: str = BrokerNode.Observed.HEALTHY, desired: str = BrokerNode.Desired.RUNNING) -> BrokerNode:
    # Ports drawn free and never bound, unless the test points one at a real server.
    node = node_add(name=name, ports={"client_port": client_port or free_port(), "cluster_port": free_port(),
                                      "monitoring_port": monitoring_port or free_port(),
                                      "leafnode_port": free_port()})
    BrokerNode.objects.filter(pk=node.pk).update(observed_state=state, desired_state=desired,
                                                 last_healthy_at=timezone.now(), version="2.11.0")
    node.refresh_from_db()
    return node


def _hold(account: Account, node: BrokerNode) -> None:
    NodeClaim.objects.update_or_create(account=account, node=node, defaults={
        "jti": account.jwt_jti, "iat": account.jwt_iat, "updated_at": timezone.now()})


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def staff(db):
    return _user("root", is_staff=True, email="root@example.com")


@pytest.fixture
def staff_client(client, staff) -> Client:
    client.force_login(staff)
    return client


# --- access ---------------------------------------------------------------------------------------


STAFF_PAGES = [FLEET, "/staff/out-of-sync/", TENANTS, "/staff/tenants/acme/", "/staff/fleet/nodes/n1/remove"]


@pytest.mark.parametrize("url", STAFF_PAGES)
@pytest.mark.parametrize("who", ["anonymous", "tenant"])
def test_staff_pages_send_everyone_else_to_the_login_page(client, team, url, who):
    _node("n1")
    if who == "tenant":
        client.force_login(_user("bob", team=team))
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.parametrize("url", ["/staff/fleet/nodes/n1/stop", "/staff/fleet/nodes/n1/remove", FLEET])
def test_staff_actions_by_a_tenant_change_nothing(client, team, url):
    _node("n1")
    client.force_login(_user("bob", team=team))
    response = client.post(url, {"name": "n2"})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert list(BrokerNode.objects.values_list("name", "desired_state")) == [("n1", "running")]


def test_the_polled_fragment_answers_403_not_a_login_page(client, team):
    # A login page pasted into the node table by the poller would be worse than a failed poll.
    assert client.get(FRAGMENT).status_code == 403
    client.force_login(_user("bob", team=team))
    assert client.get(FRAGMENT).status_code == 403


# --- the fleet page and its live connections -----------------------------------------------------


def test_fleet_page_shows_connections_from_a_real_server_and_a_dash_for_a_closed_port(staff_client, nats_server):
    _node("live", client_port=nats_server.port, monitoring_port=nats_server.http_port)
    _node("dead")  # its monitoring port is closed
    gateway = gateway_open([nats_server.url], name="staff-page-test")  # one real client connection
    try:
        response = staff_client.get(FLEET)
        fragment = staff_client.get(FRAGMENT)
    finally:
        gateway.close()

    assert response.status_code == 200 and fragment.status_code == 200
    rows = {n["name"]: n for n in response.context["nodes"]}
    assert rows["live"]["connections"] == 1 and rows["dead"]["connections"] is None
    for html in (response.content.decode(), fragment.content.decode()):
        assert '<td class="connections">1</td>' in html
        assert 'title="monitoring endpoint did not answer">—</span>' in html
    assert "<html" not in fragment.content.decode() and "Stop" in fragment.content.decode()


def test_a_node_that_accepts_but_never_answers_costs_at_most_the_timeout(db):
    # The kernel completes the TCP handshake from the listen backlog; nothing ever reads or answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = _node("hung", monitoring_port=silent.getsockname()[1])
        closed = _node("closed")
        stopped = _node("stopped", state=BrokerNode.Observed.STOPPED, desired=BrokerNode.Desired.STOPPED)
        started = time.monotonic()
        result = node_connections(nodes=[hung, closed, stopped], timeout=0.3)
        elapsed = time.monotonic() - started
    assert result == {"hung": None, "closed": None, "stopped": None}
    assert elapsed < 1.5


def test_fleet_page_without_nodes_offers_to_add_one(staff_client):
    html = staff_client.get(FLEET).content.decode()
    assert "No nodes yet" in html and 'name="name"' in html


# --- actions --------------------------------------------------------------------------------------


def test_add_a_node(staff_client):
    response = staff_client.post(FLEET, {"name": "node-9"})
    assert response.status_code == 302 and response["Location"] == FLEET
    node = BrokerNode.objects.get(name="node-9")
    assert node.desired_state == BrokerNode.Desired.RUNNING
    assert _messages(response) == [f"Node node-9 added to us-east (client port {node.client_port}); "
                                   "the supervisor starts it within seconds."]


@pytest.mark.parametrize(("name", "error"), [
    ("bad name!", "node name must be 1-64 letters, digits, &#x27;-&#x27; or &#x27;_&#x27;"),
    ("n1", "node n1 already exists"),
    ("", "This field is required."),
])
def test_a_bad_or_duplicate_name_shows_the_error_and_adds_nothing(staff_client, name, error):
    _node("n1")
    response = staff_client.post(FLEET, {"name": name})
    assert response.status_code == 400
    html = response.content.decode()
    assert '<ul class="errorlist' in html and error in html
    assert list(BrokerNode.objects.values_list("name", flat=True)) == ["n1"]


def test_stop_and_start_a_node(staff_client):
    node = _node("n1", state=BrokerNode.Observed.FAILED)
    BrokerNode.objects.filter(pk=node.pk).update(consecutive_failures=5)

    confirm = staff_client.get("/staff/fleet/nodes/n1/stop")  # the Stop button asks first
    assert confirm.status_code == 200 and "Stop node n1?" in confirm.content.decode()
    assert BrokerNode.objects.get(pk=node.pk).desired_state == BrokerNode.Desired.RUNNING
    response = staff_client.post("/staff/fleet/nodes/n1/stop", follow=True)
    assert response.redirect_chain == [(FLEET, 302)]
    assert BrokerNode.objects.get(pk=node.pk).desired_state == BrokerNode.Desired.STOPPED
    html = response.content.decode()  # the page after the redirect shows the message, then a Start button
    assert '<li class="success">Node n1 will stop within seconds.</li>' in html
    assert 'action="/staff/fleet/nodes/n1/start"' in html and 'href="/staff/fleet/nodes/n1/stop"' not in html

    response = staff_client.post("/staff/fleet/nodes/n1/start")
    node.refresh_from_db()
    assert node.desired_state == BrokerNode.Desired.RUNNING and node.consecutive_failures == 0
    assert _messages(response) == ["Node n1 will start within seconds."]


def test_actions_are_post_only_and_need_a_known_node(staff_client):
    _node("n1")
    assert staff_client.get("/staff/fleet/nodes/n1/start").status_code == 405
    assert staff_client.post("/staff/fleet/nodes/nope/stop").status_code == 404
    assert staff_client.post("/staff/fleet/nodes/nope/remove").status_code == 404
    assert BrokerNode.objects.get(name="n1").desired_state == BrokerNode.Desired.RUNNING


def test_remove_asks_for_confirmation_first(staff_client):
    _node("n1")
    _node("n2")
    confirm = staff_client.get("/staff/fleet/nodes/n1/remove")
    assert confirm.status_code == 200 and BrokerNode.objects.filter(name="n1").exists()
    html = confirm.content.decode()
    assert "Remove node n1?" in html and 'action="/staff/fleet/nodes/n1/remove"' in html
    assert "1 other running node will take its clients." in html

    response = staff_client.post("/staff/fleet/nodes/n1/remove")
    assert response.status_code == 302 and response["Location"] == FLEET
    assert list(BrokerNode.objects.values_list("name", flat=True)) == ["n2"]
    assert _messages(response) == ["Node n1 removed; its clients reconnect to the other nodes."]


def test_removing_the_last_running_node_warns(staff_client):
    _node("n1")
    assert "This is the last running node." in staff_client.get("/staff/fleet/nodes/n1/remove").content.decode()


def test_actions_need_the_csrf_token(staff):
    _node("n1")
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    assert client.post("/staff/fleet/nodes/n1/stop").status_code == 403
    assert client.post(FLEET, {"name": "n2"}).status_code == 403
    assert client.post("/staff/fleet/nodes/n1/remove").status_code == 403
    assert list(BrokerNode.objects.values_list("name", "desired_state")) == [("n1", "running")]


# --- tenants --------------------------------------------------------------------------------------


@pytest.fixture
def acme(operator_setup, team) -> Team:
    """acme: an owner with an email, a member, two accounts, three NATS users."""
    _user("wile", team=team, email="wile@acme.test", role="owner")
    _user("road", team=team, email="road@acme.test")
    app = services.account_create(actor=PLATFORM, team=team, name="app")
    services.account_create(actor=PLATFORM, team=team, name="billing")
    for name in ("a", "b", "c"):
        services.user_create(actor=PLATFORM, account=app, name=name)
    return team


def test_tenants_page_counts_per_team(staff_client, acme, other_team):
    node = _node("n1")
    billing = Account.objects.get(team=acme, name="billing")
    _hold(billing, node)  # app is behind on n1, billing is not

    response = staff_client.get(TENANTS)

    assert response.status_code == 200
    rows = {r["team"].slug: r for r in response.context["rows"]}
    assert {"acme", "globex", "root", "wile", "road"} == set(rows)  # personal teams too; not the platform's
    row = rows["acme"]
    assert (row["team"].members_count, row["team"].accounts_count, row["team"].users_count) == (2, 2, 3)
    assert [u.email for u in row["owners"]] == ["wile@acme.test"] and row["behind"] == 1
    assert (rows["globex"]["team"].members_count, rows["globex"]["team"].accounts_count, rows["globex"]["behind"]) \
        == (0, 0, 0)
    html = response.content.decode()
    assert 'href="/staff/tenants/acme/"' in html and "wile@acme.test" in html
    assert '<td class="users">3</td>' in html and '<span class="badge badge-pending">1</span>' in html
    assert 'href="/staff/tenants/platform/"' in html  # listed apart


@pytest.mark.parametrize(("q", "found"), [
    ("GLOBEX", {"globex"}),  # name, any case
    ("acme", {"acme", "wile", "road"}),  # acme by name; wile's and road's personal teams by their emails
    ("road@", {"acme", "road"}),  # the teams road belongs to
    ("nobody", set()),
    ("", {"acme", "globex", "root", "wile", "road"}),
])
def test_tenants_search_by_name_slug_or_member_email(staff_client, acme, other_team, q, found):
    response = staff_client.get(TENANTS, {"q": q})
    assert {r["team"].slug for r in response.context["rows"]} == found
    if not found:
        assert "No team matches" in response.content.decode()


def test_tenants_are_paginated_by_fifty(staff_client):
    for i in range(51):
        Team.objects.create(name=f"team {i:02}", slug=f"team-{i:02}")
    first = staff_client.get(TENANTS)
    second = staff_client.get(TENANTS, {"page": 2})
    # 51 teams and the staff user's personal team, newest first.
    assert len(first.context["rows"]) == 50 and [r["team"].slug for r in second.context["rows"]] == ["team-00", "root"]
    assert "Page 1 of 2" in first.content.decode() and "?page=2" in first.content.decode()
    searched = staff_client.get(TENANTS, {"q": "team", "page": 2})
    assert [r["team"].slug for r in searched.context["rows"]] == ["team-00"]
    assert "?q=team&amp;page=1" in searched.content.decode() and "51 teams matching" in searched.content.decode()


def _populate(n: int, start: int) -> None:
    for i in range(start, start + n):
        team = services.team_create(actor=PLATFORM, name=f"tenant {i}")
        _user(f"owner{i}", team=team, email=f"owner{i}@example.com", role="owner")
        _user(f"member{i}", team=team)
        account = services.account_create(actor=PLATFORM, team=team, name="main")
        services.user_create(actor=PLATFORM, account=account, name=f"u{i}")


def test_tenants_page_runs_a_fixed_number_of_queries(staff_client, operator_setup, django_assert_max_num_queries):
    node = _node("n1")
    _populate(3, 0)
    staff_client.get(TENANTS)  # warm the session and the content types
    with django_assert_max_num_queries(12) as few:
        staff_client.get(TENANTS)
    _populate(12, 3)
    for account in Account.objects.all()[:5]:
        _hold(account, node)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = staff_client.get(TENANTS)
    assert len(response.context["rows"]) == Team.objects.filter(is_platform=False).count() == 46


def test_tenant_detail_lists_accounts_with_propagation(staff_client, acme):
    node = _node("n1")
    app, billing = Account.objects.get(team=acme, name="app"), Account.objects.get(team=acme, name="billing")
    _hold(billing, node)

    response = staff_client.get("/staff/tenants/acme/")

    assert response.status_code == 200
    rows = {r["account"].name: r for r in response.context["rows"]}
    assert rows["app"]["account"].users_count == 3 and rows["billing"]["account"].users_count == 0
    assert rows["app"]["status"]["in_sync"] is False and rows["billing"]["status"]["in_sync"] is True
    html = response.content.decode()
    assert app.public_key in html and billing.public_key in html and f"v{app.version}" in html
    assert "wile@acme.test" in html and "owner" in html
    assert "badge-yes" in html and "badge-no" in html


def test_tenant_detail_of_an_unknown_team_is_404(staff_client):
    assert staff_client.get("/staff/tenants/nope/").status_code == 404


def test_the_django_admin_is_read_only_where_the_services_write_and_the_ledger_cannot_be_deleted(rf, admin_user):
    from django.contrib import admin

    from accounts_service.models import NatsUser
    from billing.models import UsageHour
    from operators.models import Operator

    request = rf.get("/admin/")
    request.user = admin_user
    allowed = {model.__name__: (admin.site._registry[model].has_add_permission(request),
                                admin.site._registry[model].has_change_permission(request),
                                admin.site._registry[model].has_delete_permission(request))
               for model in (Operator, NatsUser, UsageHour)}
    assert allowed == {"Operator": (False, False, True), "NatsUser": (False, False, True),
                       "UsageHour": (False, False, False)}


def test_fleet_page_groups_nodes_by_region_with_gateway_links_and_adds_and_drains_regions(staff_client):
    from tests.fleet import nodes_add

    nodes_add(2, region="us-east")
    nodes_add(1, region="eu-west")
    html = staff_client.get("/staff/fleet/").content.decode()
    assert 'id="region-us-east"' in html and 'id="region-eu-west"' in html
    assert html.index('id="region-us-east"') < html.index('id="node-us-east-1"') < html.index('id="region-eu-west"')
    # Not running: each node's link to the other region is unknown (its /gatewayz did not answer).
    assert 'data-region="eu-west">eu-west unknown</span>' in html and "gateways 0/2 up" in html

    response = staff_client.post("/staff/fleet/", {"region": "ap-south", "nodes": "2"})
    assert _messages(response)[0].startswith("Region ap-south: added ap-south-1, ap-south-2")
    assert set(BrokerNode.objects.filter(region="ap-south").values_list("name", flat=True)) == {"ap-south-1",
                                                                                              "ap-south-2"}
    bad = staff_client.post("/staff/fleet/", {"region": "Ap_South", "nodes": "1"})
    assert bad.status_code == 400 and "is not a region name" in bad.content.decode()
    assert BrokerNode.objects.count() == 5

    confirm = staff_client.get("/staff/fleet/regions/eu-west/drain").content.decode()
    assert "Drain region eu-west?" in confirm and "lame duck mode" in confirm
    assert BrokerNode.objects.get(name="eu-west-1").desired_state == "running"  # a GET changes nothing
    response = staff_client.post("/staff/fleet/regions/eu-west/drain")
    assert _messages(response) == ["Region eu-west is draining: its clients move to the other regions."]
    assert BrokerNode.objects.get(name="eu-west-1").desired_state == "stopped"
    assert "drained" in staff_client.get("/staff/fleet/").content.decode()
    staff_client.post("/staff/fleet/regions/eu-west/resume")
    assert BrokerNode.objects.get(name="eu-west-1").desired_state == "running"
    assert staff_client.get("/staff/fleet/regions/mars/drain").status_code == 404
    node = staff_client.post("/staff/fleet/", {"name": "eu-west-7", "region": "eu-west"})
    assert _messages(node)[0].startswith("Node eu-west-7 added to eu-west")


def test_fleet_badges_count_stopped_nodes_a_stopped_node_shows_no_sync_and_the_name_box_suggests_a_free_name(
        staff_client):
    for name in ("us-east-1", "us-east-2", "us-east-3", "us-east-4"):
        _node(name)
    BrokerNode.objects.filter(name="us-east-4").update(desired_state="stopped", observed_state="stopped")
    html = staff_client.get("/staff/fleet/").content.decode()
    assert 'id="fleet-health">3/3 running nodes healthy</span>' in html and "1 of 4 stopped" in html
    row = html[html.index('id="node-us-east-4"'):]
    assert '<td class="in-sync"><span class="muted" title="not running' in row[:row.index("</tr>")]
    assert 'placeholder="us-east-5"' in html  # no node has that name
