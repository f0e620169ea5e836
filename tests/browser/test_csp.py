"""In headless Chromium, under the console's Content-Security-Policy: the console's pages and the Swagger UI raise
no violation, and what app.js took over from inline handlers still works (data-confirm asks before a submit,
data-autosubmit submits the connect page's account picker)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.web.conftest import PASSWORD, person

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "csp@example.com"
# Added to every page before its own scripts (Playwright's init scripts are not subject to the page's CSP).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


@pytest.fixture
def tenant(operator_setup) -> dict[str, str]:
    """A verified person with a team (its default account) and an API token; made before the browser opens, since
    the ORM may not be called while it is."""
    from accounts_service import services
    from accounts_service.models import Account

    owner = person(EMAIL)
    team = services.team_create(name="Acme", actor=owner, default_account=True)
    services.api_token_create(user=owner, actor=owner, name="ci")
    return {"account": Account.objects.get(team=team).public_key}


@pytest.fixture
def watched(page: Page) -> Iterator[tuple[Page, list[str]]]:
    """The page, and the CSP complaints it printed to the console (Chromium prints one per refusal)."""
    complaints: list[str] = []
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", lambda m: complaints.append(m.text) if "Content Security Policy" in m.text else None)
    yield page, complaints


def _violations(page: Page, complaints: list[str]) -> list[str]:
    return complaints + page.evaluate("window.__csp || []")


def _log_in(page: Page, base: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/login/")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.locator("main button[type=submit]").click()
    expect(page).to_have_url(f"{base}/dashboard/")


def test_console_and_api_docs_raise_no_csp_violation(tenant, live_server, watched, screenshot):
    from playwright.sync_api import expect

    page, complaints = watched
    base, account = live_server.url, tenant["account"]

    _log_in(page, base)
    seen = {}
    for path in ("/dashboard/", f"/accounts/{account}/", f"/accounts/{account}/usage/", "/tokens/", "/connect/",
                 "/accounts/ANOTHERONE/", "/admin/login/"):
        page.goto(f"{base}{path}")
        page.wait_for_load_state("networkidle")
        seen[path] = _violations(page, complaints)
        complaints.clear()
        screenshot(path.strip("/").replace("/", "-")[:40] or "home")

    # --- data-autosubmit: picking an account reloads the connect page for it ---------------------
    page.goto(f"{base}/connect/")
    page.select_option("select[name=account]", account)
    expect(page).to_have_url(re.compile(rf"/connect/\?account={account}$"))
    expect(page.locator("main h1")).to_contain_text("Connect to default")

    # --- the Swagger UI renders its operations from the schema -----------------------------------
    page.goto(f"{base}/api/docs/")
    expect(page.locator(".opblock").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    seen["/api/docs/"] = _violations(page, complaints)
    screenshot("api-docs")
    assert {path: v for path, v in seen.items() if v} == {}


def test_data_confirm_asks_before_submitting(tenant, live_server, watched):
    from playwright.sync_api import expect

    page, complaints = watched
    base = live_server.url
    _log_in(page, base)
    page.goto(f"{base}/tokens/")
    revoke = page.get_by_role("button", name="Revoke")
    asked: list[str] = []

    def answer(accept: bool):
        def handler(dialog):
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return handler

    page.once("dialog", answer(False))
    revoke.click()
    expect(revoke).to_be_visible()  # refused: still there, nothing posted
    assert asked == ["Revoke this token? Programs using it stop working."]
    assert page.url == f"{base}/tokens/" and page.locator(".badge-revoked").count() == 0

    page.once("dialog", answer(True))
    revoke.click()
    expect(page.locator(".badge-revoked")).to_be_visible()
    assert len(asked) == 2
    assert _violations(page, complaints) == []
