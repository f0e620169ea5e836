"""``manage.py metering_writer``: one ledger writer, for partitions of the metering stream, in the foreground.

The collector starts its writers itself (``METERING_WRITERS``); this runs one elsewhere, e.g. beside a collector
started with ``METERING_WRITERS=0``, or a second set on another machine (writers of the same partitions share its
consumer: each batch goes to one of them, and the ledger counts every sample once either way).
"""

from __future__ import annotations

import asyncio
import signal
import time

from django.core.management.base import BaseCommand, CommandError

from broker_gateway.ledger_stream import partitions_count
from broker_gateway.ledger_writer import Writer
from broker_gateway.selectors import running_node_urls


class Command(BaseCommand):
    help = "Consume partitions of the METERING stream into the usage ledger."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--partitions", default="", help="comma-separated partitions (default: all of them)")
        parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a running node")

    def handle(self, *args, partitions: str, wait: float, **options) -> None:
        total = partitions_count()
        try:
            mine = [int(p) for p in partitions.split(",") if p.strip()] or list(range(total))
        except ValueError as exc:
            raise CommandError(f"--partitions takes numbers from 0 to {total - 1}, comma-separated") from exc
        if any(not 0 <= p < total for p in mine):
            raise CommandError(f"--partitions takes numbers from 0 to {total - 1} (METERING_PARTITIONS={total})")
        deadline = time.monotonic() + wait
        while not (urls := running_node_urls()):
            if time.monotonic() > deadline:
                raise CommandError("no running node to connect to (manage.py fleet scale 3, then fleet run)")
            time.sleep(0.5)
        writer = Writer(urls, partitions=mine, total=total)
        self.stdout.write(f"metering writer: partitions {', '.join(map(str, mine))} of {total}")

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
            await writer.run(stop)

        asyncio.run(main())
        self.stdout.write(f"metering writer: stopped after {writer.ingested} new samples")
