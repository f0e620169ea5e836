"""The one way tests wait: poll a condition until it holds, or fail after a deadline saying what was awaited and
what was last seen. No fixed sleeps anywhere (DEVELOPERS.md: never a sleep where a condition can be awaited)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


class Pending:
    """A falsy answer that says why the condition does not hold yet (shown if the wait times out)."""

    def __init__(self, detail: object) -> None:
        self.detail = detail

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return repr(self.detail)


def pending_unless(ok: bool, detail: object) -> Any:
    """``True`` when ``ok``, otherwise a ``Pending`` carrying ``detail``."""
    return True if ok else Pending(detail)


def _timed_out(timeout: float, what: str, last: object) -> AssertionError:
    seen = f": {last!r}" if isinstance(last, Pending) else ""
    return AssertionError(f"timed out after {timeout}s waiting for {what}{seen}")


def wait_for(predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll ``predicate()`` until it is truthy and return its value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, value)
        time.sleep(interval)


async def wait_for_async(predicate: Callable[[], Any], *, timeout: float = 15.0, interval: float = 0.01,
                         what: str = "condition") -> Any:
    """``wait_for`` inside an event loop: the loop keeps running (deliveries arrive) between polls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if loop.time() > deadline:
            raise _timed_out(timeout, what, value)
        await asyncio.sleep(interval)
