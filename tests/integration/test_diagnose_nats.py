""""Why can't my client connect?" against a real nats-server: for each cause, the server really refuses AND the
diagnosis names that cause. One server (registered as the fleet's one node, so the diagnosis asks its
``/accountz`` for live counts and the JWT it holds), several accounts; no fixed sleeps."""

from __future__ import annotations

import datetime as dt
import math
import time

import pytest
from django.utils import timezone

from accounts_service.models import NatsUser
from accounts_service.rights import PLATFORM
from accounts_service.services import (
    account_create,
    account_signing_key_add,
    account_signing_key_rotate,
    account_suspend,
    user_create,
    user_creds_get,
    user_revoke,
)
from broker_gateway.diagnose import user_diagnose
from broker_gateway.models import BrokerNode
from broker_gateway.services import gateway_open
from operators import creds as creds_mod
from operators import nkeys
from operators.nkeys import KeyType
from tests.integration.test_nats_trust_chain import DEADLINE, close_all, open_conn, push, refused, run
from tests.waiting import wait_for, wait_for_async

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


@pytest.fixture(autouse=True)
def _sync_db_inside_scenarios(monkeypatch):
    """Scenarios call the (sync) diagnosis while their connections stay open in the event loop; the loop only waits
    meanwhile, so the ORM may run there."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def node(nats_server):
    """The test server as the fleet's one running, healthy node."""
    return BrokerNode.objects.create(name="test-node", client_port=nats_server.port, cluster_port=1,
                                     monitoring_port=nats_server.http_port, leafnode_port=2, gateway_port=3,
                                     desired_state=BrokerNode.Desired.RUNNING,
                                     observed_state=BrokerNode.Observed.HEALTHY, last_healthy_at=timezone.now())


def diagnose(creds_text: str, **kw) -> dict:
    return user_diagnose(actor=None, creds=creds_text, **kw)


def cause(result: dict) -> str | None:
    return result["verdict"]["cause"] if not result["verdict"]["ok"] else None


def test_healthy_user_connects_and_the_diagnosis_says_so(nats_server, node, team):
    account = account_create(actor=PLATFORM, team=team, name="ok")
    push(account, nats_server.url)
    text = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="u", pub_allow=[">"],
                                           sub_allow=[">"]))

    async def scenario() -> None:
        conn = await open_conn(nats_server.url, text)
        await conn.nc.flush()
        await conn.close()

    run(scenario)
    result = diagnose(text)
    assert result["verdict"]["ok"], result
    nodes = next(c for c in result["checks"] if c["check"] == "nodes")
    assert nodes["ok"], nodes


def test_revoked_user(nats_server, node, team):
    account = account_create(actor=PLATFORM, team=team, name="rev")
    user = user_create(actor=PLATFORM, account=account, name="u")
    text = user_creds_get(user=user)
    user_revoke(actor=PLATFORM, user=user)
    push(account, nats_server.url)
    assert "authorization violation" in asyncio_run(refused(nats_server.url, text))
    assert cause(diagnose(text)) == "revocation"


def test_expired_user(nats_server, node, team):
    account = account_create(actor=PLATFORM, team=team, name="exp")
    push(account, nats_server.url)
    exp = math.ceil(time.time()) + 1
    user = user_create(actor=PLATFORM, account=account, name="u",
                       expires_at=dt.datetime.fromtimestamp(exp, tz=dt.UTC))
    text = user_creds_get(user=user)
    wait_for(lambda: time.time() >= exp + 0.01, timeout=DEADLINE, what="the user's exp to pass")

    async def refused_eventually() -> str:  # the server compares whole seconds: poll until it refuses
        refusal: list[str] = []

        async def attempt() -> bool:
            try:
                refusal.append(await refused(nats_server.url, text))
            except AssertionError:
                return False
            return True

        deadline = time.monotonic() + DEADLINE
        while not await attempt():
            assert time.monotonic() < deadline, "an expired user could still connect"
        return refusal[0]

    message = asyncio_run(refused_eventually())
    assert "expired" in message or "authorization violation" in message, message
    assert cause(diagnose(text)) == "user_expiry"


def test_user_signed_by_a_removed_signing_key(nats_server, node, team):
    account = account_create(actor=PLATFORM, team=team, name="rot")
    user = user_create(actor=PLATFORM, account=account, name="u")
    old_text = user_creds_get(user=user)
    account_signing_key_rotate(actor=PLATFORM, account=account, public_key=user.signing_key.public_key)
    push(account, nats_server.url)
    assert "authorization violation" in asyncio_run(refused(nats_server.url, old_text))
    assert cause(diagnose(old_text)) == "issuer"
    # The re-issued creds work, and are diagnosed as fine.
    assert diagnose(user_creds_get(user=NatsUser.objects.get(pk=user.pk)))["verdict"]["ok"]


def test_wrong_seed_paired_with_the_jwt(nats_server, node, team):
    account = account_create(actor=PLATFORM, team=team, name="pair")
    push(account, nats_server.url)
    user = user_create(actor=PLATFORM, account=account, name="u")
    text = creds_mod.format_creds(user.jwt, nkeys.generate(KeyType.USER).seed)
    assert "authorization violation" in asyncio_run(refused(nats_server.url, text))
    result = diagnose(text)
    assert cause(result) == "seed_pair"


def test_suspended_account(nats_server, node, team):
    account = account_create(actor=PLATFORM, team=team, name="susp")
    text = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="u"))
    account_suspend(actor=PLATFORM, account=account, reason="monthly data allowance used up")
    push(account, nats_server.url)
    message = asyncio_run(refused(nats_server.url, text))
    assert "maximum account active connections" in message or "authorization" in message, message
    result = diagnose(text)
    assert cause(result) == "suspension" and "monthly data allowance" in result["verdict"]["message"]


def test_conn_limit_reached_with_the_live_count(nats_server, node, team):
    account = account_create(actor=PLATFORM, team=team, name="lim", limits={"conn": 1})
    push(account, nats_server.url)
    text = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="u"))

    async def scenario() -> None:
        first = await open_conn(nats_server.url, text, name="first")
        try:
            await first.nc.flush()
            message = await refused(nats_server.url, text)
            assert "maximum account active connections exceeded" in message, message
            result = diagnose(text)
            assert cause(result) == "conn_limit", result
            limit = next(c for c in result["checks"] if c["check"] == "conn_limit")
            assert limit["detail"] == {"limit": 1, "current": 1}
        finally:
            await close_all(first)
        # closed: the same creds are fine again (the live count says 0)
        await wait_for_async(lambda: diagnose(text)["verdict"]["ok"], timeout=DEADLINE, what="the count to drop")

    run(scenario)


def test_publish_denied_vs_allowed_with_the_deciding_rule(nats_server, node, team):
    account = account_create(actor=PLATFORM, team=team, name="perm")
    push(account, nats_server.url)
    text = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="u", pub_allow=["orders.>"],
                                           pub_deny=["orders.secret"], sub_allow=[">"]))

    async def scenario() -> None:
        conn = await open_conn(nats_server.url, text)
        try:
            await conn.nc.publish("orders.secret", b"x")
            await conn.nc.flush()
            await wait_for_async(lambda: "permissions violation for publish to \"orders.secret\"" in conn.error_text()
                                 or "permissions violation for publish" in conn.error_text(),
                                 timeout=DEADLINE, what="the server's permissions violation")
            seen = len(conn.errors)
            await conn.nc.publish("orders.new", b"x")
            await conn.nc.flush()
            assert len(conn.errors) == seen and conn.nc.is_connected
        finally:
            await conn.close()

    run(scenario)
    denied = diagnose(text, subject="orders.secret", action="pub")
    assert cause(denied) == "permission"
    perm = denied["checks"][0]
    assert perm["detail"]["rule"] == "deny" and perm["detail"]["pattern"] == "orders.secret"
    allowed = diagnose(text, subject="orders.new", action="pub")
    assert allowed["verdict"]["ok"]
    perm = next(c for c in allowed["checks"] if c["check"] == "permission")
    assert perm["ok"] and perm["detail"]["pattern"] == "orders.>"


def test_a_node_holding_an_older_jwt(nats_server, node, team):
    """The node is rolled back to the account JWT before a signing key was added: a user of the new key is
    refused there, and the diagnosis names the node (live from its /accountz)."""
    account = account_create(actor=PLATFORM, team=team, name="stale")
    push(account, nats_server.url)
    account.refresh_from_db()
    old_jwt = account.jwt
    first = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="first"))
    account_signing_key_add(actor=PLATFORM, account=account, role="ops", template={"pub_allow": [">"]})
    push(account, nats_server.url)
    text = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="ops-user", role="ops"))

    async def scenario() -> None:
        conn = await open_conn(nats_server.url, first)  # the node loads the account (accountz answers)
        try:
            ok = await open_conn(nats_server.url, text)
            await ok.close()
            gateway = gateway_open([nats_server.url], name="rollback")
            try:
                (replies,) = gateway.push([old_jwt], expect=1, timeout=DEADLINE)
            finally:
                gateway.close()
            assert replies and "error" not in replies[0], replies
            message = await refused(nats_server.url, text)
            assert "authorization violation" in message, message
            result = diagnose(text)
            assert cause(result) == "nodes", result
            nodes = next(c for c in result["checks"] if c["check"] == "nodes")
            row = nodes["detail"]["nodes"][0]
            assert row["node"] == "test-node" and row["source"] == "live" and row["latest"] is False
            assert "issuer" in row["refuses"].lower() or "signing key" in row["refuses"].lower(), row
        finally:
            await conn.close()

    run(scenario)


def asyncio_run(coro):
    import asyncio

    return asyncio.run(coro)
