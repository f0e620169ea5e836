"""Ledger writers: consume the metering stream (broker_gateway.ledger_stream) and write billing's ledger.

A writer owns some partitions (accounts never move between them, so writers never contend for the same rows).
For each, it fetches what the stream holds (up to ``BATCH`` messages), reads the samples of its own accounts out
of them, ingests them in one transaction and then acknowledges the batch (the consumer acknowledges everything up
to the last message). A crash before the acknowledgement makes the stream deliver the batch again; the samples'
idempotency keys make that count nothing. In production each writer is a process of its own
(``manage.py collector --writers N`` starts and watches them; ``manage.py metering_writer`` runs one alone), so the
ledger's Python work never shares an interpreter lock with the receiving side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import logging
from collections.abc import Sequence

from django.db import close_old_connections, connection

from billing import services as ledger
from billing.counters import CounterCache, cache_warm
from billing.metering import Counters, CountersSample, Sample, SampleKind
from broker_gateway import events, nats_client
from broker_gateway.ledger_stream import (
    POLL_ORIGIN,
    STREAM,
    consumer_name,
    events_unpack,
    ledger_user_ensure,
    partition_of,
)
from operators import services as op_services

log = logging.getLogger(__name__)

BATCH = 40  # stream messages a fetch (and a transaction) takes at most: batches of up to 500 events, poll replies
FETCH_WAIT = 0.5  # seconds a round of fetches waits when no partition has anything
FETCH_BUSY = 0.01  # seconds a fetch from an empty partition waits while others have work


class IdleFilter:
    """Drops the STATZ entries of idle accounts whose counters have not moved since this writer last saw them (no
    client or leafnode connection, same counters: they would add nothing). Each node lists every account it knows in
    every poll; most are idle, and the ledger need not hear it every few seconds."""

    def __init__(self) -> None:
        self._idle: dict[tuple[str, str], Counters] = {}  # (server id, account) last seen idle

    def __call__(self, samples: list[Sample]) -> list[Sample]:
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


def batch_samples(messages: Sequence[tuple[str, bytes]], *, partition: int, partitions: int) -> list[Sample]:
    """The samples of ``partition``'s accounts in forwarded messages, in stream order (an unreadable message is
    logged and skipped: the rest of the batch goes on)."""
    out: list[Sample] = []
    for subject, data in messages:
        kind = subject.rsplit(".", 1)[-1]
        if kind in POLL_ORIGIN:  # a piece of a server's poll reply: this partition's accounts (checked again)
            out += [s for s in events.readable_samples(POLL_ORIGIN[kind], data)
                    if s.account and partition_of(s.account, partitions) == partition]
            continue
        try:
            batch = events_unpack(data)
        except (ValueError, UnicodeDecodeError):
            log.exception("metering: an unreadable batch on %s", subject)
            continue
        for event_subject, event in batch:
            out += events.readable_samples(event_subject, event)
    return out


class Writer:
    """Consumes ``partitions`` (of ``total``) until ``stop`` is set; ``ingested`` counts new samples."""

    def __init__(self, urls: Sequence[str], *, partitions: Sequence[int], total: int, on_ingested=None) -> None:
        user = ledger_user_ensure()
        self.urls, self.partitions, self.total = list(urls), list(partitions), total
        self._jwt, self._sign = user.jwt, op_services.nonce_signer_get(user_seed=user.seed)
        self._filters = {k: IdleFilter() for k in self.partitions}
        # The partitions' counter rows stay in memory between batches while their leases hold (billing.counters)
        self._cache = CounterCache(tuple(f"partition {k}/{total}" for k in self.partitions))
        self._mine = set(self.partitions)
        self.ingested = 0
        self.messages = 0
        self._on_ingested = on_ingested
        # The database work runs on one thread of its own (Django's ORM is synchronous; the thread keeps its
        # connection from batch to batch), while the event loop keeps the NATS connection served.
        self._db = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ledger-db")

    def _write(self, fetched: list[tuple[int, list[tuple[str, bytes]]]]) -> int:
        """Every partition's fetched messages in one transaction (one commit for the lot)."""
        samples = [s for k, messages in fetched
                   for s in self._filters[k](batch_samples(messages, partition=k, partitions=self.total))]
        if connection.connection is not None and connection.errors_occurred and not connection.is_usable():
            connection.close()  # a broken connection (a database restart) is replaced; a live one is kept
        try:
            with _sqlite_turn():
                return self._ingest(samples)
        except Exception:
            log.exception("metering: a batch of %d messages failed; ingesting them one by one",
                          sum(len(messages) for _, messages in fetched))
            close_old_connections()
            count = 0
            for k, messages in fetched:
                for subject, data in messages:
                    try:
                        count += self._ingest(batch_samples([(subject, data)], partition=k, partitions=self.total))
                    except Exception:  # one bad message must not stop metering; it is logged with its subject
                        log.exception("metering: could not ingest a message on %s", subject)
            return count

    def _ingest(self, samples: list[Sample]) -> int:
        """The partitions' samples with the cache of their counter rows. A sample of another partition's account
        (an event whose subject named another account than its body: never seen from nats-server) goes without
        the cache, which moves every partition's lease: a cache holds only rows no other writer writes."""
        total, mine = self.total, self._mine
        foreign = [s for s in samples if s.account and partition_of(s.account, total) not in mine]
        if not foreign:
            return ledger.samples_ingest(samples, cache=self._cache)
        log.warning("metering: %d samples of other partitions on partitions %s", len(foreign), self.partitions)
        strangers = {id(s) for s in foreign}
        return (ledger.samples_ingest([s for s in samples if id(s) not in strangers], cache=self._cache)
                + ledger.samples_ingest(foreign))

    def _warm(self) -> None:
        """The partitions' counter rows of recently active accounts, before the first batch (a failure is logged:
        the batches then read the rows they need)."""
        total, mine = self.total, self._mine
        try:
            with _sqlite_turn():
                loaded = cache_warm(self._cache, lambda account: partition_of(account, total) in mine)
            log.info("ledger writer: %d counter rows cached for partitions %s", loaded, self.partitions)
        except Exception:
            log.exception("ledger writer: could not load the counter rows ahead")

    @staticmethod
    async def _fetch(sub, wait: float, stop: asyncio.Event) -> list:
        import nats.errors

        try:
            return await sub.fetch(BATCH, timeout=wait)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except Exception as exc:  # a reconnect under way: the next round asks again
            log.warning("ledger writer: fetch failed (%s)", exc)
            await _wait(stop, 0.2)
            return []

    async def _acknowledge(self, write, fetched) -> None:
        """After the batch's transaction committed: every message of each partition up to its last
        (AckPolicy.ALL)."""
        new = await write
        self.ingested += new
        self.messages += sum(len(msgs) for msgs in fetched)
        if self._on_ingested is not None:
            self._on_ingested(new)
        for msgs in fetched:
            try:
                await msgs[-1].ack_sync(timeout=10)
            except Exception as exc:
                # The node holding the consumer went away (or a reconnect is under way). The batch is committed:
                # its messages come again after the ack wait, count nothing the second time (billing.services:
                # how each kind of sample counts once), and a later ack covers them (AckPolicy.ALL). Not a reason
                # to stop this writer.
                log.warning("ledger writer: could not acknowledge %d messages on %s (%s); they come again",
                            len(msgs), msgs[-1].subject, exc)

    async def run(self, stop: asyncio.Event, ready=None) -> None:
        nc = None
        while nc is None and not stop.is_set():
            try:
                nc = await nats_client.connect(self.urls, user_jwt=self._jwt, sign_nonce=self._sign,
                                               name="natsctl-ledger-writer", allow_reconnect=True,
                                               max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                                               pending_size=64 * 1024 * 1024)
            except Exception as exc:
                log.warning("ledger writer: cannot connect yet (%s); retrying", exc)
                await _wait(stop, 1.0)
        if nc is None:
            return
        try:
            js = nc.jetstream(timeout=5)
            loop = asyncio.get_running_loop()
            subs = {}
            while not subs and not stop.is_set():
                try:
                    subs = {k: await js.pull_subscribe_bind(consumer_name(k), STREAM) for k in self.partitions}
                except Exception as exc:  # the collector creates the stream: not there yet
                    log.warning("ledger writer: the stream is not ready (%s); retrying", exc)
                    await _wait(stop, 1.0)
            await loop.run_in_executor(self._db, self._warm)
            if ready is not None:
                ready.set()
            writing = None  # (the write in progress on the database thread, its messages by partition)
            busy = False
            while not stop.is_set():
                # A fetch from an empty partition waits for its expiry: short while the others have work, so that
                # one quiet partition does not hold back the rest; longer once all were empty (no busy loop).
                wait = FETCH_BUSY if busy else FETCH_WAIT / len(subs)
                fetched = []
                for k, sub in subs.items():  # (while the previous round's batch is being written)
                    msgs = await self._fetch(sub, wait, stop)
                    if msgs:
                        fetched.append((k, msgs))
                if writing is not None:
                    await self._acknowledge(*writing)
                    writing = None
                busy = bool(fetched)
                if fetched:  # every partition's messages in one transaction
                    writing = (loop.run_in_executor(self._db, self._write,
                                                    [(k, [(m.subject, m.data) for m in msgs]) for k, msgs in fetched]),
                               [msgs for _, msgs in fetched])
            if writing is not None:
                await self._acknowledge(*writing)
        finally:
            await nc.close()
            await asyncio.get_running_loop().run_in_executor(self._db, _connection_close)
            self._db.shutdown(wait=True)


@contextlib.contextmanager
def _sqlite_turn():
    """On SQLite, writers take turns on a file lock beside the database before they begin: SQLite has one write
    lock, and a writer that finds it taken would sleep in SQLite's busy handler (steps of up to 100 ms) rather than
    start the moment the other commits. PostgreSQL writers run side by side (their partitions share no rows)."""
    if connection.vendor != "sqlite":
        yield
        return
    path = f"{connection.settings_dict['NAME']}.ledger-lock"
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _connection_close() -> None:
    connection.close()  # (looked up on the calling thread: each thread has its own connection)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass
