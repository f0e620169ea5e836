"""The metering collector: system events and STATZ polls from every node, into billing's ledger.

It connects as a system-account user of its own that may only subscribe to the account events it meters and
ask for STATZ. Messages are queued by the NATS client's callbacks and written by one thread, so a slow
database never stalls the connection; broker_gateway.events reads them into billing's samples (its docstring
says what each message holds, as nats-server's server/events.go sends it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import urllib.request
from collections.abc import Sequence

from django.db import close_old_connections

from accounts_service.models import NatsUser
from accounts_service.services import service_user_ensure, system_account_ensure
from billing import services as ledger
from billing.metering import Counters, CountersSample, Sample, SampleKind
from broker_gateway import events, nats_client
from broker_gateway.events import EVENT_SUBJECTS, JSZ_SUBJECT, STATZ_SUBJECT
from broker_gateway.usage_responder import (  # noqa: F401 (the collector's names since its first release)
    USAGE_QUEUE,
    USAGE_RESPONDER,
    UsageResponder,
    usage_answer,
    usage_responder_user_ensure,
)
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


BATCH_MAX = 2000  # messages a writer transaction takes at most


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
    """Subscribes to the events, polls STATZ every ``poll_seconds`` and writes on its own thread."""

    def __init__(self, urls: Sequence[str], *, poll_seconds: float = 5.0, statz_timeout: float = 1.0):
        user = collector_user_ensure()
        self.urls, self.poll_seconds, self.statz_timeout = list(urls), poll_seconds, statz_timeout
        self._jwt, self._sign = user.jwt, op_services.nonce_signer_get(user_seed=user.seed)
        self._usage = UsageResponder(self.urls)
        self._queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._writer = threading.Thread(target=self._write_loop, name="metering-writer", daemon=True)
        self.ingested = 0
        self._idle: dict[tuple[str, str], Counters] = {}  # (server id, account) last seen idle

    def _write_loop(self) -> None:
        """Everything queued so far (up to ``BATCH_MAX`` messages) goes to the ledger in one transaction; if that
        batch fails, its messages are tried one by one, so a bad message loses only itself (logged)."""
        stop = False
        while not stop:
            items = [self._queue.get()]
            while len(items) < BATCH_MAX:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            messages = [item for item in items if item is not None]
            stop = len(messages) < len(items)
            try:
                close_old_connections()
                self.ingested += ledger.samples_ingest(self._changed(
                    [sample for subject, data in messages for sample in events.readable_samples(subject, data)]))
            except Exception:
                log.exception("metering: a batch of %d messages failed; ingesting them one by one", len(messages))
                for subject, data in messages:
                    try:
                        self.ingested += ledger.samples_ingest(events.readable_samples(subject, data))
                    except Exception:  # one bad message must not stop metering; it is logged with its subject
                        log.exception("metering: could not ingest a message on %s", subject)
            finally:
                for _ in items:
                    self._queue.task_done()

    def _changed(self, samples: list[Sample]) -> list[Sample]:
        """Drop the STATZ entries of idle accounts whose counters have not moved since this collector last saw
        them (no client or leafnode connection, same counters: they would add nothing). Each node lists every
        account it knows in every poll; most are idle, and the ledger need not hear it every few seconds."""
        out = []
        for sample in samples:
            if isinstance(sample, CountersSample) and sample.kind == SampleKind.COUNTERS_POLL:
                key = (sample.server_id, sample.account)
                idle = sample.conns == 0 and sample.leafnodes == 0  # a leafnode keeps the account's count fresh too
                if idle and self._idle.get(key) == sample.counters:
                    continue
                if idle:
                    self._idle[key] = sample.counters
                else:
                    self._idle.pop(key, None)
            out.append(sample)
        return out

    def drain(self) -> None:
        """Wait until every queued message is written."""
        self._queue.join()

    async def poll(self, nc) -> int:
        """Ask every server for every account's STATZ (with unused accounts) and JetStream bytes (JSZ), and
        queue the replies. Returns how many STATZ replies came."""
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
                self._queue.put((subject, data))
        return len(replies[STATZ_SUBJECT])

    async def run(self, stop: asyncio.Event) -> None:
        self._writer.start()
        nc = None
        while nc is None and not stop.is_set():
            try:
                nc = await nats_client.connect(self.urls, user_jwt=self._jwt, sign_nonce=self._sign,
                                               name="natsctl-collector", allow_reconnect=True,
                                               max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                               error_cb=_connection_trouble)
            except Exception as exc:  # nodes still starting: try again, the fleet supervisor brings them up
                log.warning("collector: cannot connect yet (%s); retrying", exc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
                except TimeoutError:
                    pass
        if nc is None:
            self._queue.put(None)
            self._writer.join(timeout=30)
            return
        usage_started = False
        try:
            async def queued(msg) -> None:
                self._queue.put((msg.subject, msg.data))

            for subject in EVENT_SUBJECTS:
                await nc.subscribe(subject, cb=queued)
            await self._usage.start(error_cb=_connection_trouble)
            usage_started = True
            while not stop.is_set():
                if nc.is_connected:
                    await self.poll(nc)
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.poll_seconds)
                except TimeoutError:
                    pass
        finally:
            if nc.is_connected:  # a last poll: what the nodes counted up to now reaches the ledger
                try:
                    await self.poll(nc)
                except Exception as exc:
                    log.warning("collector: final poll failed: %s", exc)
            if usage_started:
                await self._usage.stop()
            await nc.drain() if nc.is_connected else await nc.close()
            self._queue.put(None)
            self._writer.join(timeout=30)


async def _connection_trouble(exc: Exception) -> None:
    """A node went away or is not up yet: one line, not nats-py's traceback; the client reconnects by itself."""
    log.warning("collector connection: %s", exc)
