"""``ngs.usage``: each account's own usage, answered over NATS from billing's selectors.

The answers are computed on a few threads of their own that keep their database connection from one answer to the
next: a new PostgreSQL connection costs ~20 ms (a backend process), a new SQLite one a read of the schema, and an
answer is a handful of indexed reads. A connection that failed is replaced before the next answer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any

import orjson
from django.db import DatabaseError, connection

from accounts_service.models import Account, NatsUser
from accounts_service.services import USAGE_EXPORT_SUBJECT, service_user_ensure, usage_service_ensure
from billing.selectors import window_parse
from billing.usage_answer import account_usage_by_key, spans_preload
from broker_gateway import nats_client
from operators import services as op_services

log = logging.getLogger(__name__)

USAGE_RESPONDER = "natsctl-usage"
USAGE_QUEUE = "ngs-usage"
ANSWER_THREADS = 4


def usage_responder_user_ensure() -> NatsUser:
    """The ``ngs`` account's user that answers ``ngs.usage.<account>`` requests."""
    return service_user_ensure(account=usage_service_ensure(), name=USAGE_RESPONDER, sub_allow=[USAGE_EXPORT_SUBJECT],
                               allow_responses=True)


def usage_answer(subject: str, payload: bytes) -> dict[str, Any]:
    """The answer to a request on ``ngs.usage.<account>``. The account token comes from the subject, which the
    servers only let an account import with its own key, so an account can only ever learn its own usage."""
    tokens = subject.split(".")
    try:
        window = window_parse(payload.decode("utf-8", errors="replace"))
    except ValueError as exc:
        window, problem = None, str(exc)
    document = None
    if len(tokens) == 3 and window is not None:
        document = account_usage_by_key(public_key=tokens[2], window=window)
    elif len(tokens) == 3 and Account.objects.filter(public_key=tokens[2]).exists():
        return {"error": problem}
    return document if document is not None else {"error": "unknown account"}


def usage_answer_db(subject: str, payload: bytes) -> dict[str, Any]:
    """``usage_answer`` on an answering thread: its connection is kept, unless a database error broke it."""
    if connection.connection is not None and connection.errors_occurred and not connection.is_usable():
        connection.close()
    try:
        return usage_answer(subject, payload)
    except DatabaseError:  # the connection may be gone (a database restart): the next answer opens a new one
        log.exception("ngs.usage: could not answer %s", subject)
        connection.close()
        return {"error": "usage is unavailable right now"}
    except Exception:  # an answer, never silence: the requester gets an error document
        log.exception("ngs.usage: could not answer %s", subject)
        return {"error": "usage is unavailable right now"}


def _thread_done(barrier: threading.Barrier) -> None:
    """Run once on every answering thread (the barrier holds each until all have one): its connection closes."""
    connection.close()
    barrier.wait(timeout=10)


class UsageResponder:
    """A platform-account connection answering ``ngs.usage.*`` in a queue group (run several collectors)."""

    def __init__(self, urls: list[str]) -> None:
        user = usage_responder_user_ensure()
        self.urls, self._jwt = urls, user.jwt
        self._sign = op_services.nonce_signer_get(user_seed=user.seed)
        self._pool = concurrent.futures.ThreadPoolExecutor(ANSWER_THREADS, thread_name_prefix="ngs-usage")
        self._nc = None

    async def start(self, error_cb=None) -> None:
        self._nc = await nats_client.connect(self.urls, user_jwt=self._jwt, sign_nonce=self._sign,
                                             name="natsctl-usage", allow_reconnect=True, max_reconnect_attempts=-1,
                                             reconnect_time_wait=0.5, error_cb=error_cb)
        loop = asyncio.get_running_loop()

        async def answer(msg) -> None:
            document = await loop.run_in_executor(self._pool, usage_answer_db, msg.subject, msg.data)
            await msg.respond(orjson.dumps(document))

        await self._nc.subscribe(USAGE_EXPORT_SUBJECT, queue=USAGE_QUEUE, cb=answer)
        await self._nc.flush()

    async def stop(self) -> None:
        if self._nc is not None:
            await self._nc.drain() if self._nc.is_connected else await self._nc.close()
        barrier = threading.Barrier(ANSWER_THREADS)
        for _ in range(ANSWER_THREADS):  # each answering thread closes its own database connection
            self._pool.submit(_thread_done, barrier)
        self._pool.shutdown(wait=True)


# ------------------------------------------------------------------------------------------------
# Responder processes (production): the answer on the connection's own thread
# ------------------------------------------------------------------------------------------------


def process_serve(urls: list[str], ready) -> None:
    """A responder process (started by ``broker_gateway.writer_pool.usage_process_main``, which sets Django up
    from the inherited environment first).

    The process exists only to answer, one request at a time, on its NATS connection's own thread: the database
    reads (~3 ms) run inside the event loop, which saves the two thread wake-ups of an answering pool (about 3 ms on
    a busy machine). Django refuses synchronous database calls in a thread with a running event loop unless told
    that blocking it is intended, which it is here and nowhere else: https://docs.djangoproject.com/en/5.2/topics/async/#envvar-DJANGO_ALLOW_ASYNC_UNSAFE
    Several processes share the queue group (``USAGE_RESPONDERS``)."""
    import os
    import signal

    user = usage_responder_user_ensure()
    sign = op_services.nonce_signer_get(user_seed=user.seed)
    try:  # every account's plan history: the first answers go in one round trip too (billing.usage_answer)
        log.info("ngs.usage responder: the plan history of %d accounts read ahead", spans_preload())
    except DatabaseError:  # (only a guess: the answers read it anyway)
        log.exception("ngs.usage responder: could not read the plan histories ahead")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # this process only: see above

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        nc = await nats_client.connect(urls, user_jwt=user.jwt, sign_nonce=sign, name="natsctl-usage",
                                       allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5)

        async def answer(msg) -> None:
            await msg.respond(orjson.dumps(usage_answer_db(msg.subject, msg.data)))

        await nc.subscribe(USAGE_EXPORT_SUBJECT, queue=USAGE_QUEUE, cb=answer)
        await nc.flush()
        ready.set()
        from broker_gateway.writer_pool import orphan_watch

        watch = asyncio.create_task(orphan_watch(stop))
        await stop.wait()
        watch.cancel()
        await nc.drain() if nc.is_connected else await nc.close()
        connection.close()

    asyncio.run(main())


class UsageResponderProcesses:
    """``count`` responder processes; one that died is started again by ``watch()``."""

    def __init__(self, urls: list[str], count: int) -> None:
        import multiprocessing

        self.urls, self.count = urls, count
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[tuple[object, object]] = []

    def _spawn(self):
        ready = self._ctx.Event()
        from broker_gateway.writer_pool import usage_process_main  # (a module the child can import before setup)

        proc = self._ctx.Process(target=usage_process_main, args=(self.urls, ready), name="ngs-usage", daemon=True)
        proc.start()
        return proc, ready

    def start(self) -> None:
        self._procs = [self._spawn() for _ in range(self.count)]

    def wait_ready(self, timeout: float) -> bool:
        return all(ready.wait(timeout) for _, ready in self._procs)

    def watch(self) -> None:
        for i, (proc, _) in enumerate(self._procs):
            if not proc.is_alive():
                log.warning("ngs.usage responder exited (%s); starting it again", proc.exitcode)
                self._procs[i] = self._spawn()

    def stop(self) -> None:
        for proc, _ in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc, _ in self._procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
