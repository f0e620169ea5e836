"""Connecting to NATS with a user JWT and a nonce signer, without the third-party ``nkeys`` package."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import nats
from nats.aio.client import Client

from operators import creds, nkeys


def creds_callbacks(creds_text: str) -> tuple[str, Callable[[str], bytes]]:
    """The user JWT and a nonce signer read from `.creds` text (what a tenant's client does)."""
    parsed = creds.parse_creds(creds_text)
    return parsed.jwt, nkeys.from_seed(parsed.seed, nkeys.KeyType.USER).sign_nonce


async def connect(
    servers: str | list[str], *, user_jwt: str, sign_nonce: Callable[[str], bytes], **options: Any
) -> Client:
    """Connect with JWT auth. nats-py sends ``sig``/``jwt`` only when it thinks auth is configured, which
    it infers from creds files or nkeys seeds; with callbacks alone we have to say so ourselves."""
    nc = Client()
    nc._auth_configured = True  # see docstring: callbacks alone do not set it
    options.setdefault("allow_reconnect", False)
    options.setdefault("connect_timeout", 2)
    options.setdefault("max_reconnect_attempts", 0)
    try:
        await nc.connect(
            servers=servers if isinstance(servers, list) else [servers],
            user_jwt_cb=lambda: user_jwt.encode("ascii"),
            signature_cb=sign_nonce,
            **options,
        )
    except BaseException:
        # nats-py leaves the socket of a refused or failed first connect open; close it.
        with contextlib.suppress(Exception):
            await nc.close()
        raise
    return nc


async def connect_creds(servers: str | list[str], creds_text: str, **options: Any) -> Client:
    jwt, sign = creds_callbacks(creds_text)
    return await connect(servers, user_jwt=jwt, sign_nonce=sign, **options)


__all__ = ["connect", "connect_creds", "creds_callbacks", "nats"]
