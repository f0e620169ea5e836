"""One long-lived system-account connection per process, and pipelined claims requests over it.

Every server of the cluster answers a claims request (UPDATE, DELETE, LIST, LOOKUP), so one request
gathers one reply per node. Thousands of requests are kept in flight on one connection with one
wildcard reply subscription, the way nats-py's own request() multiplexes replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from broker_gateway import nats_client

log = logging.getLogger(__name__)

UPDATE = "$SYS.REQ.CLAIMS.UPDATE"
DELETE = "$SYS.REQ.CLAIMS.DELETE"
LIST = "$SYS.REQ.CLAIMS.LIST"
LOOKUP = "$SYS.REQ.ACCOUNT.{}.CLAIMS.LOOKUP"
ROUTEZ = "$SYS.REQ.SERVER.{}.ROUTEZ"  # answered by that one server only
GATEWAYZ = "$SYS.REQ.SERVER.{}.GATEWAYZ"  # likewise


class GatewayUnavailable(Exception):
    """No connection to any broker node (transient: the caller may retry)."""


@dataclass
class _Pending:
    expect: int
    on_done: Callable[[bool], None]  # called once: with False when ``expect`` replies came, True on timeout
    replies: list[bytes] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


def parse_reply(data: bytes) -> dict[str, Any]:
    """A claims reply as a dict (``{"server": ..., "data"|"error": ...}``); a raw payload under ``raw``."""
    if not data:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {"raw": data.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"raw": value}


class Gateway:
    """A system-account connection on a private event loop thread, usable from synchronous code."""

    def __init__(self, urls: Sequence[str], *, user_jwt: str, sign_nonce: Callable[[str], bytes],
                 name: str = "natsctl-gateway", connect_timeout: float = 2.0) -> None:
        self.urls = list(urls)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self._pending: dict[str, _Pending] = {}
        self._counter = 0
        self._broken = False
        try:
            self._nc, self._prefix = self._call(self._connect(user_jwt, sign_nonce, name, connect_timeout),
                                                connect_timeout * (len(self.urls) + 1) + 2)
        except BaseException as exc:
            self._stop_loop()
            reason = exc or type(exc).__name__
            raise GatewayUnavailable(f"could not connect to {', '.join(self.urls)}: {reason}") from exc

    # -- plumbing ---------------------------------------------------------------------------------

    async def _connect(self, user_jwt, sign_nonce, name, connect_timeout):
        nc = await nats_client.connect(
            self.urls, user_jwt=user_jwt, sign_nonce=sign_nonce, name=name, connect_timeout=connect_timeout,
            allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.25,
            pending_size=64 * 1024 * 1024,
            # A frozen server keeps its TCP connection open: find out within seconds, not nats-py's 2 minutes.
            ping_interval=2, max_outstanding_pings=2,
            error_cb=self._on_error,
        )
        prefix = nc.new_inbox()
        await nc.subscribe(prefix + ".*", cb=self._on_reply, pending_msgs_limit=1_000_000,
                           pending_bytes_limit=512 * 1024 * 1024)
        return nc, prefix + "."

    async def _on_error(self, exc: Exception) -> None:
        # nats-py's default prints a traceback for every refused reconnect; a node being down is expected.
        log.warning("fleet connection: %s", exc or type(exc).__name__)

    async def _on_reply(self, msg) -> None:
        pending = self._pending.get(msg.subject[len(self._prefix):])
        if pending is not None:
            pending.replies.append(msg.data)
            if len(pending.replies) >= pending.expect:
                pending.on_done(False)

    def _call(self, coro, timeout: float):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _stop_loop(self) -> None:
        # Cancel what is still pending (an abandoned connect, nats-py's own loops) before the loop stops.
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._cancel_tasks(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    @property
    def is_usable(self) -> bool:
        return not self._broken and self._loop.is_running() and not self._nc.is_closed

    @property
    def is_connected(self) -> bool:
        return self.is_usable and self._nc.is_connected

    def knows_any(self, urls: Iterable[str]) -> bool:
        """Some of ``urls`` is in this connection's server pool (the URLs it was opened with, and those the servers
        it reached announced: the client URLs of their own cluster only, never another region's)."""
        pool = {(u.hostname, u.port) for u in self._nc.servers}
        return any((u.hostname, u.port) in pool for u in map(urlparse, urls))

    def close(self) -> None:
        if self._loop.is_running():
            try:
                self._call(self._nc.close(), 5)
            except Exception:  # closing is best effort; the loop goes anyway
                log.debug("gateway close failed", exc_info=True)
            self._stop_loop()

    # -- requests ---------------------------------------------------------------------------------

    async def _request_many(self, items: Iterable[tuple[str, bytes]], *, expect: int, timeout: float,
                            concurrency: int) -> list[list[bytes]]:
        """Send every request with at most ``concurrency`` in flight; each gathers ``expect`` replies or
        stops waiting at ``timeout`` seconds after it was sent."""
        nc = self._nc
        if not nc.is_connected:
            raise GatewayUnavailable("not connected to any broker node")
        loop = asyncio.get_running_loop()
        window = asyncio.Semaphore(concurrency)
        results: list[list[bytes]] = []
        # A node that stopped answering (frozen, partitioned) costs one timeout, not one per request:
        # once a request times out short of ``expect``, later requests of the batch wait for as many
        # replies as it got. What the silent node missed, the reconciler pushes when it is back.
        expecting = [max(expect, 1)]
        # Completion is driven by the reply callback and one timer per request, not a task per request:
        # at thousands of requests a second, two tasks and a wait_for each were a third of this thread's work.
        state = {"outstanding": 0, "sent": False}
        finished = loop.create_future()
        tokens: list[str] = []

        def finish(index: int, token: str, timed_out: bool) -> None:
            pending = self._pending.pop(token, None)
            if pending is None:
                return
            if timed_out:
                if pending.replies:
                    expecting[0] = min(expecting[0], len(pending.replies))
            elif pending.timer is not None:
                pending.timer.cancel()
            results[index] = pending.replies
            window.release()
            state["outstanding"] -= 1
            if state["sent"] and not state["outstanding"] and not finished.done():
                finished.set_result(None)

        try:
            for index, (subject, payload) in enumerate(items):
                await window.acquire()
                self._counter += 1
                token = str(self._counter)
                pending = _Pending(expect=expecting[0], on_done=functools.partial(finish, index, token))
                pending.timer = loop.call_later(timeout, finish, index, token, True)
                self._pending[token] = pending
                tokens.append(token)
                results.append([])
                state["outstanding"] += 1
                await nc.publish(subject, payload, reply=self._prefix + token)
            state["sent"] = True
            # No flush() here: nats-py's flusher writes every publish already, and a PONG arriving after a
            # flush timed out stops nats-py's read loop (InvalidStateError in _process_pong) for good.
            if state["outstanding"]:
                await finished
            if not any(results):
                # Not one reply to any request: the server we are connected to takes our messages but relays
                # nothing (frozen, cut off). Every claims request is answered by every live node, even a
                # LOOKUP of an unknown account (an empty reply), so this connection is of no use.
                self._broken = True
                raise GatewayUnavailable(f"no node answered any of {len(results)} requests")
        finally:
            for token in tokens:  # on an error: forget what is still waiting
                pending = self._pending.pop(token, None)
                if pending is not None and pending.timer is not None:
                    pending.timer.cancel()
        return results

    def _start(self, items: Sequence[tuple[str, bytes]], *, expect: int, timeout: float,
               concurrency: int) -> Callable[[], list[list[bytes]]]:
        """Put the requests on the wire now; the returned callable waits for their replies."""
        if not items:
            return list
        future = asyncio.run_coroutine_threadsafe(
            self._request_many(items, expect=expect, timeout=timeout, concurrency=concurrency), self._loop)
        budget = timeout * (len(items) / max(concurrency, 1) + 2) + 30

        def result() -> list[list[bytes]]:
            try:
                return future.result(budget)
            except (nats_client.nats.errors.Error, OSError, TimeoutError) as exc:
                if isinstance(exc, nats_client.nats.errors.FlushTimeoutError | TimeoutError):
                    # The server we are connected to took the requests but does not answer (frozen): give
                    # this connection up so the next caller opens one to a node that is healthy now.
                    self._broken = True
                raise GatewayUnavailable(f"request failed: {exc or type(exc).__name__}") from exc

        return result

    def request_many(self, items: Sequence[tuple[str, bytes]], *, expect: int, timeout: float,
                     concurrency: int = 256) -> list[list[bytes]]:
        """Replies per request, in order. Raises GatewayUnavailable when no node is connected."""
        return self._start(items, expect=expect, timeout=timeout, concurrency=concurrency)()

    def push_start(self, jwts: Sequence[str], *, expect: int, timeout: float,
                   concurrency: int = 256) -> Callable[[], list[list[bytes]]]:
        """Start pushing and return at once; calling the result waits for the raw replies. The caller can do
        its database work for the previous batch while this one is on the wire."""
        return self._start([(UPDATE, j.encode("ascii")) for j in jwts], expect=expect, timeout=timeout,
                           concurrency=concurrency)

    def push(self, jwts: Sequence[str], *, expect: int, timeout: float, concurrency: int = 256) -> list[list[dict]]:
        replies = self.push_start(jwts, expect=expect, timeout=timeout, concurrency=concurrency)()
        return [[parse_reply(r) for r in rs] for rs in replies]

    def lookup(self, public_keys: Sequence[str], *, expect: int, timeout: float,
               concurrency: int = 256) -> list[list[str]]:
        """What each node holds for each account (one JWT or '' per replying node; replies are anonymous)."""
        replies = self.request_many([(LOOKUP.format(p), b"") for p in public_keys], expect=expect,
                                    timeout=timeout, concurrency=concurrency)
        return [[r.decode("ascii", "replace") for r in rs] for rs in replies]

    def list_claims(self, *, expect: int, timeout: float) -> dict[str, set[str]]:
        """Account public keys each node holds, by server name."""
        (replies,) = self.request_many([(LIST, b"")], expect=expect, timeout=timeout)
        held: dict[str, set[str]] = {}
        for raw in replies:
            reply = parse_reply(raw)
            name = (reply.get("server") or {}).get("name")
            if name and isinstance(reply.get("data"), list):
                held[name] = set(reply["data"])
        return held

    def cluster_size(self, *, timeout: float) -> int | None:
        """How many servers answer a claims request sent here: the connected server and the servers it has routes
        to (its own ROUTEZ; a pooled route counts once), and in a supercluster every other region's servers: for
        each region the connected server has an outbound gateway to, the server at its other end (GATEWAYZ names
        it by id) and the servers that one routes to (its ROUTEZ; system requests cross gateways). None if the
        connected server did not say in time; a region whose server did not answer counts as that one server."""
        server_id = self._nc._server_info.get("server_id", "")
        timeout = min(timeout, 2.0)  # servers' answers about themselves: milliseconds

        async def routes_of(sid: str) -> int:
            data = parse_reply((await self._nc.request(ROUTEZ.format(sid), b"", timeout=timeout)).data).get("data")
            return len({r.get("remote_id") for r in (data or {}).get("routes") or []})

        async def ask() -> int:
            total = 1 + await routes_of(server_id)
            try:
                raw = (await self._nc.request(GATEWAYZ.format(server_id), b"", timeout=timeout)).data
            except Exception:  # no gateway (a lone cluster answers with an error or not at all), or an old server
                return total
            outbound = (parse_reply(raw).get("data") or {}).get("outbound_gateways") or {}
            remote = [(gw.get("connection") or {}).get("name") for gw in outbound.values()]
            for sid in filter(None, remote):
                try:
                    total += 1 + await routes_of(sid)
                except Exception:  # that region's server did not answer: it is still one server
                    total += 1
            return total

        try:
            return self._call(ask(), 4 * timeout + 1)
        except Exception:  # an old server or a lost reply: the caller falls back to waiting its timeout
            log.debug("routez failed", exc_info=True)
            return None

    def delete(self, claim_jwt: str, *, expect: int, timeout: float) -> list[dict]:
        (replies,) = self.request_many([(DELETE, claim_jwt.encode("ascii"))], expect=expect, timeout=timeout)
        return [parse_reply(r) for r in replies]


# What nats-server answers to an accepted update: {"server":{"name":"<name>",...},"data":{...,"code":200,...}}.
_UPDATED = re.compile(rb'\{"server":\{"name":"([A-Za-z0-9_-]{1,64})"')


def update_acknowledged_by(raw: bytes) -> str | None:
    """The server name of an accepted-update reply, read without parsing the JSON (a full sync reads one
    reply per account and node); None when it is anything else (then parse it with parse_reply)."""
    if b'"code":200' not in raw or b'"error"' in raw:
        return None
    match = _UPDATED.match(raw)
    return match.group(1).decode("ascii") if match else None


def reply_ok(reply: dict[str, Any]) -> bool:
    data = reply.get("data")
    return isinstance(data, dict) and data.get("code") == 200


def reply_server(reply: dict[str, Any]) -> str:
    return (reply.get("server") or {}).get("name", "")
