"""The ledger writers a collector runs: processes (production), or threads of the collector's own process (tests);
and the entry point of its ngs.usage responder processes.

Writer ``i`` of ``W`` owns the partitions ``k`` with ``k % W == i``; a dead writer process is started again on the
collector's next poll (its batch in hand was never acknowledged, so the stream delivers it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
from collections.abc import Sequence

log = logging.getLogger(__name__)


def partitions_of(writer: int, writers: int, partitions: int) -> list[int]:
    return [k for k in range(partitions) if k % writers == writer]


def _process_main(urls: list[str], partitions: list[int], total: int, counter, ready) -> None:
    """A writer process (spawned: Django set up from the inherited environment); SIGTERM or SIGINT stop it after
    the batch in hand."""
    import signal

    import django

    django.setup()
    from broker_gateway.ledger_writer import Writer

    class _Ready:
        def set(self) -> None:
            ready.set()

    def counted(n: int) -> None:
        with counter.get_lock():
            counter.value += n

    writer = Writer(urls, partitions=partitions, total=total, on_ingested=counted)  # (database reads: no loop yet)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        watch = asyncio.create_task(orphan_watch(stop))
        await writer.run(stop, ready=_Ready())
        watch.cancel()

    asyncio.run(main())


async def orphan_watch(stop: asyncio.Event) -> None:
    """Sets ``stop`` once the process that started this one is gone (a collector killed with SIGKILL cannot stop its
    children: they notice by being handed to another parent)."""
    import os

    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(1.0)
        if os.getppid() != parent:
            log.warning("the collector that started this process is gone: stopping")
            stop.set()


def usage_process_main(urls: list[str], ready) -> None:
    """An ngs.usage responder process (broker_gateway.usage_responder.process_serve), spawned: this module imports
    no model, so the child can load it before Django is set up."""
    import django

    django.setup()
    from broker_gateway.usage_responder import process_serve

    process_serve(urls, ready)


class _ThreadWriter:
    def __init__(self, writer) -> None:
        self.writer = writer
        self.loop = asyncio.new_event_loop()
        self.stop_event = asyncio.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"ledger-writer-{writer.partitions}", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.writer.run(self.stop_event, ready=self.ready))
        self.loop.close()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop_event.set)
            self.thread.join(timeout=60)


class WriterPool:
    def __init__(self, urls: Sequence[str], *, writers: int, partitions: int, mode: str = "process") -> None:
        self.urls, self.writers, self.partitions, self.mode = list(urls), writers, partitions, mode
        self._ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or connections of ours
        self._counter = self._ctx.Value("q", 0)
        self._procs: list[tuple[list[int], object, object]] = []  # (partitions, process, ready event)
        self._threads: list[_ThreadWriter] = []
        if mode == "thread":  # made here, outside any event loop (they read their user from the database)
            from broker_gateway.ledger_writer import Writer

            self._threads = [_ThreadWriter(Writer(self.urls, partitions=parts, total=partitions))
                             for i in range(writers) if (parts := partitions_of(i, writers, partitions))]

    @property
    def ingested(self) -> int:
        if self.mode == "thread":
            return sum(t.writer.ingested for t in self._threads)
        return self._counter.value

    def start(self) -> None:
        for t in self._threads:
            t.thread.start()
        if self.mode == "process":
            self._procs = [self._spawn(parts) for i in range(self.writers)
                           if (parts := partitions_of(i, self.writers, self.partitions))]

    def _spawn(self, parts: list[int]):
        ready = self._ctx.Event()
        proc = self._ctx.Process(target=_process_main, args=(self.urls, parts, self.partitions, self._counter, ready),
                                 name=f"ledger-writer-{'-'.join(map(str, parts))}", daemon=True)
        proc.start()
        return parts, proc, ready

    def wait_ready(self, timeout: float) -> bool:
        events = [t.ready for t in self._threads] + [ready for _, _, ready in self._procs]
        return all(e.wait(timeout) for e in events)

    def watch(self) -> None:
        """Start again a writer process that died (its unacknowledged batch comes again)."""
        for i, (parts, proc, _) in enumerate(self._procs):
            if not proc.is_alive():
                log.warning("ledger writer of partitions %s exited (%s); starting it again", parts, proc.exitcode)
                self._procs[i] = self._spawn(parts)

    def stop(self) -> None:
        for t in self._threads:
            t.stop()
        for _, proc, _ in self._procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: the writer finishes the batch in hand
        for _, proc, _ in self._procs:
            proc.join(timeout=60)
            if proc.is_alive():
                with contextlib.suppress(Exception):
                    proc.kill()
                proc.join(timeout=5)
