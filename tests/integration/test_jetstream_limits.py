"""JetStream limits on a real nats-server (JetStream enabled, operator mode, full resolver): what the tenant sets
(-1 unlimited, 0 none, N at most N) is what the server enforces, at 0, at the plan's ceiling and one past it.

Nothing is mocked; each test pushes the account JWT our code signed and uses the JetStream API as the account's
user (nats-py). A push is answered once the server applied the JWT, so no waiting is needed after it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.js.api import StorageType
from nats.js.errors import APIError

from accounts_service.models import Account
from accounts_service.rights import PLATFORM
from accounts_service.services import account_create, account_update, user_create, user_creds_get
from billing.models import Plan
from broker_gateway import nats_client
from broker_gateway.propagation import account_jwt_send
from core.errors import ApplicationError
from tests.natsproc import NatsServer, free_port, start_nats_server

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

# nats-server's JetStream API error codes (server/errors.json)
MAX_STREAMS = 10027  # "maximum number of streams reached"
MAX_CONSUMERS = 10026  # "maximum consumers limit reached"
MEMORY_EXCEEDED = 10028  # "insufficient memory resources available"
STORAGE_EXCEEDED = 10047  # "insufficient storage resources available"
NOT_ENABLED = 10039  # "jetstream not enabled for account"


@pytest.fixture
def js_server(operator_setup, tmp_path: Path):
    """One nats-server with JetStream (its own store) in operator mode with the full resolver."""
    from broker_gateway.nodes import server_config_build

    port, http_port = free_port(), free_port()
    config = server_config_build(resolver_dir=tmp_path / "jwt", server_name="js-node", port=port,
                                 http_port=http_port, resolver_interval="2m",
                                 jetstream_store_dir=str(tmp_path / "js"))
    server: NatsServer = start_nats_server(config, tmp_path / "nats", port=port, http_port=http_port)
    yield server
    server.stop()


def push(account: Account, url: str) -> None:
    account.refresh_from_db()
    result = account_jwt_send(account=account, url=url, expect=1)
    assert result.ok, result.replies


async def api_error(coro) -> int:
    """Await a JetStream API call that the server must refuse; its error code."""
    with pytest.raises(APIError) as refused:
        await coro
    return refused.value.err_code


def test_streams_and_consumers_at_the_ceiling_one_past_it_and_at_zero(js_server, team):
    free = Plan.objects.get(name="free")
    account = account_create(actor=PLATFORM, team=team, name="js", plan="free")
    assert (account.streams, account.consumer, account.mem_storage) == (free.streams, free.consumer, 0)
    push(account, js_server.url)
    creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))

    async def at_the_ceiling() -> None:
        nc = await nats_client.connect_creds(js_server.url, creds, name="js")
        js = nc.jetstream(timeout=2)
        # memory storage 0 means none: a memory stream does not fit
        assert await api_error(js.add_stream(name="MEM", subjects=["mem.>"], storage=StorageType.MEMORY)) == (
            MEMORY_EXCEEDED)
        for i in range(free.streams):  # the ceiling: allowed
            await js.add_stream(name=f"S{i}", subjects=[f"s{i}.>"], storage=StorageType.FILE)
        # one past it: refused by the server
        assert await api_error(js.add_stream(name="ONE_MORE", subjects=["more.>"])) == MAX_STREAMS
        for i in range(free.consumer):
            await js.add_consumer("S0", durable_name=f"c{i}")
        assert await api_error(js.add_consumer("S0", durable_name="one-more")) == MAX_CONSUMERS
        assert (await js.account_info()).limits.max_streams == free.streams
        await nc.close()

    asyncio.run(at_the_ceiling())

    # one past the ceiling, or unlimited, is refused before anything is signed
    for field in ("streams", "consumer"):
        for value in (getattr(free, field) + 1, -1):
            with pytest.raises(ApplicationError, match=f"allows {field} at most"):
                account_update(account=account, actor=PLATFORM, limits={field: value})
    # consumer 0 cannot be said while JetStream is on (the server would read it as unlimited)
    with pytest.raises(ApplicationError, match="consumer cannot be 0"):
        account_update(account=account, actor=PLATFORM, limits={"consumer": 0})

    # streams 0 means none: JetStream off for the account
    account_update(account=Account.objects.get(pk=account.pk), actor=PLATFORM, limits={"streams": 0})
    push(account, js_server.url)

    async def at_zero() -> None:
        nc = await nats_client.connect_creds(js_server.url, creds, name="js")
        js = nc.jetstream(timeout=2)
        assert await api_error(js.account_info()) == NOT_ENABLED
        await nc.close()

    asyncio.run(at_zero())

    # turned on again: the streams were stopped, not deleted
    account_update(account=Account.objects.get(pk=account.pk), actor=PLATFORM, limits={"streams": free.streams})
    push(account, js_server.url)

    async def back() -> None:
        nc = await nats_client.connect_creds(js_server.url, creds, name="js")
        js = nc.jetstream(timeout=2)
        assert (await js.account_info()).streams == free.streams
        assert (await js.stream_info("S0")).state.consumer_count == free.consumer
        await nc.close()

    asyncio.run(back())


def test_unlimited_streams_and_consumers_and_storage_at_its_limit(js_server, team):
    """An operator-managed account (no plan): -1 is unlimited at the server, and storage is enforced to the byte."""
    disk = 1 << 20
    account = account_create(actor=PLATFORM, team=team, name="ops",
                             limits={"disk_storage": disk, "mem_storage": 0, "streams": -1, "consumer": -1})
    push(account, js_server.url)
    creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))

    async def scenario() -> None:
        nc = await nats_client.connect_creds(js_server.url, creds, name="js")
        js = nc.jetstream(timeout=2)
        info = await js.account_info()
        assert (info.limits.max_streams, info.limits.max_consumers, info.limits.max_storage) == (-1, -1, disk)
        # storage one byte past the limit is refused; exactly at it is allowed, and then nothing else fits
        assert await api_error(js.add_stream(name="BIG", subjects=["big.>"], max_bytes=disk + 1)) == (
            STORAGE_EXCEEDED)
        await js.add_stream(name="FULL", subjects=["full.>"], max_bytes=disk)
        assert await api_error(js.add_stream(name="MORE", subjects=["more.>"], max_bytes=1)) == STORAGE_EXCEEDED
        await js.delete_stream("FULL")
        # unlimited streams and consumers: more than any plan's small ceiling
        for i in range(8):
            await js.add_stream(name=f"S{i}", subjects=[f"s{i}.>"], max_bytes=1024)
        for i in range(60):
            await js.add_consumer("S0", durable_name=f"c{i}")
        assert (await js.account_info()).streams == 8
        await nc.close()

    asyncio.run(scenario())


def test_the_old_encoding_was_unlimited_and_the_migration_bounds_it(js_server, team):
    """The issue as the server saw it: storage set, streams and consumer written as 0 let a free-plan account make
    8 streams and 60 consumers. The data migration re-signs such an account within its plan's ceilings."""
    import importlib

    from django.apps import apps

    from accounts_service.selectors import account_nats_build
    from operators.services import account_jwt_issue

    free = Plan.objects.get(name="free")
    account = account_create(actor=PLATFORM, team=team, name="legacy", plan="free")
    nats = account_nats_build(account)
    nats["limits"].update(streams=0, consumer=0)  # what the old code wrote for a row holding 0s
    Account.objects.filter(pk=account.pk).update(streams=0, consumer=0)
    issued = account_jwt_issue(account_public_key=account.public_key, name=account.name, nats=nats)
    Account.objects.filter(pk=account.pk).update(jwt=issued.jwt, jwt_iat=issued.iat)
    push(account, js_server.url)
    creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))

    async def make(first: int, streams: int, consumers: int) -> None:
        nc = await nats_client.connect_creds(js_server.url, creds, name="js")
        js = nc.jetstream(timeout=2)
        for i in range(first, first + streams):
            await js.add_stream(name=f"S{i}", subjects=[f"s{i}.>"], max_bytes=1024)
        for i in range(consumers):
            await js.add_consumer(f"S{first}", durable_name=f"c{i}")
        await nc.close()

    asyncio.run(make(0, 8, 60))  # past the free plan's 5 and 50: the server read 0 as unlimited

    importlib.import_module("billing.migrations.0007_jetstream_zero_limits").jetstream_zero_limits(apps, None)
    account.refresh_from_db()
    assert (account.streams, account.consumer) == (free.streams, free.consumer)
    push(account, js_server.url)

    async def bounded() -> None:
        nc = await nats_client.connect_creds(js_server.url, creds, name="js")
        js = nc.jetstream(timeout=2)
        assert (await js.account_info()).limits.max_streams == free.streams
        assert await api_error(js.add_stream(name="NEW", subjects=["new.>"], max_bytes=1024)) == MAX_STREAMS
        await nc.close()

    asyncio.run(bounded())
