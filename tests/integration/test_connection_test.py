"""The connect page's connection test against a real nats-server: an allowed user connects and gets its own
message back; a revoked user is refused with the server's own text; a bring-your-own-key user is not tried."""

from __future__ import annotations

import pytest

from accounts_service.models import AuditEvent
from accounts_service.rights import PLATFORM
from accounts_service.services import account_create, user_create, user_revoke
from broker_gateway.connection_test import user_connection_test
from broker_gateway.propagation import account_jwt_send
from core.errors import Conflict
from operators import nkeys
from operators.nkeys import KeyType

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def _push(account, url):
    account.refresh_from_db()
    assert account_jwt_send(account=account, url=url, expect=1).ok


def test_allowed_user_round_trips_and_revoked_user_gets_the_servers_refusal(nats_server, team):
    account = account_create(actor=PLATFORM, team=team, name="orders")
    alice = user_create(actor=PLATFORM, account=account, name="alice", pub_allow=["orders.>"],
                        sub_allow=["orders.>"])
    _push(account, nats_server.url)

    ok = user_connection_test(user=alice, actor=PLATFORM, servers=[nats_server.url])
    assert ok["ok"] and ok["connected"] and ok["error"] is None, ok
    assert ok["server_name"] == "test-node" and ok["rtt_ms"] is not None
    assert [s["step"] for s in ok["steps"]] == ["connect", "subscribe", "publish", "round_trip"]
    assert ok["subjects"] == {"pub": "orders.demo", "sub": "orders.>"}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CONNECTION_TEST, target=alice.public_key).exists()

    user_revoke(user=alice, actor=PLATFORM)
    _push(account, nats_server.url)
    refused = user_connection_test(user=alice, actor=PLATFORM, servers=[nats_server.url])
    assert not refused["ok"] and not refused["connected"]
    assert "authorization violation" in refused["error"].lower(), refused


def test_a_publish_only_user_is_tested_on_what_it_may_do(nats_server, team):
    """A publish-only user: the test publishes on its allowed subject and does not try a subscription it may not
    make."""
    account = account_create(actor=PLATFORM, team=team, name="logs")
    bob = user_create(actor=PLATFORM, account=account, name="bob", pub_allow=["logs.>"], sub_deny=[">"])
    _push(account, nats_server.url)
    result = user_connection_test(user=bob, actor=PLATFORM, servers=[nats_server.url])
    assert result["ok"], result
    assert [s["step"] for s in result["steps"]] == ["connect", "publish"]  # it may not subscribe: not tried


def test_own_key_user_is_not_tried(operator_setup, team):
    account = account_create(actor=PLATFORM, team=team, name="edge")
    key = nkeys.generate(KeyType.USER)
    edge = user_create(actor=PLATFORM, account=account, name="edge", public_key=key.public_key)
    with pytest.raises(Conflict) as refused:
        user_connection_test(user=edge, actor=PLATFORM, servers=["nats://127.0.0.1:1"])
    assert refused.value.code == "connection_test_seed_unknown"
