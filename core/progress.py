"""Progress bars for long operations at a terminal: on stderr when it is a TTY, silent otherwise (logs, CI, pipes).

Services take a plain ``progress(done, total)`` callable and know nothing of terminals; a command or a benchmark
makes one here. tqdm draws it: https://tqdm.github.io/docs/tqdm/
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager
from typing import IO

from tqdm import tqdm

Progress = Callable[[int, int], None]


def _is_tty(stream: IO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress_bar(desc: str, *, total: int | None = None, unit: str = "it", stream: IO | None = None):
    """A bar as a ``progress(done, total)`` callable (the total may change as the operation learns it). The bar
    is cleared at the end, so the command's own summary line follows."""
    stream = stream if stream is not None else sys.stderr
    bar = tqdm(total=total, desc=desc, unit=unit, file=stream, disable=not _is_tty(stream), leave=False,
               dynamic_ncols=True, unit_scale=True, mininterval=0.2)

    def update(done: int, total: int | None = None) -> None:
        if total is not None and total != bar.total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()
