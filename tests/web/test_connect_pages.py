"""Tenant-facing fleet pages: an account's propagation fragment and the connect panel, scoped to the user's teams."""

from __future__ import annotations

from html import unescape

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.shortcuts import resolve_url
from django.utils import timezone

from accounts_service import services
from accounts_service.models import Account
from accounts_service.rights import PLATFORM
from broker_gateway.models import BrokerNode, NodeClaim
from broker_gateway.nodes import node_add
from tests.natsproc import free_port

pytestmark = pytest.mark.django_db

CONNECT = "/connect/"


def _user(username: str, *, team=None):
    user = get_user_model().objects.create_user(username=username, email=f"{username}@example.com")
    if team is not None:
        services.team_member_add(team=team, user=user, role="owner")
    return user


def _node(name: str, *, state: str = BrokerNode.Observed.HEALTHY) -> BrokerNode:
    node = node_add(name=name, ports={"client_port": free_port(), "cluster_port": free_port(),
                                      "monitoring_port": free_port(), "leafnode_port": free_port()})
    BrokerNode.objects.filter(pk=node.pk).update(observed_state=state, last_healthy_at=timezone.now())
    node.refresh_from_db()
    return node


def _hold(account: Account, node: BrokerNode, *, jti: str | None = None, iat: int | None = None) -> None:
    NodeClaim.objects.update_or_create(account=account, node=node, defaults={
        "jti": jti or account.jwt_jti, "iat": iat or account.jwt_iat, "updated_at": timezone.now()})


@pytest.fixture
def account(operator_setup, team) -> Account:
    # Created before any node exists, so the on-issue push has nothing to reach.
    return services.account_create(actor=PLATFORM, team=team, name="orders app")


@pytest.fixture
def owner_client(client, team):
    client.force_login(_user("alice", team=team))
    return client


@pytest.fixture
def stranger_client(client, other_team):
    client.force_login(_user("mallory", team=other_team))
    return client


def _propagation_url(account: Account) -> str:
    return f"/accounts/{account.public_key}/propagation"


# --- GET /accounts/<pk>/propagation ----------------------------------------------------------------


def test_propagation_fragment_shows_live_on_and_pending_nodes(owner_client, account):
    n1, n2 = _node("n1"), _node("n2")
    _node("n3", state=BrokerNode.Observed.FAILED)
    _hold(account, n1)
    _hold(account, n2, jti="older", iat=account.jwt_iat - 60)

    response = owner_client.get(_propagation_url(account))

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "<header" not in html  # a fragment, not a page
    assert '<span class="badge badge-pending">live on 1/2 nodes</span>' in html
    assert response.context["pending"] == ["n2"] and "Pending on n2" in html
    assert f"version {account.version}" in html and "an older version" in html
    assert "catches up when healthy" in html  # n3 is failed: not counted, not pending


def test_propagation_fragment_when_every_healthy_node_holds_the_account(owner_client, account):
    for name in ("n1", "n2"):
        _hold(account, _node(name))
    html = owner_client.get(_propagation_url(account)).content.decode()
    assert '<span class="badge badge-live">live on 2/2 nodes</span>' in html and "Pending" not in html


def test_propagation_fragment_without_nodes(owner_client, account):
    html = owner_client.get(_propagation_url(account)).content.decode()
    assert "no healthy node" in html and "The fleet has no running node yet." in html


def test_propagation_of_another_teams_account_is_the_same_404_as_an_unknown_key(stranger_client, account):
    _node("n1")
    theirs = stranger_client.get(_propagation_url(account))
    unknown = stranger_client.get("/accounts/AUNKNOWN/propagation")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.content == unknown.content and account.name.encode() not in theirs.content


def test_propagation_fragment_answers_403_to_anonymous_not_a_login_page(client, account):
    # The account page polls it: a login page pasted into that page would be worse than a failed poll.
    assert client.get(_propagation_url(account)).status_code == 403


# --- GET /connect/ --------------------------------------------------------------------------------


def test_connect_shows_every_node_url_and_examples(owner_client, account):
    n1, n2 = _node("n1"), _node("n2", state=BrokerNode.Observed.STARTING)

    response = owner_client.get(CONNECT)

    assert response.status_code == 200
    html = unescape(response.content.decode())  # the snippets' quotes are HTML-escaped; the browser shows them
    for node in (n1, n2):
        assert f"<code id=\"server-{1 if node is n1 else 2}\">{node.client_url}</code>" in html
    both = f"{n1.client_url},{n2.client_url}"
    assert f"nats context add natsctl --server {both} --creds ./USER.creds --select" in html
    assert f"nats --creds ./USER.creds --server {both} pub demo.hello" in html
    assert f'await nats.connect(servers=["{n1.client_url}", "{n2.client_url}"],' in html
    assert 'user_credentials="USER.creds")' in html
    assert 'data-copy="#ex-cli"' in html and 'id="ex-python"' in html and 'data-copy="#server-1"' in html
    assert f'value="{account.public_key}"' in html  # the account picker lists the user's accounts


def test_public_urls_replace_the_nodes_own_addresses(owner_client, account, settings):
    """In Kubernetes the nodes are pods with cluster DNS names; tenants connect through the public Service."""
    _node("n1")
    settings.NATS_PUBLIC_URLS = ["tls://nats.example.com:4222"]
    html = owner_client.get(CONNECT).content.decode()
    assert '<code id="server-1">tls://nats.example.com:4222</code>' in html and "server-2" not in html
    body = owner_client.get("/api/v1/connect").json()
    assert body["servers"] == ["tls://nats.example.com:4222"] and body["regions"] == []


def test_connect_for_one_of_my_accounts_uses_its_name_and_a_user_and_shows_no_secret(owner_client, account):
    _node("n1")
    user = services.user_create(actor=PLATFORM, account=account, name="worker 1")
    creds = services.user_creds_get(user=user)

    response = owner_client.get(CONNECT, {"account": account.public_key})

    assert response.status_code == 200
    html = response.content.decode()
    assert "Connect to orders app" in html and "nats context add orders-app " in html
    assert "--creds ./worker_1.creds" in html  # the name the download gets
    assert f"/accounts/{account.public_key}/users/{user.public_key}/creds" in html  # download link and API
    seed_lines = [line for line in creds.splitlines() if line.startswith("SU")]
    assert seed_lines and not any(seed in html for seed in seed_lines)
    assert user.jwt not in html and "NKEY SEED" not in html


def test_connect_for_an_account_without_users_says_how_to_make_one(owner_client, account):
    html = owner_client.get(CONNECT, {"account": account.public_key}).content.decode()
    assert "orders app has no user yet" in html and "USER.creds" in html
    assert "The fleet has no running node right now" in html


def test_connect_for_another_teams_account_is_404(stranger_client, account):
    response = stranger_client.get(CONNECT, {"account": account.public_key})
    assert response.status_code == 404
    assert account.name not in response.content.decode()
    assert stranger_client.get(CONNECT, {"account": "AUNKNOWN"}).status_code == 404


def test_connect_needs_login(client):
    response = client.get(CONNECT)
    assert response.status_code == 302
    assert response["Location"] == f"{resolve_url(settings.LOGIN_URL)}?next={CONNECT}"


def test_connect_page_of_a_supercluster_puts_the_home_region_first_and_sets_it(owner_client, account):
    from accounts_service.models import AuditEvent
    from tests.fleet import nodes_add

    east, west = nodes_add(1, region="us-east")[0], nodes_add(1, region="eu-west")[0]
    page = f"{CONNECT}?account={account.public_key}"
    html = owner_client.get(page).content.decode()
    assert '<strong id="closest-region">us-east</strong> (the fleet&#x27;s first region), then eu-west' in html
    assert f'<code id="server-1">{east.client_url}</code>' in html
    assert f'<code id="server-2">{west.client_url}</code>' in html
    assert 'id="region-eu-west"' in html and 'id="home-region-form"' in html

    response = owner_client.post(f"/accounts/{account.public_key}/home-region", {"region": "eu-west"})
    assert response.status_code == 302 and response["Location"].endswith(page)
    html = owner_client.get(page).content.decode()
    assert '<strong id="closest-region">eu-west</strong> (the account&#x27;s home region)' in html
    assert f'<code id="server-1">{west.client_url}</code>' in html and '<option value="eu-west" selected>' in html
    assert AuditEvent.objects.filter(action="account.region", target=account.public_key).count() == 1

    # A region that does not exist: a message, nothing changed.
    response = owner_client.post(f"/accounts/{account.public_key}/home-region", {"region": "mars"}, follow=True)
    assert "no region mars" in response.content.decode()
    account.refresh_from_db()
    assert account.home_region == "eu-west"
    # ?region= puts another first for this page only.
    assert '<strong id="closest-region">us-east</strong> (you asked for it)' in owner_client.get(
        f"{page}&region=us-east").content.decode()


def test_home_region_of_another_teams_account_is_a_404(client, account):
    stranger = _user("mallory")
    client.force_login(stranger)
    assert client.post(f"/accounts/{account.public_key}/home-region", {"region": "us-east"}).status_code == 404


def test_examples_follow_the_picked_users_permissions(owner_client, account):
    _node("n1")
    services.user_create(actor=PLATFORM, account=account, name="a-wide")
    orders = services.user_create(actor=PLATFORM, account=account, name="orders", pub_allow=["orders.>"],
                                  sub_allow=["orders.>"])
    html = unescape(owner_client.get(f"{CONNECT}?account={account.public_key}&user={orders.public_key}")
                    .content.decode())
    assert '<strong id="example-user">orders</strong>' in html
    for snippet in ("cli", "go", "js", "python", "java", "rust"):
        code = html[html.index(f'<pre id="ex-{snippet}">'):]
        code = code[:code.index("</pre>")]
        assert "orders.demo" in code and "greet." not in code, snippet
    assert 'id="test-connection"' in html and "_INBOX.>" in html  # the note: no request example


def test_test_connection_button_reports_a_refusal_as_a_message(owner_client, account):
    user = services.user_create(actor=PLATFORM, account=account, name="app")
    # No node runs: the test says so rather than failing the page.
    response = owner_client.post(f"{CONNECT}?account={account.public_key}", {"user": user.public_key}, follow=True)
    assert response.status_code == 200
    assert "no running node" in response.content.decode()
