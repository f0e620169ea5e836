"""Pushing account JWTs to nats-server and rendering server configs from the control plane's state."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts_service.models import Account, NatsUser
from accounts_service.services import system_account_ensure, user_create
from broker_gateway import config as config_render
from broker_gateway import nats_client
from operators import services as op_services
from operators.errors import ApplicationError
from operators.selectors import operator_get

CONTROL_PLANE_USER = "control-plane"
# The control plane's own system-account user may only talk on the claims subjects it needs.
CONTROL_PLANE_PUB = ["$SYS.REQ.CLAIMS.>", "$SYS.REQ.ACCOUNT.*.CLAIMS.>"]
CONTROL_PLANE_SUB = ["_INBOX.>"]


@transaction.atomic
def control_plane_user_ensure() -> NatsUser:
    """The system-account user the control plane connects as to push and look up JWTs."""
    system = system_account_ensure()
    user = NatsUser.objects.filter(account=system, name=CONTROL_PLANE_USER).first()
    return user or user_create(account=system, name=CONTROL_PLANE_USER, pub_allow=CONTROL_PLANE_PUB,
                               sub_allow=CONTROL_PLANE_SUB)


@dataclass(frozen=True)
class PushResult:
    account: str
    replies: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return bool(self.replies) and all("data" in r and r["data"].get("code") == 200 for r in self.replies)


def _system_connector(url: str, name: str):
    """An async context manager connecting to ``url`` as the control plane's system-account user.

    The user and its nonce signer are read here, outside the event loop (the ORM is sync).
    """
    user = control_plane_user_ensure()
    jwt, signer = user.jwt, op_services.nonce_signer_get(user_seed=user.seed)

    @contextlib.asynccontextmanager
    async def connection():
        nc = await nats_client.connect(url, user_jwt=jwt, sign_nonce=signer, name=name)
        try:
            yield nc
        finally:
            await nc.close()

    return connection


def account_push(*, account: Account, url: str, timeout: float | None = None, expect: int | None = None) -> PushResult:
    """Push the account's latest JWT (read from the database now) to the server at ``url``, like ``nsc push -u``."""
    account.refresh_from_db(fields=["jwt"])
    connection = _system_connector(url, "natsctl-push")
    timeout = settings.NATS_PUSH_TIMEOUT if timeout is None else timeout

    async def run() -> list[dict[str, Any]]:
        async with connection() as nc:
            return await nats_client.request_all(nc, "$SYS.REQ.CLAIMS.UPDATE", account.jwt.encode("ascii"),
                                                 timeout=timeout, expect=expect)

    try:
        replies = asyncio.run(run())
    except (OSError, nats_client.nats.errors.Error, TimeoutError) as exc:
        raise ApplicationError(f"could not reach {url}: {exc or type(exc).__name__}", status_code=503) from exc
    return PushResult(account=account.public_key, replies=replies)


def account_lookup(*, account_public_key: str, url: str, timeout: float = 2.0) -> str:
    """The JWT the server at ``url`` holds for an account ('' if none)."""
    connection = _system_connector(url, "natsctl-lookup")

    async def run() -> str:
        async with connection() as nc:
            msg = await nc.request(f"$SYS.REQ.ACCOUNT.{account_public_key}.CLAIMS.LOOKUP", b"", timeout=timeout)
            return msg.data.decode("ascii", "replace")

    return asyncio.run(run())


def server_config_build(
    *,
    resolver_dir: Path,
    server_name: str = "natsctl-1",
    port: int = 4222,
    http_port: int | None = None,
    resolver_interval: str | None = None,
    **extra: Any,
) -> str:
    """A nats-server config carrying only public material: the operator JWT and the system account JWT."""
    operator = operator_get()
    system = system_account_ensure()
    cfg = config_render.ServerConfig(
        operator_jwt=operator.jwt,
        system_account=system.public_key,
        system_account_jwt=system.jwt,
        resolver_dir=str(resolver_dir),
        server_name=server_name,
        port=port,
        http_port=http_port,
        resolver_interval=resolver_interval or settings.NATS_RESOLVER_INTERVAL,
        **extra,
    )
    return config_render.render(cfg)
