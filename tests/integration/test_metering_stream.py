"""The durable path from the collector to the ledger (broker_gateway.ledger_stream): two collectors forwarding the
same events side by side, and a ledger writer that dies after its commit but before its acknowledgement, still
give the ledger exactly the traffic the clients exchanged. Real nodes (JetStream on), real clients, the real
collectors and writers; the writers run on threads here (production runs them as processes)."""

from __future__ import annotations

import asyncio
import datetime
import threading

import pytest

from accounts_service.rights import PLATFORM
from tests.integration.test_metering import CollectorThread, M, _traffic

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


class _Crash(Exception):
    pass


def _writer_run(writer) -> BaseException | None:
    """Run a writer on a loop of its own until it stops by itself; the exception it died of."""
    box: dict[str, BaseException] = {}

    def main() -> None:
        try:
            asyncio.run(writer.run(asyncio.Event()))
        except BaseException as exc:
            box["exc"] = exc

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the writer did not stop"
    return box.get("exc")


def test_two_collectors_and_a_writer_dying_before_its_ack_count_everything_once(operator_setup, team, tmp_path,
                                                                                 settings):
    from django.utils import timezone

    from accounts_service.services import account_create, user_create, user_creds_get
    from billing.models import MeterSample
    from billing.selectors import usage_totals
    from broker_gateway.ledger_writer import Writer
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import running_node_urls
    from tests.fleet import running_fleet

    settings.METERING_ACK_WAIT = 1.0  # the dead writer's batch comes again after a second
    with running_fleet(2, tmp_path / "fleet") as (nodes, _):
        account = account_create(actor=PLATFORM, team=team, name="twice", plan="free")
        fleet_reconcile()
        creds = user_creds_get(user=user_create(actor=PLATFORM, account=account, name="app"))
        urls = running_node_urls()
        # Two collectors, no writers yet: both forward every event and their own polls into the stream.
        first = CollectorThread(urls, writers=0).start()
        second = CollectorThread(urls, writers=0).start()
        try:
            assert _traffic(nodes[0], nodes[1], creds, n=150) == 150
        finally:
            first.stop()  # each one's last poll, then everything it holds acknowledged by the stream
            second.stop()
        # (each heard the events of the clients of the node it is connected to; the other node's come over the route
        # once it has the collector's interest, so a count of one of them may be short: the ledger check is exact)
        assert first.collector.events + second.collector.events > 0
        assert not MeterSample.objects.exists()

        class DiesAfterCommit(Writer):
            def _write(self, fetched):
                written = super()._write(fetched)
                if written:
                    raise _Crash(f"after committing {written} samples, before the acknowledgement")
                return written

        total = settings.METERING_PARTITIONS
        exc = _writer_run(DiesAfterCommit(urls, partitions=range(total), total=total))
        assert isinstance(exc, _Crash)
        partial = MeterSample.objects.count()
        assert partial  # its batch (of whichever accounts) is in the ledger, and still unacknowledged in the stream

        # A new collector with writers: the dead writer's batch comes again, then everything else.
        third = CollectorThread(urls).start()
        try:
            third.collector.drain(timeout=60)
        finally:
            third.stop()
        now = timezone.now()
        totals = usage_totals(account_public_key=account.public_key, start=now - datetime.timedelta(hours=1), end=now)
        assert (totals["sent_msgs"], totals["sent_bytes"]) == (150, 150 * M)
        assert (totals["received_msgs"], totals["received_bytes"]) == (150, 150 * M)
        assert totals["peak"] >= 1
        assert MeterSample.objects.count() > partial
