"""nats-server's metering messages (system events, STATZ and JSZ replies, ``/accstatz``) read into billing's samples.

Everything about their layout lives here; billing gets plain counters and samples. As nats-server sends them
(server/events.go):

- ``$SYS.ACCOUNT.<acc>.SERVER.CONNS`` events and the ``account_statz`` entries of ``$SYS.REQ.ACCOUNT.PING.STATZ``
  carry per (server, account) **cumulative** counters from the server's point of view: ``received`` is what
  the server took in for the account, ``sent`` what it sent out, each with the part that crossed routes,
  gateways and leafnodes; and the account's client connections (``conns``) and leafnode connections
  (``leafnodes``) on that server.
- From the clients' point of view, what the account's clients published on this server (**sent**) is the
  server's ``received`` minus what came in over routes and gateways, and what was delivered to them
  (**received**) is the server's ``sent`` minus what went out over them. Summed over servers, a message
  crossing a route is counted once, on the server its client used.
- A leafnode connection is a tenant's own nats-server: a client of the fleet like any other, so what crosses
  it is the account's traffic and is **not** subtracted. It is counted once, on the fleet server the leaf is
  connected to (the tenant's own server reports to no one we listen to).
- Counters live in server memory and start from zero whenever a server starts (it gets a new server id),
  so a sample is keyed by server id and ordered by the server's event sequence number.
- Timestamps are RFC 3339 with nanoseconds.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson

from billing.metering import ConnectionSample, Counters, CountersSample, Sample, SampleKind, StorageSample

log = logging.getLogger(__name__)

STATZ_SUBJECT = "$SYS.REQ.ACCOUNT.PING.STATZ"
JSZ_SUBJECT = "$SYS.REQ.SERVER.PING.JSZ"  # with {"accounts": true}: each server's JetStream bytes per account
EVENT_SUBJECTS = ("$SYS.ACCOUNT.*.CONNECT", "$SYS.ACCOUNT.*.DISCONNECT", "$SYS.ACCOUNT.*.SERVER.CONNS")

# A server repeats an account's CONNS event this often while the account has connections (billing's
# metering.OBSERVATION_FRESH must leave room for a few of them; a test holds the two together).
CONNS_EVERY = dt.timedelta(seconds=30)

# A node in lame duck mode sends no system message any more (nats-server queues its LAMEDUCK event as the last
# one of its internal send loop), yet its clients keep publishing until it closes them. Their counters are read
# over HTTP (/accstatz) while the node winds down; such a sample has no server sequence number, so it gets one
# above any the server ever sent, ordered by the server's own clock.
LAME_DUCK_SEQ = 2**53

# Server-to-server traffic of the fleet itself, counted on both servers: left out. Leafnodes are tenants' servers.
_REMOTE = ("routes", "gateways")


_UTC_SECONDS: dict[str, dt.datetime] = {}  # whole seconds already parsed (events of the same second share them)


def parse_time(value: str | None) -> dt.datetime | None:
    """nats-server's RFC 3339 timestamps carry nanoseconds; Python keeps microseconds."""
    if not value:
        return None
    if value[-1] == "Z" and value[10:11] == "T":  # the form nats-server writes: fast, no regular expression
        head, dot, frac = value[:-1].partition(".")
        if len(head) == 19 and (not dot or frac.isdigit()):
            at = _UTC_SECONDS.get(head)
            if at is None:
                at = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC)
                if len(_UTC_SECONDS) > 4096:
                    _UTC_SECONDS.clear()
                _UTC_SECONDS[head] = at
            return at.replace(microsecond=int(frac[:6].ljust(6, "0"))) if dot else at
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]  # the fraction's digits, not the zone's
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _local(side: dict[str, Any] | None, unit: str) -> int:
    """The part of a server-side counter that was exchanged with the server's own clients."""
    if not side:
        return 0
    total = int(side.get(unit) or 0)
    for remote in _REMOTE:  # (a loop, not sum() over a generator: this runs four times per event)
        part = side.get(remote)
        if part:
            total -= int(part.get(unit) or 0)
    return total if total > 0 else 0


def client_counters(stat: dict[str, Any]) -> Counters:
    """Client-side cumulative counters of one account on one server, from a CONNS event or a STATZ entry."""
    received, sent = stat.get("received"), stat.get("sent")
    return Counters(
        sent_msgs=_local(received, "msgs"),
        sent_bytes=_local(received, "bytes"),
        received_msgs=_local(sent, "msgs"),
        received_bytes=_local(sent, "bytes"),
    )


# ------------------------------------------------------------------------------------------------
# One reader per message kind
# ------------------------------------------------------------------------------------------------


def _key(*parts: object) -> str:
    return ":".join(map(str, parts))[:120]


def _counters(kind: SampleKind, server: dict[str, Any], seq: int, at, stat: dict[str, Any]) -> CountersSample:
    return CountersSample(key=_key(server.get("id", ""), seq), kind=kind, account=stat.get("acc") or "",
                          server_id=server.get("id", ""), server_name=server.get("name", ""), seq=seq, at=at,
                          counters=client_counters(stat), conns=int(stat.get("conns") or 0),
                          leafnodes=int(stat.get("leafnodes") or 0))


def event_samples(subject: str, data: bytes) -> list[Sample]:
    """The samples in one system event (none for a CONNECT: its CONNS event carries the numbers)."""
    try:
        event = orjson.loads(data)
    except ValueError:
        log.warning("metering: unreadable event on %s", subject)
        return []
    server = event.get("server") or {}
    if subject.endswith(".SERVER.CONNS"):
        at = parse_time(event.get("timestamp")) or parse_time(server.get("time"))
        return [_counters(SampleKind.COUNTERS_EVENT, server, int(server.get("seq") or 0), at, event)]
    if subject.endswith(".DISCONNECT"):
        client = event.get("client") or {}
        start, stop = parse_time(client.get("start")), parse_time(client.get("stop"))
        at = stop or parse_time(event.get("timestamp"))
        return [ConnectionSample(key=_key(server.get("id", ""), server.get("seq"), event.get("id", "")),
                                 account=client.get("acc") or "", server_id=server.get("id", ""),
                                 start=start or at, at=at)]
    return []


def statz_samples(data: bytes) -> list[Sample]:
    """One server's reply to a STATZ poll: every account's counters on that server."""
    reply = orjson.loads(data)
    server, body = reply.get("server") or {}, reply.get("data") or {}
    at = parse_time(body.get("now")) or parse_time(server.get("time"))
    seq = int(server.get("seq") or 0)
    return [_counters(SampleKind.COUNTERS_POLL, server, seq, at, stat) for stat in body.get("account_statz") or []]


def jsz_samples(data: bytes) -> list[Sample]:
    """One server's reply to a JSZ poll: every account's JetStream bytes (memory plus file, cluster-wide)."""
    reply = orjson.loads(data)
    server, body = reply.get("server") or {}, reply.get("data") or {}
    at = parse_time(body.get("now")) or parse_time(server.get("time"))
    return [StorageSample(key=_key(server.get("id", ""), server.get("seq") or 0),
                          account=detail.get("id") or detail.get("name") or "",
                          server_id=server.get("id", ""), server_name=server.get("name", ""), at=at,
                          stored_bytes=int(detail.get("memory") or 0) + int(detail.get("storage") or 0))
            for detail in body.get("account_details") or []]


def accstatz_samples(data: bytes, *, server_name: str) -> list[Sample]:
    """A node's HTTP ``/accstatz?unused=1`` read while it is in lame duck mode."""
    body = orjson.loads(data)
    at = parse_time(body.get("now"))
    if at is None or not body.get("server_id"):
        return []
    server = {"id": body["server_id"], "name": server_name}
    seq = LAME_DUCK_SEQ + int(at.timestamp() * 1000)
    return [_counters(SampleKind.COUNTERS_POLL, server, seq, at, stat) for stat in body.get("account_statz") or []]


PARSERS = {STATZ_SUBJECT: statz_samples, JSZ_SUBJECT: jsz_samples}


def message_samples(subject: str, data: bytes) -> list[Sample]:
    """What the collector's queue holds, as samples: a poll reply (by the subject it polled) or an event."""
    parse = PARSERS.get(subject)
    return parse(data) if parse is not None else event_samples(subject, data)


def readable_samples(subject: str, data: bytes) -> list[Sample]:
    """``message_samples``, or none for a message that cannot be read (logged with its subject): the rest of a
    batch goes on."""
    try:
        return message_samples(subject, data)
    except Exception:
        log.exception("metering: could not read a message on %s", subject)
        return []
