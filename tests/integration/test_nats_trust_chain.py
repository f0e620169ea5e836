"""The trust chain end to end against a real nats-server: our JWTs and .creds work, and are enforced.

Every test starts a real nats-server in operator mode with the full resolver (the ``nats_server``
fixture), pushes account JWTs signed by our code, and connects with `.creds` made by our code.
Nothing is mocked. Services are sync and run their own event loop, so each test body is sync:
it changes state and pushes, then runs small async scenarios with ``asyncio.run``.

No fixed sleeps: every wait is "until a condition holds, or a short deadline passes".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from accounts_service.models import Account, Import
from accounts_service.rights import PLATFORM
from accounts_service.selectors import account_nats_build
from accounts_service.services import (
    account_create,
    account_resign,
    account_signing_key_add,
    activation_create,
    export_create,
    import_create,
    user_create,
    user_creds_get,
    user_revoke,
)
from broker_gateway import nats_client
from broker_gateway.propagation import PushResult, account_jwt_send, account_lookup
from core.errors import ApplicationError
from operators import claims, nkeys
from tests.waiting import wait_for_async

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

# Loopback: everything below answers in milliseconds; these deadlines only bound a failure.
DEADLINE = 3.0
REQUEST_TIMEOUT = 1.0


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def push(account: Account, url: str) -> PushResult:
    """Push the account's latest JWT and insist the (single) server accepted it."""
    account.refresh_from_db()
    result = account_jwt_send(account=account, url=url, expect=1)
    assert result.ok, result.replies
    return result


@dataclass
class Conn:
    """A live client connection plus what the server told it asynchronously."""

    nc: Client
    errors: list[Exception] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def error_text(self) -> str:
        return " | ".join(str(e).lower() for e in self.errors)

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.close()


async def open_conn(url: str, creds_text: str, *, name: str = "test") -> Conn:
    """Connect with `.creds` text through our own nonce signer (no reconnects, short timeouts)."""
    conn = Conn(nc=None)  # type: ignore[arg-type]

    async def error_cb(exc: Exception) -> None:
        conn.errors.append(exc)

    async def closed_cb() -> None:
        conn.closed.set()

    conn.nc = await nats_client.connect_creds(
        url,
        creds_text,
        name=name,
        allow_reconnect=False,
        connect_timeout=2,
        max_reconnect_attempts=0,
        error_cb=error_cb,
        closed_cb=closed_cb,
    )
    return conn


async def refused(url: str, creds_text: str) -> str:
    """Connect and expect the server to refuse; returns the lower-cased error text."""
    try:
        conn = await open_conn(url, creds_text, name="should-be-refused")
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        return str(exc).lower()
    await conn.close()
    raise AssertionError("the server accepted a connection it should have refused")


async def close_all(*conns: Conn) -> None:
    for conn in conns:
        await conn.close()


class Inbox:
    """Collects the messages a subscription receives."""

    def __init__(self) -> None:
        self.msgs: list[Msg] = []

    async def cb(self, msg: Msg) -> None:
        self.msgs.append(msg)

    def subjects(self) -> list[str]:
        return [m.subject for m in self.msgs]


async def echo_responder(conn: Conn, subject: str, prefix: bytes = b"echo:") -> None:
    async def handle(msg: Msg) -> None:
        await msg.respond(prefix + msg.data)

    await conn.nc.subscribe(subject, cb=handle)
    await conn.nc.flush()


def run(coro_fn: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro_fn())


def jwt_claims(token: str) -> dict:
    return claims.decode(token).claims


# ------------------------------------------------------------------------------------------------
# 1. pub/sub permissions
# ------------------------------------------------------------------------------------------------


def test_pub_sub_allowed_and_denied_subjects(nats_server, team):
    url = nats_server.url
    account = account_create(actor=PLATFORM, team=team, name="orders")
    result = push(account, url)
    # Every server replies to an update; one server here.
    assert len(result.replies) == 1 and result.replies[0]["data"]["account"] == account.public_key

    alice = user_create(actor=PLATFORM, account=account, name="alice", pub_allow=["orders.>"], sub_allow=["orders.>"])
    # A spy that may see everything, to prove a denied publish never reaches subscribers.
    spy_user = user_create(actor=PLATFORM, account=account, name="spy", pub_allow=["secret.>"], sub_allow=[">"])
    alice_creds, spy_creds = user_creds_get(user=alice), user_creds_get(user=spy_user)

    async def scenario() -> None:
        a = await open_conn(url, alice_creds, name="alice")
        spy = await open_conn(url, spy_creds, name="spy")
        try:
            alice_inbox, spy_inbox = Inbox(), Inbox()
            await a.nc.subscribe("orders.>", cb=alice_inbox.cb)
            await spy.nc.subscribe(">", cb=spy_inbox.cb)
            await a.nc.flush()
            await spy.nc.flush()

            # Allowed: alice publishes on orders.new and receives it (and so does the spy).
            await a.nc.publish("orders.new", b"1")
            await a.nc.flush()
            await wait_for_async(lambda: alice_inbox.subjects() == ["orders.new"], what="alice's own message")
            await wait_for_async(lambda: "orders.new" in spy_inbox.subjects(), what="spy sees orders.new")
            assert alice_inbox.msgs[0].data == b"1"

            # Denied publish: the server answers -ERR 'Permissions Violation for Publish to ...'
            # (nats-py hands it to error_cb and keeps the connection) and delivers nothing.
            await a.nc.publish("secret.plans", b"leak")
            # Same connection, same order: once this marker reached the spy, the denied message
            # would have reached it first had the server forwarded it.
            await a.nc.publish("orders.marker", b"m")
            await a.nc.flush()
            await wait_for_async(lambda: "orders.marker" in spy_inbox.subjects(), what="marker at the spy")
            await wait_for_async(
                lambda: "permissions violation for publish" in a.error_text(), what="publish permissions violation"
            )
            assert "secret.plans" in a.error_text()
            assert "secret.plans" not in spy_inbox.subjects()
            assert a.nc.is_connected, "a permissions violation must not close the connection"

            # Denied subscribe: refused by the server, and nothing is delivered on it.
            secret_inbox = Inbox()
            await a.nc.subscribe("secret.>", cb=secret_inbox.cb)
            await a.nc.flush()
            await wait_for_async(
                lambda: "permissions violation for subscription" in a.error_text(),
                what="subscribe permissions violation",
            )
            await spy.nc.publish("secret.plans", b"for-spies")
            await spy.nc.flush()
            # The spy receives its own publish on '>' ; alice's marker after it proves ordering.
            await wait_for_async(lambda: "secret.plans" in spy_inbox.subjects(), what="spy's own secret")
            await a.nc.publish("orders.marker2", b"m")
            await a.nc.flush()
            await wait_for_async(lambda: "orders.marker2" in alice_inbox.subjects(), what="alice's marker2")
            assert secret_inbox.msgs == []
            assert a.nc.is_connected
        finally:
            await close_all(a, spy)

    run(scenario)


# ------------------------------------------------------------------------------------------------
# 2. Service exports and imports across accounts (public, and private with an activation)
# ------------------------------------------------------------------------------------------------


def test_service_import_public_and_private_with_activation(nats_server, team, other_team):
    url = nats_server.url
    exporter = account_create(actor=PLATFORM, team=team, name="weather")
    importer = account_create(actor=PLATFORM, team=other_team, name="app")
    export_create(actor=PLATFORM, account=exporter, name="forecast", subject="weather.forecast", type="service")
    private = export_create(actor=PLATFORM,
                            account=exporter, name="radar", subject="weather.radar", type="service", private=True)
    activation = activation_create(actor=PLATFORM, export=private, target_public_key=importer.public_key)
    act = claims.decode(activation.token, expected_type=claims.ACTIVATION)
    assert act.issuer == exporter.public_key and act.subject == importer.public_key

    import_create(actor=PLATFORM, account=importer, exporter_public_key=exporter.public_key, subject="weather.forecast")
    import_create(
        actor=PLATFORM,
        account=importer,
        exporter_public_key=exporter.public_key,
        subject="weather.radar",
        local_subject="radar",
        token=activation.token,
    )
    # Exporter first, so the importer's imports resolve when its JWT arrives.
    push(exporter, url)
    push(importer, url)

    responder = user_create(actor=PLATFORM, account=exporter, name="svc", sub_allow=["weather.>"], allow_responses=True)
    requester = user_create(
        actor=PLATFORM,
        account=importer, name="client", pub_allow=["weather.forecast", "radar"], sub_allow=["_INBOX.>"]
    )
    responder_creds, requester_creds = user_creds_get(user=responder), user_creds_get(user=requester)

    async def scenario() -> None:
        svc = await open_conn(url, responder_creds, name="svc")
        cli = await open_conn(url, requester_creds, name="client")
        try:
            await echo_responder(svc, "weather.forecast", b"forecast:")
            await echo_responder(svc, "weather.radar", b"radar:")
            reply = await cli.nc.request("weather.forecast", b"paris", timeout=REQUEST_TIMEOUT)
            assert reply.data == b"forecast:paris"
            # The private one, imported under a local subject with the activation token.
            reply = await cli.nc.request("radar", b"lyon", timeout=REQUEST_TIMEOUT)
            assert reply.data == b"radar:lyon"
            assert svc.errors == [] and cli.errors == []
        finally:
            await close_all(svc, cli)

    run(scenario)


# ------------------------------------------------------------------------------------------------
# 3. A private import without a token
# ------------------------------------------------------------------------------------------------


def test_private_import_without_token_is_refused_and_gets_no_responders(nats_server, team, other_team):
    url = nats_server.url
    exporter = account_create(actor=PLATFORM, team=team, name="vault")
    importer = account_create(actor=PLATFORM, team=other_team, name="thief")
    export = export_create(actor=PLATFORM,
                           account=exporter, name="secrets", subject="vault.get", type="service", private=True)

    # Our service refuses a private import with no activation token.
    with pytest.raises(ApplicationError, match="activation token is required"):
        import_create(actor=PLATFORM, account=importer, exporter_public_key=exporter.public_key, subject="vault.get")
    assert not Import.objects.filter(account=importer).exists()

    # The server's own behaviour: slip the token-less import in behind the service's back and sign
    # it (with the operator signing key, as strict signing requires) ...
    Import.objects.create(
        account=importer, export=export, name="vault.get", subject="vault.get", local_subject="vault.get", token=""
    )
    importer = account_resign(account=importer)
    imports = jwt_claims(importer.jwt)["nats"]["imports"]
    assert imports == [{"name": "vault.get", "subject": "vault.get", "account": exporter.public_key, "type": "service"}]
    push(exporter, url)
    # ... the server stores it ("jwt updated") ...
    push(importer, url)

    responder = user_create(
        actor=PLATFORM,
        account=exporter, name="svc", pub_allow=["vault.>"], sub_allow=["vault.>", "_INBOX.>"], allow_responses=True
    )
    requester = user_create(actor=PLATFORM,
                            account=importer, name="client", pub_allow=["vault.get"], sub_allow=["_INBOX.>"])
    responder_creds, requester_creds = user_creds_get(user=responder), user_creds_get(user=requester)

    async def scenario() -> None:
        svc = await open_conn(url, responder_creds, name="svc")
        cli = await open_conn(url, requester_creds, name="client")
        try:
            served = Inbox()

            async def handle(msg: Msg) -> None:
                await served.cb(msg)
                await msg.respond(b"the secret")

            await svc.nc.subscribe("vault.get", cb=handle)
            await svc.nc.flush()
            # The service is live: it answers inside its own account ...
            own = await svc.nc.request("vault.get", b"x", timeout=REQUEST_TIMEOUT)
            assert own.data == b"the secret" and len(served.msgs) == 1
            # ... but the server never wires the token-less import: no responders in the importer.
            # (nats-server answers the request with a 503 status at once; nats-py raises NoRespondersError.)
            with pytest.raises(nats.errors.NoRespondersError):
                await cli.nc.request("vault.get", b"please", timeout=REQUEST_TIMEOUT)
            assert len(served.msgs) == 1  # only the in-account request reached the service
        finally:
            await close_all(svc, cli)

    run(scenario)


# ------------------------------------------------------------------------------------------------
# 4. Revocation
# ------------------------------------------------------------------------------------------------


def test_revoked_user_is_kicked_and_refused(nats_server, team):
    url = nats_server.url
    account = account_create(actor=PLATFORM, team=team, name="iot")
    push(account, url)
    device = user_create(actor=PLATFORM, account=account, name="device-1", pub_allow=["iot.>"], sub_allow=["iot.>"])
    creds_text = user_creds_get(user=device)  # read before revoking: a revoked user has no creds

    async def connect() -> Conn:
        conn = await open_conn(url, creds_text, name="device-1")
        await conn.nc.flush()
        assert conn.nc.is_connected
        return conn

    loop = asyncio.new_event_loop()
    try:
        conn = loop.run_until_complete(connect())
        # Revoke and push from outside the client's loop (services run their own loop).
        user_revoke(actor=PLATFORM, user=device)
        account.refresh_from_db()
        assert device.public_key in jwt_claims(account.jwt)["nats"]["revocations"]
        push(account, url)

        async def kicked() -> None:
            try:
                await asyncio.wait_for(conn.closed.wait(), DEADLINE)
            finally:
                await conn.close()
            assert not conn.nc.is_connected
            # The server says why before closing: -ERR 'User Authentication Revoked'.
            assert "user authentication revoked" in str(conn.nc.last_error).lower()

        loop.run_until_complete(kicked())
        error = loop.run_until_complete(refused(url, creds_text))
        assert "authorization violation" in error, error
    finally:
        loop.close()


# ------------------------------------------------------------------------------------------------
# 5. Connection limit
# ------------------------------------------------------------------------------------------------


def test_account_conn_limit(nats_server, team):
    url = nats_server.url
    account = account_create(actor=PLATFORM, team=team, name="small", limits={"conn": 2})
    push(account, url)
    assert jwt_claims(account.jwt)["nats"]["limits"]["conn"] == 2
    user = user_create(actor=PLATFORM, account=account, name="worker", pub_allow=["work.>"], sub_allow=["work.>"])
    creds_text = user_creds_get(user=user)

    async def scenario() -> None:
        first = await open_conn(url, creds_text, name="c1")
        second = await open_conn(url, creds_text, name="c2")
        try:
            await first.nc.flush()
            await second.nc.flush()
            error = await refused(url, creds_text)
            assert "maximum account active connections exceeded" in error, error
            # The two within the limit are untouched.
            assert first.nc.is_connected and second.nc.is_connected
        finally:
            await close_all(first, second)
        # Freed slots can be used again (the server may count the close a moment later).
        third = None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while third is None:
            try:
                third = await open_conn(url, creds_text, name="c3")
            except nats.errors.Error:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)
        await third.close()

    run(scenario)


# ------------------------------------------------------------------------------------------------
# 6. User expiry
# ------------------------------------------------------------------------------------------------


def test_expired_user_is_refused(nats_server, team):
    url = nats_server.url
    account = account_create(actor=PLATFORM, team=team, name="temp")
    push(account, url)
    # exp is whole seconds: round up so the user has at least two full seconds.
    exp = math.ceil(time.time()) + 2
    user = user_create(
        actor=PLATFORM,
        account=account,
        name="visitor",
        pub_allow=["tmp.>"],
        sub_allow=["tmp.>"],
        expires_at=dt.datetime.fromtimestamp(exp, tz=dt.UTC),
    )
    assert jwt_claims(user.jwt)["exp"] == exp
    creds_text = user_creds_get(user=user)

    async def scenario() -> None:
        conn = await open_conn(url, creds_text, name="visitor")
        try:
            await conn.nc.flush()
            assert conn.nc.is_connected
            # The server also closes a live connection when its JWT expires
            # (-ERR 'User Authentication Expired'; observed up to about a second after exp).
            await asyncio.wait_for(conn.closed.wait(), exp - time.time() + DEADLINE)
            assert time.time() >= exp - 0.5
            assert "user authentication expired" in str(conn.nc.last_error).lower()
        finally:
            await conn.close()
        # Once expired, a new connection is refused (polled: the server compares whole seconds).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while True:
            try:
                late = await open_conn(url, creds_text, name="late")
            except nats.errors.Error as exc:
                assert "user authentication expired" in str(exc).lower(), exc
                break
            await late.close()
            assert loop.time() < deadline, "an expired user could still connect"
            await asyncio.sleep(0.05)

    run(scenario)


# ------------------------------------------------------------------------------------------------
# 7. Scoped signing keys
# ------------------------------------------------------------------------------------------------


def test_scoped_signing_key_user(nats_server, team):
    url = nats_server.url
    account = account_create(actor=PLATFORM, team=team, name="scoped")
    key = account_signing_key_add(
        actor=PLATFORM,
        account=account,
        role="sensor",
        template={
            "pub_allow": ["scoped.>"],
            "sub_allow": ["scoped.>"],
            "allow_responses": False,
        },
    )
    push(account, url)
    scopes = jwt_claims(account.jwt)["nats"]["signing_keys"]
    assert {"kind": "user_scope", "key": key.public_key, "role": "sensor"}.items() <= next(
        s for s in scopes if isinstance(s, dict)
    ).items()

    user = user_create(actor=PLATFORM, account=account, name="sensor-1", role="sensor")
    user_claims = jwt_claims(user.jwt)
    assert user_claims["iss"] == key.public_key
    assert user_claims["nats"]["issuer_account"] == account.public_key
    assert not {"pub", "sub", "subs", "data", "payload"} & set(user_claims["nats"])
    creds_text = user_creds_get(user=user)

    async def scenario() -> None:
        conn = await open_conn(url, creds_text, name="sensor-1")
        try:
            inbox, outside = Inbox(), Inbox()
            await conn.nc.subscribe("scoped.>", cb=inbox.cb)
            await conn.nc.flush()
            await conn.nc.publish("scoped.temp", b"21")
            await conn.nc.flush()
            await wait_for_async(lambda: inbox.subjects() == ["scoped.temp"], what="scoped pub/sub")

            await conn.nc.publish("other.temp", b"x")
            await conn.nc.flush()
            await wait_for_async(
                lambda: "permissions violation for publish" in conn.error_text(),
                what="publish outside the template refused",
            )
            await conn.nc.subscribe("other.>", cb=outside.cb)
            await conn.nc.flush()
            await wait_for_async(
                lambda: "permissions violation for subscription" in conn.error_text(),
                what="subscribe outside the template refused",
            )
            # Still connected and still working within the template.
            await conn.nc.publish("scoped.humidity", b"40")
            await conn.nc.flush()
            await wait_for_async(lambda: "scoped.humidity" in inbox.subjects(), what="scoped pub/sub after denials")
            assert outside.msgs == []
        finally:
            await conn.close()

    run(scenario)


# ------------------------------------------------------------------------------------------------
# 8. Strict signing: an account JWT signed by the operator identity key
# ------------------------------------------------------------------------------------------------


def test_identity_signed_account_jwt_is_refused_under_strict_signing(nats_server, operator_setup, team):
    url = nats_server.url
    assert operator_setup.operator.strict_signing_key_usage
    account = account_create(actor=PLATFORM, team=team, name="strict")
    push(account, url)
    good_jwt = account.jwt
    user = user_create(actor=PLATFORM, account=account, name="u", pub_allow=["s.>"], sub_allow=["s.>"])
    creds_text = user_creds_get(user=user)

    identity = nkeys.from_seed(operator_setup.identity_seed_path.read_text().strip())
    assert identity.public_key == operator_setup.operator.public_key
    # Same account key and state, except conn 0: had the server taken it, the user could not connect.
    nats_section = account_nats_build(account)
    nats_section["limits"]["conn"] = 0
    forged = claims.encode(
        claims.ACCOUNT,
        subject=account.public_key,
        name=account.name,
        nats=nats_section,
        signer=identity,
        iat=account.jwt_iat + 1,
    )
    assert claims.decode(forged).issuer == identity.public_key  # validly signed, just by the wrong key

    # Push the identity-signed JWT the normal way (as if it were the account's latest).
    Account.objects.filter(pk=account.pk).update(jwt=forged)
    account.refresh_from_db()
    result = account_jwt_send(account=account, url=url, expect=1)
    # What nats-server 2.15.1 does: the update is rejected outright with an error reply,
    # {"error": {"code": 500, "description": "jwt update resulted in error - operator requires
    # issuer to be a signing key"}}: under strict_signing_key_usage the operator identity key is
    # not a trusted issuer of account JWTs. The server keeps the previous JWT (LOOKUP still returns
    # it), so the account's users keep connecting.
    assert not result.ok
    assert len(result.replies) == 1
    error = result.replies[0].get("error", {})
    assert error.get("code") == 500 and error.get("account") == account.public_key, result.replies
    assert "operator requires issuer to be a signing key" in error.get("description", ""), result.replies
    assert account_lookup(account_public_key=account.public_key, url=url) == good_jwt

    async def still_works() -> None:
        conn = await open_conn(url, creds_text)
        await conn.nc.flush()
        await conn.close()

    run(still_works)


# ------------------------------------------------------------------------------------------------
# Lookup
# ------------------------------------------------------------------------------------------------


def test_lookup_returns_exactly_the_pushed_jwt(nats_server, team):
    url = nats_server.url
    account = account_create(actor=PLATFORM, team=team, name="lookup")
    assert account_lookup(account_public_key=account.public_key, url=url) == ""
    push(account, url)
    assert account_lookup(account_public_key=account.public_key, url=url) == account.jwt
    # A later version replaces it (strictly higher iat, whole state).
    export_create(actor=PLATFORM, account=account, name="feed", subject="feed.>", type="stream")
    account.refresh_from_db()
    newer = account.jwt
    push(account, url)
    stored = account_lookup(account_public_key=account.public_key, url=url)
    assert stored == newer
    assert jwt_claims(stored)["nats"]["exports"][0]["subject"] == "feed.>"


# ------------------------------------------------------------------------------------------------
# Signing key rotation: the old key's creds are refused, the re-issued ones work
# ------------------------------------------------------------------------------------------------


def test_rotated_signing_key_refuses_old_creds_and_accepts_new_ones(nats_server, team):
    from accounts_service.services import account_signing_key_rotate
    from operators.models import SigningKey

    url = nats_server.url
    account = account_create(actor=PLATFORM, team=team, name="rotating")
    user = user_create(actor=PLATFORM, account=account, name="svc", pub_allow=["svc.>"], sub_allow=["svc.>"])
    push(account, url)
    old_creds = user_creds_get(user=user)

    async def works(creds_text: str) -> None:
        conn = await open_conn(url, creds_text, name="svc")
        try:
            sub = await conn.nc.subscribe("svc.ping")
            await conn.nc.publish("svc.ping", b"hi")
            assert (await sub.next_msg(timeout=REQUEST_TIMEOUT)).data == b"hi"
        finally:
            await conn.close()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(works(old_creds))
        old_key = SigningKey.objects.get(owner_public_key=account.public_key).public_key
        account_signing_key_rotate(actor=PLATFORM, account=account, public_key=old_key)
        push(account, url)
        user.refresh_from_db()
        new_creds = user_creds_get(user=user)
        assert new_creds != old_creds
        error = loop.run_until_complete(refused(url, old_creds))
        assert "authorization violation" in error, error
        loop.run_until_complete(works(new_creds))
    finally:
        loop.close()
