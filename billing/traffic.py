"""The ledger's traffic by node and by export: ingesting measured export use, and reading both per period.

Export use comes from the servers' own subscription counters (SUBSZ ``msgs``, read by
broker_gateway.export_meter): cumulative per subscription, so it is applied as deltas per (server id, account,
cid, sid, subject), ordered by the server's reply sequence number, like the account counters in services.py.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F, Sum

from billing import metering
from billing.models import ExportUseCounter, ExportUseHour, NodeUsageHour

# ------------------------------------------------------------------------------------------------
# Export use: samples and their ingestion
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportUseSample:
    """One subscription's cumulative message count that a server reported at ``at`` (reply sequence ``seq``),
    already attributed to the export it carries and the importing account."""

    server_id: str
    seq: int
    at: dt.datetime
    account: str  # the account whose SUBSZ listed the subscription
    cid: int
    sid: str
    subject: str
    msgs: int
    exporter: str
    export_subject: str
    importer: str
    kind: str  # ExportUseHour.Kind


def use_step(*, previous_seq: int | None, previous_msgs: int, seq: int, msgs: int) -> int | None:
    """Messages a new reading adds: all of them on first sight (a subscription counts from 0); None for a reading
    not newer than the applied one; the whole count when it went down (the client reused the sid)."""
    if previous_seq is None:
        return msgs
    if seq <= previous_seq:
        return None
    return msgs if msgs < previous_msgs else msgs - previous_msgs


@transaction.atomic
def export_use_ingest(samples: Sequence[ExportUseSample]) -> int:
    """Apply the readings (each subscription's row locked while it is read and written, so two meters polling at
    once count each message once); returns the messages added to the hourly rows."""
    added: dict[tuple[str, str, str, str, dt.datetime], int] = defaultdict(int)
    for s in samples:
        key = {"server_id": s.server_id, "account_public_key": s.account, "cid": s.cid, "sid": s.sid,
               "subject": s.subject}
        row = ExportUseCounter.objects.select_for_update().filter(**key).first()
        step = use_step(previous_seq=None if row is None else row.seq, previous_msgs=0 if row is None else row.msgs,
                        seq=s.seq, msgs=s.msgs)
        if step is None:
            continue
        if row is None:
            ExportUseCounter.objects.create(**key, seq=s.seq, msgs=s.msgs, observed_at=s.at)
        else:
            ExportUseCounter.objects.filter(pk=row.pk).update(seq=s.seq, msgs=s.msgs, observed_at=s.at)
        if step:
            added[(s.exporter, s.export_subject, s.importer, s.kind, metering.hour_floor(s.at))] += step
    for (exporter, subject, importer, kind, hour), msgs in added.items():
        hour_row, _ = ExportUseHour.objects.get_or_create(
            exporter_public_key=exporter, export_subject=subject, importer_public_key=importer, hour=hour,
            defaults={"kind": kind})
        ExportUseHour.objects.filter(pk=hour_row.pk).update(msgs=F("msgs") + msgs)
    return sum(added.values())


def export_use_counters_prune(*, before: dt.datetime) -> int:
    """Forget subscriptions no server has listed since ``before`` (closed, or on a server long gone): a cid never
    comes back on the same server id."""
    return ExportUseCounter.objects.filter(observed_at__lt=before).delete()[0]


# ------------------------------------------------------------------------------------------------
# Reads for a period
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeHour:
    node: str
    hour: dt.datetime
    bytes: int  # sent plus received, tenants' clients


def node_hours_between(*, start: dt.datetime, end: dt.datetime) -> list[NodeHour]:
    """Each (node, hour) of [start, end) with the bytes the node exchanged with tenants' clients."""
    rows = NodeUsageHour.objects.filter(hour__gte=start, hour__lt=end).order_by("node", "hour")
    return [NodeHour(node=n, hour=h, bytes=s + r) for n, h, s, r in rows.values_list(
        "node", "hour", "sent_bytes", "received_bytes") if s + r]


@dataclass(frozen=True)
class ExportUse:
    exporter: str
    export_subject: str
    importer: str
    kind: str
    msgs: int


def export_use_between(*, start: dt.datetime, end: dt.datetime) -> list[ExportUse]:
    """Messages each export carried to each importing account in [start, end)."""
    rows = (ExportUseHour.objects.filter(hour__gte=start, hour__lt=end)
            .values("exporter_public_key", "export_subject", "importer_public_key", "kind")
            .annotate(total=Sum("msgs")).order_by("exporter_public_key", "export_subject", "importer_public_key"))
    return [ExportUse(exporter=r["exporter_public_key"], export_subject=r["export_subject"],
                      importer=r["importer_public_key"], kind=r["kind"], msgs=r["total"]) for r in rows if r["total"]]
