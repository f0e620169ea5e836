"""``manage.py collector``: meter every account's traffic from the fleet's system events into the ledger."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from broker_gateway.collector import Collector
from broker_gateway.export_meter import ExportMeter
from broker_gateway.selectors import running_node_urls


class Command(BaseCommand):
    help = "Ingest $SYS.ACCOUNT.*.CONNECT/DISCONNECT/SERVER.CONNS and STATZ polls into the usage ledger."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--poll", type=float, default=settings.METERING_POLL_SECONDS,
                            help="seconds between STATZ polls of every node")
        parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a running node")
        parser.add_argument("--export-poll", type=float, default=settings.EXPORT_USE_POLL_SECONDS,
                            help="seconds between SUBSZ polls measuring export use (0: do not measure it)")

    def handle(self, *args, poll: float, wait: float, export_poll: float, **options) -> None:
        deadline = time.monotonic() + wait
        while not (urls := running_node_urls()):
            if time.monotonic() > deadline:
                raise CommandError("no running node to connect to (manage.py fleet scale 3, then fleet run)")
            time.sleep(0.5)
        collector = Collector(urls, poll_seconds=poll)
        self.stdout.write(f"collector: metering {', '.join(urls)} (STATZ every {poll:g} s)")
        # Export use (SUBSZ counters, broker_gateway/export_meter.py) on a thread of its own: its requests wait
        # for every node's reply and must not hold up the event loop that takes the system events.
        meter_stop, meter = threading.Event(), None
        if export_poll > 0:
            meter = threading.Thread(target=ExportMeter(urls).run, args=(meter_stop,),
                                     kwargs={"poll_seconds": export_poll}, name="export-meter", daemon=True)
            meter.start()

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await collector.run(stop)

        try:
            asyncio.run(main())
        finally:
            meter_stop.set()
            if meter is not None:
                meter.join(timeout=30)
        self.stdout.write(f"collector: stopped after {collector.ingested} new samples")
