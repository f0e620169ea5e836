"""Progress bars: drawn on a terminal, silent when the stream is not one (logs, CI, pipes)."""

from __future__ import annotations

import io

import pytest

from core.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_drawn_on_a_terminal_with_the_total_it_learns():
    out = _Terminal()
    with progress_bar("pushing accounts", unit="accounts", stream=out) as progress:
        progress(0, 10_000)
        progress(2_000, 10_000)
        progress(10_000, 10_000)
    text = out.getvalue()
    assert "pushing accounts" in text and "/10.0k" in text and "%" in text


def test_nothing_is_written_when_the_stream_is_not_a_terminal():
    out = io.StringIO()
    with progress_bar("pushing accounts", stream=out) as progress:
        for done in range(0, 101, 10):
            progress(done, 100)
    assert out.getvalue() == ""


@pytest.mark.django_db
def test_seeds_rewrap_reports_each_seed(operator_setup, settings):
    import base64

    from operators.keyring import keyring_get, keyring_reset
    from operators.models import SealedSeed
    from operators.sealing import generate_key_spec
    from operators.services import seeds_rewrap

    stored = SealedSeed.objects.count()
    assert stored
    old = ",".join(f"{kid}:{base64.b64encode(k).decode()}" for kid, k in keyring_get().keys.items())
    settings.SEED_ENCRYPTION_KEYS = f"{generate_key_spec('k-next')},{old}"
    keyring_reset()
    seen: list[tuple[int, int]] = []
    try:
        assert seeds_rewrap(progress=lambda done, total: seen.append((done, total))) == stored
    finally:
        keyring_reset()
    assert seen == [(i, stored) for i in range(1, stored + 1)]
