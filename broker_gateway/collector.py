"""The metering collector: system events and STATZ polls from every node, into billing's ledger.

It connects as a system-account user of its own that may only subscribe to the account events it meters and
ask for STATZ, and forwards every message, unparsed, into the metering stream (broker_gateway.ledger_stream); the
ledger writers (broker_gateway.ledger_writer, processes of their own) read them into billing's samples with
broker_gateway.events (its docstring says what each message holds, as nats-server's server/events.go sends it)
and write the ledger. A slow database never stalls the connection, and a writer or collector that stops loses
nothing the stream acknowledged (run a second collector beside the first for what is in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import urllib.request
from collections.abc import Sequence

from django.conf import settings

from accounts_service.models import NatsUser
from accounts_service.services import service_user_ensure, system_account_ensure
from billing import services as ledger
from broker_gateway import events, nats_client
from broker_gateway.events import EVENT_SUBJECTS, JSZ_SUBJECT, STATZ_SUBJECT
from broker_gateway.ledger_stream import (
    STREAM,
    EventBatcher,
    Forwarder,
    consumer_name,
    ledger_user_ensure,
    partitions_count,
    poll_pieces,
    stream_ensure,
)
from broker_gateway.usage_responder import (  # noqa: F401 (the collector's names since its first release)
    USAGE_QUEUE,
    USAGE_RESPONDER,
    UsageResponder,
    UsageResponderProcesses,
    usage_answer,
    usage_responder_user_ensure,
)
from broker_gateway.writer_pool import WriterPool
from operators import services as op_services

log = logging.getLogger(__name__)

COLLECTOR_USER = "natsctl-collector"
COLLECTOR_SUB = ["$SYS.ACCOUNT.*.CONNECT", "$SYS.ACCOUNT.*.DISCONNECT", "$SYS.ACCOUNT.*.SERVER.CONNS", "_INBOX.>"]
COLLECTOR_PUB = ["$SYS.REQ.ACCOUNT.PING.STATZ", "$SYS.REQ.SERVER.PING.JSZ"]


def collector_user_ensure() -> NatsUser:
    """The system-account user the collector connects as (an older release's user gets today's permissions)."""
    return service_user_ensure(account=system_account_ensure(), name=COLLECTOR_USER, pub_allow=COLLECTOR_PUB,
                               sub_allow=COLLECTOR_SUB)


# ------------------------------------------------------------------------------------------------
# Ingest (sync: on the writer thread, or directly in tests and replays); events.py reads the messages
# ------------------------------------------------------------------------------------------------


def event_ingest(subject: str, data: bytes) -> bool:
    """One system event; False if it was a duplicate or not something we meter."""
    return ledger.samples_ingest(events.event_samples(subject, data)) > 0


def statz_ingest(data: bytes) -> int:
    """One STATZ reply; returns how many of its samples were new."""
    return ledger.samples_ingest(events.statz_samples(data))


def jsz_ingest(data: bytes) -> int:
    return ledger.samples_ingest(events.jsz_samples(data))


def accstatz_ingest(data: bytes, *, server_name: str) -> int:
    return ledger.samples_ingest(events.accstatz_samples(data, server_name=server_name))


def lame_duck_sample(node) -> int:
    """The supervisor calls this on every tick while ``node`` winds down in lame duck mode: its clients' traffic
    up to the last sample before it exits reaches the ledger."""
    try:
        with _HTTP.open(f"{node.monitoring_url}/accstatz?unused=1", timeout=0.5) as response:
            data = response.read()
    except OSError:  # gone already, or not listening yet
        return 0
    try:
        return accstatz_ingest(data, server_name=node.name)
    except Exception:
        log.exception("metering: could not ingest the lame duck sample of %s", node.name)
        return 0


_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # monitoring ports: never through a proxy



# ------------------------------------------------------------------------------------------------
# The long-running collector
# ------------------------------------------------------------------------------------------------


class Collector:
    """The receiving side: subscribes to the events and polls STATZ every ``poll_seconds``, and forwards every
    message into the metering stream (broker_gateway.ledger_stream), where the ledger writers consume it. It starts
    ``writers`` writers (processes by default; ``writer_mode="thread"`` keeps them in this process, for tests;
    ``0``: they run elsewhere, ``manage.py metering_writer``) and restarts a writer process that dies."""

    def __init__(self, urls: Sequence[str], *, poll_seconds: float = 5.0, statz_timeout: float = 1.0,
                 writers: int | None = None, writer_mode: str = "process"):
        user = collector_user_ensure()
        self.urls, self.poll_seconds, self.statz_timeout = list(urls), poll_seconds, statz_timeout
        self._jwt, self._sign = user.jwt, op_services.nonce_signer_get(user_seed=user.seed)
        publisher = ledger_user_ensure()
        self._ledger_jwt, self._ledger_sign = publisher.jwt, op_services.nonce_signer_get(user_seed=publisher.seed)
        # ngs.usage: processes of their own in production, answering on their connection's thread; in this
        # process (threads) beside thread writers (tests: they must see the test database)
        self._usage = UsageResponder(self.urls) if writer_mode == "thread" else None
        self._usage_procs = (UsageResponderProcesses(self.urls, settings.USAGE_RESPONDERS)
                             if writer_mode != "thread" else None)
        self.partitions = partitions_count()
        self.writers = settings.METERING_WRITERS if writers is None else writers
        self.writer_mode = writer_mode
        self._pool = WriterPool(self.urls, writers=self.writers, partitions=self.partitions, mode=writer_mode)
        self.ready = threading.Event()  # subscribed to the events, the stream there, answering ngs.usage
        self.forwarded = 0
        self._forwarder: Forwarder | None = None
        self._batcher: EventBatcher | None = None
        self._js = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def events(self) -> int:
        """Events received and handed to the stream so far."""
        return self._batcher.events if self._batcher is not None else 0

    @property
    def ingested(self) -> int:
        """New samples the writers this collector runs have written (0 when they run elsewhere)."""
        return self._pool.ingested

    def drain(self, timeout: float = 120.0) -> None:
        """Wait (from another thread) until everything forwarded so far is in the stream and written."""
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._drained(timeout), self._loop).result(timeout + 5)

    async def _drained(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._batcher is not None:
            await self._batcher.flush()
        if self._forwarder is not None:
            await self._forwarder.settle(timeout)
        while loop.time() < deadline:
            infos = [await self._js.consumer_info(STREAM, consumer_name(k)) for k in range(self.partitions)]
            if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError("the ledger writers did not catch up")

    async def poll(self, nc) -> int:
        """Ask every server for every account's STATZ (with unused accounts) and JetStream bytes (JSZ), and
        forward the replies. Returns how many STATZ replies came."""
        replies: dict[str, list[bytes]] = {STATZ_SUBJECT: [], JSZ_SUBJECT: []}
        subs = []
        for subject, body in ((STATZ_SUBJECT, {"include_unused": True}), (JSZ_SUBJECT, {"accounts": True})):
            inbox = nc.new_inbox()

            async def collect(msg, into=replies[subject]) -> None:
                into.append(msg.data)

            subs.append(await nc.subscribe(inbox, cb=collect))
            await nc.publish(subject, json.dumps(body).encode(), reply=inbox)
        await asyncio.sleep(self.statz_timeout)
        for sub in subs:
            await sub.unsubscribe()
        for subject, datas in replies.items():
            for data in datas:
                try:
                    pieces = poll_pieces(subject, data, self.partitions)
                except ValueError:  # (orjson's error): one server's reply lost, not the poll
                    log.warning("metering: an unreadable reply to %s", subject)
                    continue
                for piece_subject, piece in pieces:
                    await self._forwarder.publish(piece_subject, piece)
                self.forwarded += 1
        return len(replies[STATZ_SUBJECT])

    async def _connect(self, stop: asyncio.Event, **auth):
        while not stop.is_set():
            try:
                return await nats_client.connect(self.urls, allow_reconnect=True, max_reconnect_attempts=-1,
                                                 reconnect_time_wait=0.5, error_cb=_connection_trouble,
                                                 pending_size=64 * 1024 * 1024, **auth)
            except Exception as exc:  # nodes still starting: try again, the fleet supervisor brings them up
                log.warning("collector: cannot connect yet (%s); retrying", exc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                except TimeoutError:
                    pass
        return None

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        nc = await self._connect(stop, user_jwt=self._jwt, sign_nonce=self._sign, name="natsctl-collector")
        out = nc and await self._connect(stop, user_jwt=self._ledger_jwt, sign_nonce=self._ledger_sign,
                                         name="natsctl-collector-ledger")
        if nc is None or out is None:
            for c in (nc, out):
                if c is not None:
                    await c.close()
            return
        usage_started = False
        try:
            self._js = out.jetstream(timeout=5)
            while not stop.is_set():  # a cluster just started elects its JetStream leader first: until then, again
                try:
                    await stream_ensure(self._js, partitions=self.partitions,
                                        replicas=settings.METERING_STREAM_REPLICAS)
                    break
                except Exception as exc:
                    log.warning("collector: the metering stream is not ready yet (%s); retrying", exc)
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=0.5)
                    except TimeoutError:
                        pass
            self._forwarder = Forwarder(out)
            await self._forwarder.start()
            self._pool.start()
            self._batcher = EventBatcher(self._forwarder.publish, partitions=self.partitions)
            add = self._batcher.add

            async def forwarded(msg) -> None:
                await add(msg.subject, msg.data)

            for subject in EVENT_SUBJECTS:
                await nc.subscribe(subject, cb=forwarded, pending_msgs_limit=1_000_000,
                                   pending_bytes_limit=1024 * 1024 * 1024)
            if self._usage is not None:
                await self._usage.start(error_cb=_connection_trouble)
            else:
                self._usage_procs.start()
            usage_started = True
            await nc.flush()  # the servers hold the subscriptions
            loop = asyncio.get_running_loop()  # (waits off the loop: events keep arriving meanwhile)
            await loop.run_in_executor(None, self._pool.wait_ready, 60)
            if self._usage_procs is not None:
                await loop.run_in_executor(None, self._usage_procs.wait_ready, 60)
            self.ready.set()
            while not stop.is_set():
                if nc.is_connected:
                    await self.poll(nc)
                self._pool.watch()
                if self._usage_procs is not None:
                    self._usage_procs.watch()
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
                except TimeoutError:
                    pass
        finally:
            if nc.is_connected and self._forwarder is not None:  # a last poll: the nodes' counts up to now
                try:
                    await self.poll(nc)
                except Exception as exc:
                    log.warning("collector: final poll failed: %s", exc)
            if usage_started and self._usage is not None:
                await self._usage.stop()
            elif usage_started:
                self._usage_procs.stop()
            await nc.drain() if nc.is_connected else await nc.close()
            if self._batcher is not None:
                await self._batcher.flush()
            if self._forwarder is not None:
                if not await self._forwarder.settle(10.0):
                    log.warning("collector: %d messages not acknowledged by the stream at exit (a collector running "
                                "beside this one forwards them too)", self._forwarder.pending)
                await self._forwarder.stop()
            if self.writer_mode == "thread" and self.writers and self._js is not None:
                with contextlib.suppress(Exception):
                    await self._drained(30.0)  # in-process writers finish what this collector forwarded
            self._pool.stop()
            await out.drain() if out.is_connected else await out.close()


async def _connection_trouble(exc: Exception) -> None:
    """A node went away or is not up yet: one line, not nats-py's traceback; the client reconnects by itself."""
    log.warning("collector connection: %s", exc)
