"""The durable path from the collector to the ledger: a JetStream stream in the platform's ``metering`` account.

The collector (the receiving side) forwards every system event and poll reply it gets, as the bytes nats-server
sent, into the stream ``METERING``; writer processes (broker_gateway.ledger_writer) consume it and write the ledger.
Each message carries ``Nats-Msg-Id`` (a digest of its bytes), so a re-publish after a lost acknowledgement, or the
same event forwarded by a second collector running beside the first, is stored once (the stream's duplicate
window). Writers acknowledge only after their transaction committed; a writer that crashes leaves its messages
unacknowledged and they come again, and the ledger's idempotency keys make the second delivery count nothing.

Subjects (the stream holds ``natsctl.metering.>``):

- ``natsctl.metering.<k>.events``: a batch of events of accounts in partition ``k``, each with the subject it
  came on (the account is the event subject's third token, so the collector never parses an event; batches of a
  few hundred make one stream write, one acknowledgement and one delivery of many events);
- ``natsctl.metering.<k>.statz`` / ``.jsz``: a server's poll reply cut to partition ``k``'s accounts (the reply
  of a node that knows 100,000 accounts is megabytes, past a message's maximum payload: the collector cuts it by
  partition, and into pieces of at most ``POLL_PIECE_BYTES``, each with the reply's server and time).

Each partition has a durable pull consumer (``ledger-<k>``) of ``natsctl.metering.<k>.>``. Accounts never move
between partitions, so two writers never touch the same ledger rows. https://docs.nats.io/nats-concepts/jetstream/streams
https://docs.nats.io/using-nats/developer/develop_jetstream/model_deep_dive#message-deduplication
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import zlib

from django.conf import settings

from accounts_service.models import Account, NatsUser
from accounts_service.rights import PLATFORM
from accounts_service.services import account_create, platform_team_get, service_user_ensure
from broker_gateway.events import JSZ_SUBJECT, STATZ_SUBJECT

log = logging.getLogger(__name__)

METERING_ACCOUNT = "metering"
LEDGER_USER = "natsctl-ledger"
STREAM = "METERING"
PREFIX = "natsctl.metering"
POLL_KINDS = {STATZ_SUBJECT: ("statz", "account_statz"), JSZ_SUBJECT: ("jsz", "account_details")}
POLL_ORIGIN = {kind: subject for subject, (kind, _) in POLL_KINDS.items()}  # a stream subject's last token
POLL_PIECE_BYTES = 256 * 1024
DUPLICATE_WINDOW = 120.0  # seconds; a re-publish within it is stored once
STREAM_BYTES = 4 * 1024**3  # the stream's cap (and the account's disk allowance): hours of backlog at full rate


def partition_of(account: str, partitions: int) -> int:
    """The partition of an account's samples: stable across processes and releases (CRC-32 of its key)."""
    return zlib.crc32(account.encode("ascii", errors="replace")) % partitions


def partitions_count() -> int:
    return max(1, settings.METERING_PARTITIONS)


def event_partition(subject: str, partitions: int) -> int | None:
    """The partition of a ``$SYS.ACCOUNT.<acc>....`` event, or None for anything else."""
    tokens = subject.split(".", 3)
    if len(tokens) < 4 or tokens[1] != "ACCOUNT":
        return None
    return partition_of(tokens[2], partitions)


def events_subject(partition: int) -> str:
    return f"{PREFIX}.{partition}.events"


def _entry_account(entry: dict) -> str:
    return entry.get("acc") or entry.get("id") or entry.get("name") or ""


def poll_pieces(subject: str, data: bytes, partitions: int) -> list[tuple[str, bytes]]:
    """A STATZ or JSZ reply as (stream subject, body) pieces: per partition, the reply's server and time with that
    partition's accounts, at most POLL_PIECE_BYTES each (a larger partition is cut in halves until it fits)."""
    import orjson

    kind, key = POLL_KINDS[subject]
    reply = orjson.loads(data)
    body = reply.get("data") or {}
    entries = body.get(key) or []
    by_partition: dict[int, list[dict]] = {}
    for entry in entries:
        by_partition.setdefault(partition_of(_entry_account(entry), partitions), []).append(entry)
    head = {k: v for k, v in reply.items() if k != "data"}
    rest = {k: v for k, v in body.items() if k != key}
    out: list[tuple[str, bytes]] = []
    pending = [(k, chunk) for k, chunk in sorted(by_partition.items())]
    while pending:
        k, chunk = pending.pop(0)
        piece = orjson.dumps({**head, "data": {**rest, key: chunk}})
        if len(piece) > POLL_PIECE_BYTES and len(chunk) > 1:
            half = len(chunk) // 2
            pending[:0] = [(k, chunk[:half]), (k, chunk[half:])]
            continue
        out.append((f"{PREFIX}.{k}.{kind}", piece))
    return out


def events_pack(events: list[tuple[str, bytes]]) -> bytes:
    """A batch of (subject, data) as one message body: per event a 2-byte subject length, the subject, a 4-byte data
    length and the data (big-endian)."""
    parts = []
    for subject, data in events:
        raw = subject.encode()
        parts += (len(raw).to_bytes(2, "big"), raw, len(data).to_bytes(4, "big"), data)
    return b"".join(parts)


def events_unpack(body: bytes) -> list[tuple[str, bytes]]:
    out, i, end = [], 0, len(body)
    while i < end:
        n = int.from_bytes(body[i:i + 2], "big")
        subject = body[i + 2:i + 2 + n].decode()
        i += 2 + n
        m = int.from_bytes(body[i:i + 4], "big")
        out.append((subject, body[i + 4:i + 4 + m]))
        i += 4 + m
    return out


def msg_id(data: bytes) -> str:
    """The de-duplication id: nats-server sends every event and reply once, with a sequence number and a timestamp
    in it, so two equal byte strings are one message received twice (and a batch published again after a lost
    acknowledgement is the same bytes). A second collector batches the same events differently: its copies are
    stored too, and counted once by the ledger's idempotency keys (billing.services)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def metering_account_ensure() -> Account:
    """The platform account that holds the stream (JetStream on: disk for the stream, no memory storage)."""
    team = platform_team_get()
    return Account.objects.filter(team=team, name=METERING_ACCOUNT).first() or account_create(
        team=team, name=METERING_ACCOUNT, description="platform services: the metering stream", actor=PLATFORM,
        limits={"disk_storage": STREAM_BYTES, "mem_storage": 0, "streams": 4, "consumer": 256},
    )


def ledger_user_ensure() -> NatsUser:
    """The metering account's user of the collector (publishes into the stream) and of the writers (consume)."""
    return service_user_ensure(account=metering_account_ensure(), name=LEDGER_USER,
                               pub_allow=[f"{PREFIX}.>", "$JS.API.>", "$JS.ACK.>"], sub_allow=["_INBOX.>"])


def consumer_name(partition: int) -> str:
    return f"ledger-{partition}"


async def stream_ensure(js, *, partitions: int, replicas: int = 1) -> None:
    """The stream and one durable consumer per partition (idempotent: an existing one is left as it is)."""
    from nats.js import api
    from nats.js.errors import NotFoundError

    config = api.StreamConfig(
        name=STREAM, subjects=[f"{PREFIX}.>"], storage=api.StorageType.FILE, num_replicas=replicas,
        retention=api.RetentionPolicy.INTEREST, max_bytes=STREAM_BYTES, duplicate_window=DUPLICATE_WINDOW,
        discard=api.DiscardPolicy.NEW)
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)
    for k in range(partitions):
        try:
            await js.consumer_info(STREAM, consumer_name(k))
        except NotFoundError:
            await js.add_consumer(STREAM, api.ConsumerConfig(
                durable_name=consumer_name(k), ack_policy=api.AckPolicy.ALL, ack_wait=settings.METERING_ACK_WAIT,
                max_ack_pending=50_000, filter_subject=f"{PREFIX}.{k}.>",
                deliver_policy=api.DeliverPolicy.ALL))


# ------------------------------------------------------------------------------------------------
# Publishing with pipelined acknowledgements
# ------------------------------------------------------------------------------------------------


class Forwarder:
    """Publishes into the stream without waiting for each acknowledgement: every message gets its own reply
    subject, the acknowledgements are counted as they come, and a message not acknowledged within ``retry_after``
    seconds (or refused) is published again, under the same Msg-Id, until it is."""

    def __init__(self, nc, *, retry_after: float = 2.0, max_pending: int = 200_000) -> None:
        self.nc, self.retry_after, self.max_pending = nc, retry_after, max_pending
        self._prefix = nc.new_inbox()
        self._pending: dict[int, tuple[str, bytes, dict, float]] = {}
        self._next = 0
        self._sub = None
        self._retry_task: asyncio.Task | None = None
        self.acked = self.republished = 0
        self._room = asyncio.Event()
        self._room.set()

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(f"{self._prefix}.*", cb=self._on_ack)
        self._retry_task = asyncio.create_task(self._retry_loop())

    async def _on_ack(self, msg) -> None:
        seq = int(msg.subject.rsplit(".", 1)[1])
        entry = self._pending.get(seq)
        if entry is None:
            return
        if msg.data.startswith(b'{"error"') or not msg.data:  # refused (or no stream yet): try again later
            log.warning("metering: the stream refused a message: %s", msg.data[:200])
            return
        del self._pending[seq]
        self.acked += 1
        if len(self._pending) < self.max_pending:
            self._room.set()

    async def publish(self, subject: str, data: bytes) -> None:
        if len(self._pending) >= self.max_pending:  # the stream is not answering: hold the intake back
            self._room.clear()
            await self._room.wait()
        self._next += 1
        headers = {"Nats-Msg-Id": msg_id(data)}
        self._pending[self._next] = (subject, data, headers, asyncio.get_running_loop().time())
        await self.nc.publish(subject, data, reply=f"{self._prefix}.{self._next}", headers=headers)

    async def _retry_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.retry_after / 2)
            now = loop.time()
            for seq, (subject, data, headers, sent) in list(self._pending.items()):
                if now - sent >= self.retry_after and self.nc.is_connected:
                    self._pending[seq] = (subject, data, headers, now)
                    self.republished += 1
                    await self.nc.publish(subject, data, reply=f"{self._prefix}.{seq}", headers=headers)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def settle(self, timeout: float) -> bool:
        """Wait until everything published was acknowledged (at the end, before closing the connection)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._pending and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return not self._pending

    async def stop(self) -> None:
        if self._retry_task is not None:
            self._retry_task.cancel()
        if self._sub is not None:
            await self._sub.unsubscribe()


class EventBatcher:
    """Gathers events per partition and hands each partition's batch to ``publish`` when it holds ``max_events``
    events or ``max_bytes`` bytes, or ``linger`` seconds after its first event."""

    def __init__(self, publish, *, partitions: int, max_events: int = 500, max_bytes: int = 256 * 1024,
                 linger: float = 0.02) -> None:
        self._publish, self.partitions = publish, partitions
        self.max_events, self.max_bytes, self.linger = max_events, max_bytes, linger
        self._batches: dict[int, list[tuple[str, bytes]]] = {}
        self._sizes: dict[int, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task] = set()
        self.events = 0

    async def add(self, subject: str, data: bytes) -> None:
        k = event_partition(subject, self.partitions)
        if k is None:
            return
        batch = self._batches.setdefault(k, [])
        batch.append((subject, data))
        self._sizes[k] = self._sizes.get(k, 0) + len(data) + len(subject) + 6
        self.events += 1
        if len(batch) >= self.max_events or self._sizes[k] >= self.max_bytes:
            await self._send(k)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger, self._linger_over)

    def _linger_over(self) -> None:
        self._timer = None
        task = asyncio.ensure_future(self.flush())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _send(self, k: int) -> None:
        batch = self._batches.pop(k, None)
        self._sizes.pop(k, None)
        if batch:
            await self._publish(events_subject(k), events_pack(batch))

    async def flush(self) -> None:
        for k in list(self._batches):
            await self._send(k)
