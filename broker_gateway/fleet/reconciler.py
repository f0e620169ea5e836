"""The supervisor's own propagation: the nodes reconciled with the database on a thread of the supervisor process.

A revocation, a suspension or a deletion reaches every node within about FLEET_RECONCILE_SECONDS whatever Celery
and Redis do: the queued push (broker_gateway/signals.py) is only the fast path. The thread never holds up node
supervision, so a frozen node that makes a push wait out its timeout delays no restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection

from accounts_service.models import Account
from broker_gateway.gateway import reply_server
from broker_gateway.propagation import account_delete_push, fleet_reconcile, fleet_unknown_delete
from broker_gateway.selectors import healthy_nodes

log = logging.getLogger(__name__)

LIST_RETRY = 30.0  # seconds between attempts of the once-only LIST when it fails


class Reconciler:
    """Every ``every`` seconds (FLEET_RECONCILE_SECONDS; 0: never): push the accounts some healthy node has not
    acknowledged at their latest JWT (``fleet_reconcile``), and delete from the nodes the accounts that are gone.

    A failure is logged once per kind while it lasts (and once when it ends), and the round is simply tried
    again next time. ``sync_started`` tells when a full sync now under way began (NodeSyncer.running_since):
    meanwhile only what changed from then on is pushed here, instead of every account a second time.
    """

    def __init__(self, *, every: float | None = None,
                 sync_started: Callable[[], datetime | None] = lambda: None) -> None:
        self.every = settings.FLEET_RECONCILE_SECONDS if every is None else every
        self.sync_started = sync_started
        self.failing: dict[str, str] = {}  # kind of failure -> what was logged, while it lasts
        self._known: set[str] | None = None  # the accounts that existed at the last round
        self._gone: set[str] = set()  # deleted, not yet answered for by every healthy node
        self._listed = False  # the nodes' LIST was checked against the database once
        self._list_after = 0.0  # monotonic time before which a failed LIST is not asked again
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.every <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="fleet-reconcile", daemon=True)
        self._thread.start()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop after the round in hand (a push waits NATS_PUSH_TIMEOUT per batch); a round stuck longer than
        ``timeout`` is left to die with the process (a daemon thread) rather than delay the nodes' shutdown."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                log.warning("the reconciler did not stop within %.0fs", timeout)
            self._thread = None

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                self.round()
                self._stop.wait(max(self.every - (time.monotonic() - started), 0.0))
        finally:
            connection.close()  # this thread's own database connection

    # -- one round --------------------------------------------------------------------------------

    def round(self) -> None:
        """Push what is behind, delete what is gone; every failure is left for the next round."""
        failures: dict[str, str] = {}
        raised: dict[str, Exception] = {}
        for part in (self._push, self._delete):
            try:
                failures.update(part())
            except Exception as exc:  # the database or the fleet connection: whatever it is, next round again
                kind = f"{part.__name__.strip('_')}: {type(exc).__name__}"
                failures[kind], raised[kind] = str(exc) or type(exc).__name__, exc
                if isinstance(exc, DatabaseError):
                    connection.close()  # a database that went away: the next round connects anew
        for kind, detail in failures.items():
            if kind not in self.failing:  # an exception's traceback too, that once
                log.warning("reconcile %s: %s; retried every %.0fs", kind, detail, self.every,
                            exc_info=raised.get(kind))
                self.failing[kind] = detail
        for kind in [k for k in self.failing if k not in failures]:
            log.info("reconcile %s: recovered", kind)
            del self.failing[kind]

    def _push(self) -> dict[str, str]:
        report = fleet_reconcile(changed_since=self.sync_started(), quiet=True)
        failures = {}
        if report.errors:
            first = report.errors[0]
            failures["push: refused"] = (f"{len(report.errors)} refusal(s), e.g. {first['node']} refused "
                                         f"{first['account']}: {first['error']}")
        elif report.complete < report.accounts:
            failures["push: unacknowledged"] = (f"{report.accounts - report.complete} of {report.accounts} "
                                                f"accounts not acknowledged by every one of {report.nodes}")
        elif report.accounts:  # what the queued push did not deliver (no worker, no Redis, a lost message)
            log.info("reconciled", extra={"accounts": report.accounts, "nodes": report.nodes})
        return failures

    def _delete(self) -> dict[str, str]:
        """Accounts deleted since the last round are deleted from every healthy node; and once, what the nodes
        LIST that the database lacks (an account deleted before this supervisor started)."""
        known = set(Account.objects.values_list("public_key", flat=True))
        if self._known is not None:
            self._gone |= self._known - known
        self._known = known
        failures = {}
        expected = {n.name for n in healthy_nodes()}
        if self._gone and expected:  # with no node healthy, a node's full sync on becoming healthy deletes them
            answered = {reply_server(r) for r in account_delete_push(public_keys=sorted(self._gone))}
            if missing := expected - answered:
                failures["delete: unanswered"] = (f"{len(self._gone)} deleted account(s) not answered for by "
                                                  f"{sorted(missing)}")
            else:
                log.info("deleted accounts removed from the nodes", extra={"accounts": sorted(self._gone)})
                self._gone.clear()
        if not self._listed and expected and time.monotonic() >= self._list_after:
            # A LIST costs every node a read of every JWT file, in the connection that delivered it (its other
            # claims requests wait): one that failed is asked again after LIST_RETRY seconds, not every round.
            self._list_after = time.monotonic() + LIST_RETRY
            fleet_unknown_delete()
            self._listed = True
        return failures
