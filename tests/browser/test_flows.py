"""The console's interactive flows in headless Chromium, as a new user goes through them:

- bring your own key: create a user from a public key you made, download its JWT and the .creds template, pair
  the template with your seed, and connect to a real nats-server with the result;
- invitations: an owner invites by email; the invitee signs up from the link and lands in the team, and an invitee
  whose verification mail was sent again (the new link carries no invitation) accepts it on the dashboard;
- "why can't my client connect?": paste a revoked user's .creds and read the cause first.

The ORM is never used on the test's thread while the browser is open (see ``in_thread``)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from broker_gateway.nats_client import connect_creds
from operators import nkeys
from operators.creds import SEED_PLACEHOLDER
from tests.browser.test_signup_to_publish import in_thread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


def _context(browser, live_server, *, session: str | None = None, width: int = 1280, height: int = 900):
    """A fresh browser context (signed in when given a session cookie), as a new visitor's browser."""
    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    context.set_default_timeout(15_000)
    if session is not None:
        context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
    return context


def _owner_session(client, *, team_name: str | None = None):
    from django.contrib.auth import get_user_model

    from accounts_service import services

    owner = get_user_model().objects.create_user(username="ada@example.com", email="ada@example.com",
                                                 password=PASSWORD)
    team = services.team_create(name=team_name or "Acme", actor=owner, default_account=True)
    client.force_login(owner)
    return owner, team, client.cookies["sessionid"].value


# ------------------------------------------------------------------------------------------------
# Bring your own key
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def own_key_setup(operator_setup, nats_server, client) -> dict:
    """A signed-in owner whose default account a real nats-server knows. Made before the browser opens."""
    from accounts_service.models import Account
    from broker_gateway.propagation import account_jwt_send

    _, team, session = _owner_session(client)
    account = Account.objects.get(team=team)
    account_jwt_send(account=account, url=nats_server.url, timeout=5)
    return {"session": session, "account": account, "url": nats_server.url}


def test_own_key_user_gets_its_jwt_and_template_and_connects_with_its_own_seed(
        own_key_setup, live_server, browser, artifacts_dir):
    session, account, url = own_key_setup["session"], own_key_setup["account"], own_key_setup["url"]
    key = nkeys.generate(nkeys.KeyType.USER)  # made by the tenant: the platform never sees this seed

    context = _context(browser, live_server, session=session)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/accounts/{account.public_key}/users/new/")
        page.fill("input[name=name]", "edge-device")
        page.fill("textarea[name=pub_allow]", "devices.edge.>")
        page.fill("textarea[name=sub_allow]", "devices.edge.>")
        page.fill("input[name=public_key]", key.public_key)
        page.locator("main button[type=submit]", has_text="Create user").click()
        page.wait_for_url(re.compile(rf"/users/{key.public_key}/$"))
        assert "created from your public key" in page.locator("main").inner_text()
        page.screenshot(path=artifacts_dir / "01-own-key-user.png", full_page=True)
        shown_jwt = page.locator("#user-jwt").inner_text().strip()

        with page.expect_download() as got:
            page.locator("#jwt button[type=submit]", has_text="Download").first.click()
        jwt_file = Path(got.value.path()).read_text().strip()
        with page.expect_download() as got:
            page.locator("main button[type=submit]", has_text=".creds.template").click()
        template = Path(got.value.path()).read_text()
        assert got.value.suggested_filename == "edge-device.creds.template"
    finally:
        context.close()

    assert jwt_file == shown_jwt and jwt_file in template and SEED_PLACEHOLDER in template
    assert "SEED-----\nS" not in template  # no seed of any kind in what the platform hands out
    creds = template.replace(SEED_PLACEHOLDER, key.seed)

    async def round_trip() -> bytes:
        nc = await connect_creds(url, creds, name="byo-key", connect_timeout=5)
        try:
            sub = await nc.subscribe("devices.edge.temperature")
            await nc.flush()
            await nc.publish("devices.edge.temperature", b"21.5")
            return (await sub.next_msg(timeout=5)).data
        finally:
            await nc.close()

    assert in_thread(lambda: asyncio.run(round_trip())) == b"21.5"


# ------------------------------------------------------------------------------------------------
# Invitations
# ------------------------------------------------------------------------------------------------


def _mailed_link(mailoutbox, to: str, starts: str) -> str:
    for message in reversed(mailoutbox):
        if to in message.to:
            match = re.search(rf"https?://[^/\s]+({re.escape(starts)}\S*)", message.body)
            if match:
                return match.group(1)
    raise AssertionError(f"no mail to {to} with a {starts} link: {[m.subject for m in mailoutbox]}")


@pytest.fixture
def team_setup(operator_setup, client) -> dict:
    _, team, session = _owner_session(client)
    return {"session": session, "team": team}


def test_invitation_by_email_to_sign_up_and_dashboard_accept(team_setup, live_server, browser, artifacts_dir,
                                                             mailoutbox):
    team, session = team_setup["team"], team_setup["session"]
    owner_context = _context(browser, live_server, session=session)
    page = owner_context.new_page()
    try:
        page.goto(f"{live_server.url}/teams/{team.slug}/")
        for email in ("new@example.com", "later@example.com"):
            page.fill("input[name=email]", email)
            page.locator("main button[type=submit]", has_text="Send invitation").click()
            page.wait_for_load_state()
            assert f"Invitation sent to {email}" in page.locator("body").inner_text()
        page.screenshot(path=artifacts_dir / "01-invited.png", full_page=True)
    finally:
        owner_context.close()

    # The first invitee signs up from the link: the email is fixed, and verifying joins the team.
    context = _context(browser, live_server, width=390, height=844)
    page = context.new_page()
    try:
        page.goto(live_server.url + _mailed_link(mailoutbox, "new@example.com", "/invitations/"))
        page.get_by_role("link", name="Sign up as new@example.com").click()
        assert page.locator("input[name=email]").input_value() == "new@example.com"
        assert page.locator("input[name=email]").is_disabled()
        page.fill("input[name=password]", PASSWORD)
        page.locator("main button[type=submit]").click()
        page.wait_for_load_state()
        assert "Check your email" in page.locator("main").inner_text()
        page.goto(live_server.url + _mailed_link(mailoutbox, "new@example.com", "/verify/"))
        page.locator("main button[type=submit]").click()
        page.wait_for_url(re.compile(rf"/teams/{team.slug}/$"))
        assert "You joined Acme as member" in page.locator("body").inner_text()
        page.screenshot(path=artifacts_dir / "02-joined-from-the-link.png", full_page=True)
    finally:
        context.close()

    # The second signs up too, asks for a new verification mail (its link carries no invitation) and accepts the
    # invitation from the dashboard instead.
    context = _context(browser, live_server)
    page = context.new_page()
    try:
        page.goto(live_server.url + _mailed_link(mailoutbox, "later@example.com", "/invitations/"))
        page.get_by_role("link", name="Sign up as later@example.com").click()
        page.fill("input[name=password]", PASSWORD)
        page.locator("main button[type=submit]").click()
        page.wait_for_load_state()
        page.goto(f"{live_server.url}/signup/resend/")
        page.fill("input[name=email]", "later@example.com")
        page.locator("main button[type=submit]").click()
        page.wait_for_load_state()
        link = _mailed_link(mailoutbox, "later@example.com", "/verify/")
        assert "invitation=" not in link
        page.goto(live_server.url + link)
        page.locator("main button[type=submit]").click()
        page.wait_for_url(re.compile(r"/dashboard/$"))
        accept = page.get_by_role("button", name="Accept and join Acme")
        page.screenshot(path=artifacts_dir / "03-dashboard-invitation.png", full_page=True)
        accept.click()
        page.wait_for_url(re.compile(rf"/teams/{team.slug}/$"))
        assert "You joined Acme as member" in page.locator("body").inner_text()
    finally:
        context.close()

    def members() -> set[str]:
        from accounts_service.models import TeamMembership

        return set(TeamMembership.objects.filter(team_id=team.pk).values_list("user__email", flat=True))

    assert in_thread(members) == {"ada@example.com", "new@example.com", "later@example.com"}


# ------------------------------------------------------------------------------------------------
# Why can't my client connect?
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def revoked_setup(operator_setup, client) -> dict:
    """A signed-in owner and the .creds of one of their users, downloaded before the user was revoked."""
    from accounts_service import services
    from accounts_service.models import Account

    owner, team, session = _owner_session(client)
    account = Account.objects.get(team=team)
    user = services.user_create(account=account, actor=owner, name="orders-app", pub_allow=["orders.>"])
    creds = services.user_creds_download(user=user, actor=owner)
    services.user_revoke(user=user, actor=owner)
    return {"session": session, "creds": creds}


def test_diagnose_a_pasted_revoked_users_creds_names_the_revocation_first(revoked_setup, live_server, browser,
                                                                          artifacts_dir):
    session, creds = revoked_setup["session"], revoked_setup["creds"]
    context = _context(browser, live_server, session=session)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/diagnose/")
        page.fill("textarea[name=creds]", creds)
        page.fill("input[name=subject]", "orders.created")
        page.select_option("select[name=action]", "pub")
        page.locator("main button[type=submit]").first.click()
        page.wait_for_load_state()
        page.screenshot(path=artifacts_dir / "01-diagnosed.png", full_page=True)
        heading = page.locator("#diagnose-result h2").inner_text()
        verdict = page.locator("#diagnose-verdict").inner_text()
        first_check = page.locator("#diagnose-result tbody tr").first.inner_text()
        pasted = page.locator("textarea[name=creds]").input_value()
    finally:
        context.close()

    assert heading.startswith("Refused: orders-app"), heading
    assert "revoked" in verdict and "User authentication revoked" in verdict, verdict
    assert "revocation" in first_check, first_check  # the cause comes first
    assert pasted == ""  # the page never renders the pasted seed back
