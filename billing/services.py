"""Writes of billing: ingesting metering samples into the ledger, exactly once."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest

from billing import metering
from billing.models import AccountStorage, MeterSample, ServerAccountCounter, UsageHour
from billing.selectors import connections_current


def _claim(*, key: str, kind: str, account: str, server_id: str, at: dt.datetime) -> bool:
    """Record the sample's idempotency key; False if it was ingested before (the constraint decides)."""
    try:
        with transaction.atomic():
            MeterSample.objects.create(key=key[:120], kind=kind, account_public_key=account, server_id=server_id,
                                       observed_at=at)
    except IntegrityError:
        return False
    return True


def _hour_add(*, account: str, hour: dt.datetime, peak: int | None = None, **increments: float) -> None:
    """Add to an hour's counters (and raise its peak of connections to ``peak``) in one UPDATE."""
    updates: dict[str, Any] = {field: F(field) + value for field, value in increments.items()}
    if peak is not None:
        updates["peak_connections"] = Greatest(F("peak_connections"), peak)
    if not UsageHour.objects.filter(account_public_key=account, hour=hour).update(**updates):
        UsageHour.objects.get_or_create(account_public_key=account, hour=hour)  # the hour's first sample
        UsageHour.objects.filter(account_public_key=account, hour=hour).update(**updates)


@transaction.atomic
def counters_ingest(*, kind: str, server_id: str, server_name: str, seq: int, at: dt.datetime,
                    stat: dict[str, Any]) -> bool:
    """Apply one account's cumulative counters seen on one server (a CONNS event or a STATZ entry).

    The delta since the last applied snapshot of the same (server id, account) lands in the hour of ``at``
    (the server's clock), however late it is ingested. Returns False for a sample already ingested."""
    account = stat["acc"]
    if not _claim(key=f"{server_id}:{seq}", kind=kind, account=account, server_id=server_id, at=at):
        return False
    snapshot = metering.Snapshot(server_id=server_id, seq=seq, counters=metering.client_counters(stat),
                                 conns=int(stat.get("conns") or 0), at=at)
    row = ServerAccountCounter.objects.select_for_update().filter(server_id=server_id,
                                                                  account_public_key=account).first()
    previous = None if row is None else metering.Snapshot(
        server_id=server_id, seq=row.seq, conns=row.conns, at=row.observed_at,
        counters=metering.Counters(row.sent_msgs, row.sent_bytes, row.received_msgs, row.received_bytes),
    )
    change = metering.delta(previous, snapshot)
    if change.stale:
        return True
    values = {
        "seq": seq, "observed_at": at, "conns": snapshot.conns, "server_name": server_name,
        "sent_msgs": snapshot.counters.sent_msgs, "sent_bytes": snapshot.counters.sent_bytes,
        "received_msgs": snapshot.counters.received_msgs, "received_bytes": snapshot.counters.received_bytes,
    }
    if row is None:
        # A new server id under a known name is that server restarted: its old counters hold no connection.
        ServerAccountCounter.objects.filter(server_name=server_name, account_public_key=account).exclude(
            server_id=server_id).update(conns=0)
        ServerAccountCounter.objects.create(server_id=server_id, account_public_key=account, **values)
    else:
        ServerAccountCounter.objects.filter(pk=row.pk).update(**values, resets=F("resets") + int(change.reset))
    c = change.counters
    _hour_add(account=account, hour=metering.hour_floor(at),
              peak=connections_current(account_public_key=account, now=at),  # across servers, now
              sent_msgs=c.sent_msgs, sent_bytes=c.sent_bytes, received_msgs=c.received_msgs,
              received_bytes=c.received_bytes)
    return True


@transaction.atomic
def disconnect_ingest(*, event: dict[str, Any]) -> bool:
    """A client's DISCONNECT event: its connection-seconds, split over the hours the connection spanned.
    (Messages and bytes come from the servers' cumulative counters only, so they are never counted twice.)"""
    server, client = event.get("server") or {}, event.get("client") or {}
    account, server_id = client.get("acc", ""), server.get("id", "")
    start, stop = metering.parse_time(client.get("start")), metering.parse_time(client.get("stop"))
    at = stop or metering.parse_time(event.get("timestamp"))
    if not account or at is None:
        return False
    if not _claim(key=f"{server_id}:{server.get('seq')}:{event.get('id', '')}", kind=MeterSample.Kind.DISCONNECT,
                  account=account, server_id=server_id, at=at):
        return False
    for hour, seconds in metering.split_by_hour(start or at, at):
        _hour_add(account=account, hour=hour, connection_seconds=seconds)
    return True


@transaction.atomic
def storage_ingest(*, server_id: str, server_name: str, seq: int, at: dt.datetime, account: str,
                   stored_bytes: int) -> bool:
    """One account's JetStream bytes (cluster-wide, as any server of the cluster reports them) from a JSZ poll.
    The interval since the account's previous observation, from whichever server, is billed at the smaller of
    the two (never more than was stored), split over the hours it spans. False for a sample already ingested."""
    if not _claim(key=f"{server_id}:{seq}", kind=MeterSample.Kind.JSZ, account=account, server_id=server_id, at=at):
        return False
    row = AccountStorage.objects.select_for_update().filter(account_public_key=account).first()
    if row is None:
        try:
            with transaction.atomic():
                AccountStorage.objects.create(account_public_key=account, bytes=stored_bytes, observed_at=at,
                                              server_name=server_name)
            return True
        except IntegrityError:  # another writer created it first: apply this one on top of it
            row = AccountStorage.objects.select_for_update().get(account_public_key=account)
    if at <= row.observed_at:  # late: an older observation adds nothing once a newer one was applied
        return True
    billed = min(row.bytes, stored_bytes)
    if billed > 0:
        for hour, seconds in metering.split_by_hour(row.observed_at, at):
            _hour_add(account=account, hour=hour, storage_byte_seconds=int(billed * seconds))
    AccountStorage.objects.filter(pk=row.pk).update(bytes=stored_bytes, observed_at=at, server_name=server_name)
    return True
