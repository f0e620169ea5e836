"""Connecting to NATS with a user JWT and a nonce signer, without the third-party ``nkeys`` package."""

from __future__ import annotations

import asyncio
import contextlib
import json
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


async def request_all(nc: Client, subject: str, payload: bytes, *, timeout: float, expect: int | None = None,
                      settle: float = 0.25) -> list[dict[str, Any]]:
    """Publish a request and gather every reply (each server answers a claims request).

    Returns when ``expect`` replies arrived, or ``timeout`` passed; without ``expect``, ``settle``
    seconds after the last reply.
    """
    inbox = nc.new_inbox()
    replies: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def on_reply(msg) -> None:
        try:
            replies.append(json.loads(msg.data) if msg.data else {})
        except ValueError:
            replies.append({"raw": msg.data.decode("utf-8", "replace")})
        got.set()

    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        await nc.publish(subject, payload, reply=inbox)
        await nc.flush()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if expect is not None and len(replies) >= expect:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            wait = remaining if (expect is not None or not replies) else min(remaining, settle)
            got.clear()
            try:
                await asyncio.wait_for(got.wait(), wait)
            except TimeoutError:
                if replies and expect is None:
                    break
    finally:
        await sub.unsubscribe()
    return replies


__all__ = ["connect", "connect_creds", "creds_callbacks", "nats", "request_all"]
