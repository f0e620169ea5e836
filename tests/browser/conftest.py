"""Headless Chromium for the browser tests, screenshots under test-artifacts/browser/, and a loud banner when a
browser test could not run.

We drive Debian's ``chromium`` package through Playwright's ``executable_path``; Playwright's own browser
downloads are never used (tests have no network). Without the binary (or without an importable playwright) a
browser test is skipped with the reason, and the end of the session says which ones and how to fix it; under CI
(``CI`` set, or ``NATSCTL_REQUIRE_BROWSER`` as ``.ci/run`` sets it) it fails instead, so a machine that lost its
Chromium cannot pass silently.
https://playwright.dev/python/docs/api/class-browsertype#browser-type-launch-option-executable-path
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fleet import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# NATSCTL_CHROMIUM points the tests at another Chromium build (or at a missing path, to check the skip).
CHROMIUM = os.environ.get("NATSCTL_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"  # git-ignored (test-artifacts/)
INSTALL_CHROMIUM = ("install Debian's chromium (`sudo apt-get install --no-install-recommends chromium`; "
                    "`bash .ci/run` does it when run as root) or set NATSCTL_CHROMIUM to a Chromium binary")
INSTALL_PLAYWRIGHT = "install the dev extras (`make install`, or `.venv/bin/pip install -e '.[dev]'`)"

_not_run = pytest.StashKey[list[tuple[str, str, str]]]()  # node id, reason, fix
_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


def browser_unavailable() -> tuple[str, str] | None:
    """Why no browser test can run here and how to fix it, or None when Chromium and playwright are both present."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium binary at {CHROMIUM}", INSTALL_CHROMIUM
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"playwright does not import ({exc})", INSTALL_PLAYWRIGHT
    return None


# ------------------------------------------------------------------------------------------------
# Hooks: skip (or fail under CI) before any fixture starts a fleet; the banner; the outcome for screenshots
# ------------------------------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Checked here rather than in a fixture so a test that cannot run does not first start its nats-server fleet.
    if "browser" not in getattr(item, "fixturenames", ()) and item.get_closest_marker("browser") is None:
        return
    unavailable = browser_unavailable()
    if unavailable is None:
        return
    reason, fix = unavailable
    item.config.stash.setdefault(_not_run, []).append((item.nodeid, reason, fix))
    if os.environ.get("CI") or os.environ.get("NATSCTL_REQUIRE_BROWSER"):
        pytest.fail(f"browser test cannot run under CI: {reason}; {fix}", pytrace=False)
    pytest.skip(f"browser test not run: {reason}; {fix}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    not_run = config.stash.get(_not_run, [])
    if not not_run:
        return
    tr = terminalreporter
    tr.write_sep("!", f"{len(not_run)} BROWSER TEST{'S' if len(not_run) > 1 else ''} NOT RUN", red=True, bold=True)
    for nodeid, reason, _ in not_run:
        tr.write_line(f"  {nodeid}: {reason}", red=True, bold=True)
    for fix in dict.fromkeys(fix for _, _, fix in not_run):
        tr.write_line(f"  To run {'them' if len(not_run) > 1 else 'it'}: {fix}.", bold=True)
    tr.write_sep("!", red=True, bold=True)


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Chromium, per test: Playwright's sync API keeps an event loop marked running on this thread while
    it is open, and Django refuses ORM calls from such a thread (database fixtures set up before it and torn down
    after it, so it must not outlive the test). Async code in a test runs in another thread meanwhile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """This test's screenshot folder, emptied first so a run never shows a previous run's pictures."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def page(browser: Browser, artifacts_dir: Path, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context and page; on failure, a screenshot of where the test stopped (failed.png)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        yield page
    finally:
        report = request.node.stash.get(_reports, {}).get("call")
        if report is not None and report.failed:
            # Best effort: a crashed page must not hide the test's own failure behind a teardown error.
            with contextlib.suppress(Exception):
                page.screenshot(path=artifacts_dir / "failed.png", full_page=True)
        context.close()


@pytest.fixture
def screenshot(page: Page, artifacts_dir: Path) -> Callable[[str], Path]:
    """``screenshot("step")`` saves the whole page as ``NN-step.png`` in this test's artifacts folder."""
    counter = itertools.count(1)

    def take(step: str) -> Path:
        path = artifacts_dir / f"{next(counter):02d}-{step}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take
