"""Measured export use: how many messages each tenant export carried to other accounts, from the servers' own
subscription counters (docs/ECONOMICS.md, "Publisher popularity").

What nats-server counts (read in its source, checked with real servers in tests/integration/test_export_use.py):

- ``$SYS.REQ.ACCOUNT.<acc>.SUBSZ`` (events.go ``monAccSrvc``) is answered by **every** server with the account's
  subscriptions on that server (monitor.go ``Subsz``: the account's sublist, ``localSubs``, which includes the
  account's internal client), each with ``msgs``: what was delivered to that subscription so far (client.go
  ``deliverMsg``: ``sub.nm++``).
- A **service import** is a subscription of the importing account's internal client on the import's local subject
  (accounts.go ``addServiceImportSub``); every request the importer's clients on that server publish into the
  import passes through it once (it is not forwarded over routes). Its ``msgs`` is the requests sent into the
  import on that server. A client of the importer may subscribe to the same subject: its subscription is told
  apart by asking that server for the cid (``$SYS.REQ.SERVER.<id>.CONNZ`` ``{"acc", "cid", "state": all}``): an
  internal client is no connection. An update of the importer's JWT re-creates its service imports (accounts.go
  ``updateAccountClaimsWithRefresh``): new sid, count from 0.
- A **stream import** makes, for each importer subscription it covers, a *shadow* subscription in the exporter's
  sublist (client.go ``addShadowSub``), listed in the exporter's SUBSZ under the importer's account, with its own
  ``msgs``: the exporter's messages delivered to that importer subscription through the import.

Counts are cumulative per subscription and die with it (or with the server); the ledger applies them as deltas
(billing.traffic). A subscription that closes between two polls loses what it counted since the last poll.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import close_old_connections
from django.utils import timezone

from accounts_service.models import Import, NatsUser
from accounts_service.services import service_user_ensure, system_account_ensure
from billing.models import ExportUseHour
from billing.traffic import ExportUseSample, export_use_counters_prune, export_use_ingest
from broker_gateway.events import parse_time
from broker_gateway.gateway import Gateway, GatewayUnavailable
from broker_gateway.models import BrokerNode
from operators import services as op_services
from operators.subjects import is_subset

log = logging.getLogger(__name__)

METER_USER = "natsctl-export-meter"
METER_PUB = ["$SYS.REQ.ACCOUNT.*.SUBSZ", "$SYS.REQ.SERVER.*.CONNZ"]
METER_SUB = ["_INBOX.>"]
SUBSZ_LIMIT = 10_000  # subscriptions a server lists per account in one reply (monitor.go SubszOptions.Limit)
CONNZ_ALL = 2  # monitor.go ConnState: ConnAll (open and recently closed connections)
PRUNE_AFTER = dt.timedelta(days=1)


def meter_user_ensure() -> NatsUser:
    """The system-account user the export meter connects as: it may only ask SUBSZ and CONNZ."""
    return service_user_ensure(account=system_account_ensure(), name=METER_USER, pub_allow=METER_PUB,
                               sub_allow=METER_SUB)


# ------------------------------------------------------------------------------------------------
# What to ask, from the database
# ------------------------------------------------------------------------------------------------


@dataclass
class Tracked:
    """One account whose SUBSZ we read: as an importer of services (local subject -> export), and as the exporter
    of streams other accounts import (importer -> [(import subject, export subject)])."""

    account: str
    services: dict[str, tuple[str, str]] = field(default_factory=dict)
    streams: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


def tracked_accounts() -> dict[str, Tracked]:
    """Every import of a tenant's export by another account: the platform's own exports (``ngs.usage``, which
    every account imports) are not a publisher's and are not read."""
    out: dict[str, Tracked] = {}
    imports = (Import.objects.exclude(export__account__team__is_platform=True).exclude(export__account__is_system=True)
               .select_related("export__account", "account").order_by("pk"))
    for imp in imports:
        exporter, importer = imp.export.account.public_key, imp.account.public_key
        if exporter == importer:
            continue
        if imp.export.type == "service":
            out.setdefault(importer, Tracked(importer)).services[imp.local_subject or imp.subject] = (
                exporter, imp.export.subject)
        else:
            out.setdefault(exporter, Tracked(exporter)).streams.setdefault(importer, []).append(
                (imp.subject, imp.export.subject))
    return out


# ------------------------------------------------------------------------------------------------
# Reading SUBSZ replies (the message format: monitor.go Subsz / SubDetail, events.go ServerInfo envelope)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A subscription on a service import's local subject: the import's own only if its cid is no connection."""

    sample: ExportUseSample
    server_id: str


def subsz_read(data: bytes, tracked: Tracked) -> tuple[list[ExportUseSample], list[Candidate]]:
    """One server's SUBSZ reply for ``tracked.account``: stream deliveries to importers (shadow subscriptions,
    listed under the importer's account) as samples, and the subscriptions on a service import's local subject
    as candidates (which of them is the import's internal subscription is decided by its cid)."""
    reply = orjson.loads(data)
    server, body = reply.get("server") or {}, reply.get("data") or {}
    server_id, seq = server.get("id", ""), int(server.get("seq") or 0)
    at = parse_time(body.get("now")) or parse_time(server.get("time"))
    if not server_id or at is None or reply.get("error"):
        return [], []
    listed = body.get("subscriptions_list") or []
    if int(body.get("total") or 0) > len(listed):
        log.warning("export use: %s lists %s of %s subscriptions of %s; the rest are not measured",
                    server.get("name"), len(listed), body.get("total"), tracked.account)
    samples, candidates = [], []
    for entry in listed:
        owner, subject = entry.get("account") or "", entry.get("subject") or ""
        common = {"server_id": server_id, "seq": seq, "at": at, "account": tracked.account,
                  "cid": int(entry.get("cid") or 0), "sid": str(entry.get("sid") or ""), "subject": subject,
                  "msgs": int(entry.get("msgs") or 0)}
        if owner != tracked.account:
            for import_subject, export_subject in tracked.streams.get(owner, ()):
                if is_subset(subject, import_subject):
                    samples.append(ExportUseSample(**common, exporter=tracked.account, export_subject=export_subject,
                                                   importer=owner, kind=ExportUseHour.Kind.STREAM))
                    break
        elif subject in tracked.services and not entry.get("qgroup"):
            exporter, export_subject = tracked.services[subject]
            candidates.append(Candidate(server_id=server_id, sample=ExportUseSample(
                **common, exporter=exporter, export_subject=export_subject, importer=tracked.account,
                kind=ExportUseHour.Kind.SERVICE)))
    return samples, candidates


def connz_is_connection(data: bytes) -> bool:
    """A CONNZ reply filtered by cid lists the connection if the cid is one (open or closed)."""
    reply = orjson.loads(data)
    return bool((reply.get("data") or {}).get("connections"))


# ------------------------------------------------------------------------------------------------
# The meter
# ------------------------------------------------------------------------------------------------


class ExportMeter:
    """Polls SUBSZ of every tracked account on every server, tells internal subscriptions from clients' (cached per
    server id and cid: cids are never reused while a server runs), and writes the deltas to the ledger."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 1.0):
        user = meter_user_ensure()
        self.urls, self.timeout = list(urls), timeout
        self._jwt, self._sign = user.jwt, op_services.nonce_signer_get(user_seed=user.seed)
        self._gateway: Gateway | None = None
        self._internal: dict[tuple[str, str, int], bool] = {}  # (server id, account, cid) -> internal client?
        self._pruned_at: dt.datetime | None = None
        self.added = 0

    def _connection(self) -> Gateway:
        if self._gateway is None or not self._gateway.is_usable:
            if self._gateway is not None:
                self._gateway.close()
            self._gateway = Gateway(self.urls, user_jwt=self._jwt, sign_nonce=self._sign, name="natsctl-export-meter")
        return self._gateway

    def close(self) -> None:
        if self._gateway is not None:
            self._gateway.close()
            self._gateway = None

    def _classify(self, gateway: Gateway, candidates: list[Candidate]) -> list[ExportUseSample]:
        unknown = sorted({(c.server_id, c.sample.account, c.sample.cid) for c in candidates} - set(self._internal))
        if unknown:
            replies = gateway.request_many(
                [(f"$SYS.REQ.SERVER.{server_id}.CONNZ",
                  orjson.dumps({"acc": account, "cid": cid, "state": CONNZ_ALL, "limit": 1}))
                 for server_id, account, cid in unknown], expect=1, timeout=self.timeout)
            for key, answers in zip(unknown, replies, strict=True):
                if answers:  # no answer (the server went away): ask again next time
                    self._internal[key] = not connz_is_connection(answers[0])
        return [c.sample for c in candidates
                if self._internal.get((c.server_id, c.sample.account, c.sample.cid)) is True]

    def poll(self) -> int:
        """One round over every tracked account; returns the messages it added to the ledger."""
        tracked = tracked_accounts()
        if not tracked:
            return 0
        expect = max(BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).count(), 1)
        gateway = self._connection()
        accounts = sorted(tracked)
        body = orjson.dumps({"limit": SUBSZ_LIMIT})
        replies = gateway.request_many([(f"$SYS.REQ.ACCOUNT.{a}.SUBSZ", body) for a in accounts], expect=expect,
                                       timeout=self.timeout)
        samples: list[ExportUseSample] = []
        candidates: list[Candidate] = []
        for account, answers in zip(accounts, replies, strict=True):
            for data in answers:
                try:
                    found, maybe = subsz_read(data, tracked[account])
                except ValueError:
                    log.warning("export use: unreadable SUBSZ reply for %s", account)
                    continue
                samples += found
                candidates += maybe
        samples += self._classify(gateway, candidates)
        added = export_use_ingest(samples)
        self.added += added
        now = timezone.now()
        if self._pruned_at is None or now - self._pruned_at > dt.timedelta(hours=1):
            export_use_counters_prune(before=now - PRUNE_AFTER)
            self._pruned_at = now
        return added

    def run(self, stop: threading.Event, *, poll_seconds: float) -> None:
        """Poll until ``stop`` is set (the collector command runs this on a thread beside its event loop), once
        more as it stops."""
        try:
            while True:
                self._poll_logged()
                if stop.wait(poll_seconds):
                    self._poll_logged()
                    return
        finally:
            self.close()

    def _poll_logged(self) -> Any:
        close_old_connections()
        try:
            return self.poll()
        except GatewayUnavailable as exc:
            log.warning("export use: %s; polling again later", exc)
            self.close()
        except Exception:
            log.exception("export use: a poll failed; polling again later")
        finally:
            close_old_connections()
        return None
