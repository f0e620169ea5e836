"""REST API v1 leafnode configs: the text, no-store, the audit row, the port, and every refusal writing nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts_service import services
from accounts_service.models import AuditEvent, NatsUser
from accounts_service.rights import PLATFORM
from operators import nkeys
from operators.nkeys import KeyType
from tests.api.routes import token_client

pytestmark = pytest.mark.django_db

LEAF_URLS = ["nats-leaf://leaf-a.example.com:7422", "nats-leaf://leaf-b.example.com:7422"]


def _url(user: NatsUser, query: str = "") -> str:
    return f"/api/v1/accounts/{user.account.public_key}/users/{user.public_key}/leafnode{query}"


@pytest.fixture(autouse=True)
def _public_leaf_urls(settings):
    settings.NATS_PUBLIC_LEAFNODE_URLS = LEAF_URLS


@pytest.fixture
def alice(team):
    person = get_user_model().objects.create_user(username="alice", password="pw-alice")
    services.team_member_add(team=team, user=person)
    return person


@pytest.fixture
def api(alice):
    return token_client(alice)


@pytest.fixture
def account(operator_setup, team):
    return services.account_create(actor=PLATFORM, team=team, name="app")


@pytest.fixture
def edge(account):
    return services.user_create(actor=PLATFORM, account=account, name="edge", pub_allow=["orders.>"],
                                sub_allow=["orders.>"])


def _leaf_audits() -> int:
    return AuditEvent.objects.filter(action=AuditEvent.Action.LEAFNODE_DOWNLOAD).count()


def _refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response.json()["code"] == code, response.json()


def test_leafnode_config_is_text_never_cached_and_audited(api, alice, edge):
    response = api.get(_url(edge))
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    assert response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"] == 'attachment; filename="leaf.conf"'
    text = response.content.decode()
    assert "port: 4222\n" in text and 'credentials: "edge.creds"' in text
    assert all(f'"{url}"' in text for url in LEAF_URLS)
    assert "BEGIN USER NKEY SEED" not in text and edge.jwt not in text  # the creds file is downloaded on its own
    event = AuditEvent.objects.get(action=AuditEvent.Action.LEAFNODE_DOWNLOAD)
    assert (event.actor, event.target, event.team_id) == (alice, edge.public_key, edge.account.team_id)
    assert event.detail == {"account": edge.account.public_key, "user": "edge", "port": 4222, "creds": False}


def test_the_local_port_is_a_query_parameter(api, edge):
    response = api.get(_url(edge, "?port=14222"))
    assert response.status_code == 200 and "port: 14222\n" in response.content.decode()
    for bad in ("0", "65536", "-1", "abc", "4222.5", ""):
        _refused(api.get(_url(edge, f"?port={bad}")), 400, "port_invalid")
    assert _leaf_audits() == 1


def test_the_urls_are_every_running_nodes_leafnode_port_by_name(api, edge, settings):
    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import node_add

    settings.NATS_PUBLIC_LEAFNODE_URLS = []
    for name, base in (("n2", 21000), ("n1", 22000), ("n3", 23000)):
        node_add(name=name, ports={"client_port": base, "cluster_port": base + 1, "monitoring_port": base + 2,
                                   "leafnode_port": base + 3})
    BrokerNode.objects.filter(name="n3").update(desired_state=BrokerNode.Desired.STOPPED)
    text = api.get(_url(edge)).content.decode()
    assert text.index('"nats-leaf://127.0.0.1:22003"') < text.index('"nats-leaf://127.0.0.1:21003"')
    assert "23003" not in text


def test_no_node_to_join_is_a_503(api, edge, settings):
    settings.NATS_PUBLIC_LEAFNODE_URLS = []
    _refused(api.get(_url(edge)), 503, "no_leafnode_urls")
    assert _leaf_audits() == 0


@pytest.mark.parametrize(("spec", "code"), [
    ({"subs": 0}, "leafnode_subs_zero"),
    ({"pub_deny": [">"], "sub_deny": [">"]}, "leafnode_no_permissions"),
])
def test_a_user_whose_jwt_cannot_carry_a_leafnode_is_refused(api, account, spec, code):
    user = services.user_create(actor=PLATFORM, account=account, name="unfit", **spec)
    _refused(api.get(_url(user)), 409, code)
    assert _leaf_audits() == 0


def test_a_user_that_only_receives_or_holds_a_bearer_token_is_fine(api, account):
    receiver = services.user_create(actor=PLATFORM, account=account, name="rx", pub_deny=[">"])
    bearer = services.user_create(actor=PLATFORM, account=account, name="bearer", bearer_token=True)
    assert api.get(_url(receiver)).status_code == 200 and api.get(_url(bearer)).status_code == 200


def test_a_scoped_role_is_judged_by_its_template(api, account):
    services.account_signing_key_add(actor=PLATFORM, account=account, role="nosubs", template={"subs": 0})
    user = services.user_create(actor=PLATFORM, account=account, name="scoped", role="nosubs")
    _refused(api.get(_url(user)), 409, "leafnode_subs_zero")


def test_revoked_and_expired_users_are_refused(api, account, edge):
    expiring = services.user_create(actor=PLATFORM, account=account, name="brief",
                                    expires_at=timezone.now() + dt.timedelta(hours=1))
    NatsUser.objects.filter(pk=expiring.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    _refused(api.get(_url(expiring)), 409, "user_expired")
    services.user_revoke(actor=PLATFORM, user=edge)
    _refused(api.get(_url(edge)), 409, "user_revoked")
    assert _leaf_audits() == 0


def test_an_account_that_admits_no_leafnode_is_refused(api, account, edge):
    services.account_update(actor=PLATFORM, account=account, limits={"leaf": 0})
    _refused(api.get(_url(edge)), 409, "leafnode_limit_zero")
    assert _leaf_audits() == 0


def test_a_user_of_its_own_key_gets_the_config_its_creds_are_assembled_for(api, account):
    """We never saw the seed: the config names the creds file its owner makes from the user JWT and their seed."""
    user = services.user_create(actor=PLATFORM, account=account, name="mine",
                                public_key=nkeys.generate(KeyType.USER).public_key)
    assert 'credentials: "mine.creds"' in api.get(_url(user)).content.decode()


def test_another_team_and_another_account_get_404(api, team, other_team, edge):
    intruder = get_user_model().objects.create_user(username="mallory", password="pw-mallory")
    services.team_member_add(team=other_team, user=intruder)
    _refused(token_client(intruder).get(_url(edge)), 404, "not_found")
    sibling = services.account_create(actor=PLATFORM, team=team, name="sibling")
    wrong = f"/api/v1/accounts/{sibling.public_key}/users/{edge.public_key}/leafnode"
    assert api.get(wrong).status_code == 404
    assert _leaf_audits() == 0
