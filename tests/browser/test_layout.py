"""In headless Chromium at a desktop (1440 px) and a phone (390 px) width: no tenant or staff page scrolls
sideways, and every action button in the page is on screen and not clipped by a scrolling box; a screenshot of each
page goes to ``var/screenshots/<width>/<page>.png`` for a person to look at (never compared pixel by pixel).

We chose "no horizontal scrolling at all": a button counts as hidden when any ancestor that clips its overflow
(``overflow-x`` other than ``visible``) cuts it, so a table in a ``.wide`` scroll box does not pass by hiding its
actions behind the scroll. Tables stack or wrap instead (``static/css/app.css``)."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from tests.fleet import ROOT
from tests.natsproc import free_port

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = ROOT / "var" / "screenshots"  # git-ignored (var/)
WIDTHS = [1440, 390]

# What the page measures: the document's width against the viewport's, and each visible button or button-looking
# link in <main> that sticks out of the viewport or out of an ancestor that clips (scrolls or hides) its overflow.
MEASURE = """
() => {
  const vw = window.innerWidth;
  const label = (el) => (el.innerText || el.value || el.getAttribute('aria-label') || el.outerHTML).trim().slice(0, 40);
  const cut = [];
  for (const el of document.querySelectorAll('main button, main a.button, main input[type=submit]')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;            // not rendered (a closed <details>, display:none)
    if (r.left < -0.5 || r.right > vw + 0.5) { cut.push(`${label(el)}: ${r.left.toFixed(0)}..${r.right.toFixed(0)} `
                                                        + `outside the viewport 0..${vw}`); continue; }
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX === 'visible') continue;
      const b = a.getBoundingClientRect();
      if (r.left < b.left - 0.5 || r.right > b.right + 0.5) {
        cut.push(`${label(el)}: ${r.left.toFixed(0)}..${r.right.toFixed(0)} clipped by <${a.tagName.toLowerCase()} `
                 + `class="${a.className}"> ${b.left.toFixed(0)}..${b.right.toFixed(0)}`);
        break;
      }
    }
  }
  // What sticks out (the innermost such elements), to say what to fix when the page is too wide.
  const out = [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > vw + 0.5);
  const culprits = out.filter((el) => !out.some((o) => o !== el && el.contains(o))).slice(0, 3)
    .map((el) => `<${el.tagName.toLowerCase()} class="${el.className}"> ends at `
                 + `${el.getBoundingClientRect().right.toFixed(0)}: ${label(el)}`);
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: vw, cut, culprits};
}
"""


@pytest.fixture
def console(operator_setup, client) -> dict:
    """A staff person who owns two teams with accounts, users, exports, imports, members and API tokens, another
    tenant whose advertised exports fill the catalog, and four nodes in two regions (rows only: nothing runs
    them); the session cookie and the paths to visit. Made before the browser opens (no ORM while it is)."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts_service import services
    from accounts_service.models import Account
    from accounts_service.rights import PLATFORM
    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import node_add

    people = get_user_model().objects
    owner = people.create_user(username="ada.lovelace@analytical-engines.example.com", is_staff=True,
                               email="ada.lovelace@analytical-engines.example.com")
    team = services.team_create(name="Analytical Engines International", actor=owner, default_account=True)
    for n in range(3):
        member = people.create_user(username=f"member{n}.with.a.long.address@analytical-engines.example.com",
                                    email=f"member{n}.with.a.long.address@analytical-engines.example.com")
        services.team_member_add(team=team, user=member, role="owner" if n == 0 else "member")
    account = Account.objects.get(team=team)
    services.account_create(team=team, name="telemetry-ingest-production-eu", actor=owner,
                            description="every sensor of every factory")
    users = [services.user_create(account=account, actor=owner, name=f"service-{n}-with-a-rather-long-name",
                                  pub_allow=[f"orders.{n}.>", "telemetry.factory.*.sensor.*.reading"],
                                  sub_allow=["_INBOX.>", f"orders.{n}.replies.>"], tags=["env:prod", "tier:gold"],
                                  expires_at=timezone.now() + dt.timedelta(days=30))
             for n in range(3)]
    services.user_create(account=account, actor=owner, name="byo-key",
                         public_key=_user_key(), pub_allow=["byo.>"])
    services.export_create(account=account, actor=owner, name="orders-stream", subject="orders.>", type="stream",
                           advertise=True, description="every order, as it is placed")
    services.export_create(account=account, actor=owner, name="pricing-service", subject="pricing.*.quote",
                           type="service", private=True, advertise=True, account_token_position=2)
    services.api_token_create(user=owner, actor=owner, name="ci-deploys-from-the-main-branch")
    services.api_token_create(user=owner, actor=owner, name="read-only-dashboards", scope="read", team=team,
                              expires_in_days=90)

    other = people.create_user(username="grace@globex.example.com", email="grace@globex.example.com")
    globex = services.team_create(name="Globex", actor=other, default_account=True)
    globex_account = Account.objects.get(team=globex)
    for name in ("weather", "stock-quotes-with-a-long-name", "shipping-events"):
        services.export_create(account=globex_account, actor=PLATFORM, name=name, subject=f"{name}.>",
                               type="stream", advertise=True, description=f"{name} for anyone who imports it")
    services.import_create(account=account, actor=owner, exporter_public_key=globex_account.public_key,
                           subject="weather.>", local_subject="imported.weather.>")

    # Billing: the account on a plan that prices every dimension, and this month's invoice so far (its widest table).
    from billing.invoices import invoice_generate
    from billing.selectors import period_start

    services.account_plan_set(account=account, actor=PLATFORM, plan="pro")
    invoice, _ = invoice_generate(team=team, start=period_start())

    # Nodes last: an account's change is pushed to every node, and these have no process to answer.
    for name, region in (("us-east-1", "us-east"), ("us-east-2", "us-east"), ("eu-west-1", "eu-west"),
                         ("eu-west-2", "eu-west")):
        node = node_add(name=name, region=region, ports={"client_port": free_port(), "cluster_port": free_port(),
                                                         "monitoring_port": free_port(), "leafnode_port": free_port()})
        BrokerNode.objects.filter(pk=node.pk).update(
            observed_state=BrokerNode.Observed.HEALTHY, last_healthy_at=timezone.now(), version="2.11.0",
            last_error="nats-server exited with status 1: could not listen on port 4222: address already in use")

    # A node operator the owner is a member of, running one of the nodes (the Payouts page shows it).
    from broker_gateway.node_operators import node_operator_assign, operator_create, operator_member_add

    racks = operator_create(slug="acme-racks", name="Acme Racks and Rented Servers of the Northern Region",
                            actor=PLATFORM)
    operator_member_add(operator=racks, username=owner.get_username(), actor=PLATFORM)
    node_operator_assign(node=BrokerNode.objects.get(name="eu-west-2"), operator=racks, actor=PLATFORM)

    client.force_login(owner)
    acc, user = account.public_key, users[0].public_key
    return {
        "session": client.cookies["sessionid"].value,
        "pages": {
            "dashboard": "/dashboard/",
            "account": f"/accounts/{acc}/",
            "exports": f"/accounts/{acc}/exports/",
            "imports": f"/accounts/{acc}/imports/",
            "usage": f"/accounts/{acc}/usage/",
            "plan": f"/accounts/{acc}/plan/",
            "account-edit": f"/accounts/{acc}/edit/",
            "user": f"/accounts/{acc}/users/{user}/",
            "connect": f"/connect/?account={acc}",
            "catalog": "/catalog/",
            "teams": "/teams/",
            "team": f"/teams/{team.slug}/",
            "invoices": f"/teams/{team.slug}/invoices/",
            "invoice": f"/teams/{team.slug}/invoices/{invoice.number}/",
            "tokens": "/tokens/",
            "diagnose": "/diagnose/",
            "staff-fleet": "/staff/fleet/",
            "staff-tenants": "/staff/tenants/",
            "staff-tenant": f"/staff/tenants/{team.slug}/",
            "staff-out-of-sync": "/staff/out-of-sync/",
            "payouts": "/payouts/",
            "staff-payouts": "/staff/payouts/",
            "staff-operators": "/staff/operators/",
        },
    }


def _user_key() -> str:
    from operators import nkeys

    return nkeys.generate(nkeys.KeyType.USER).public_key


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_scrolls_sideways_and_every_button_shows(console, live_server, browser, width):
    folder = SCREENSHOTS / str(width)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    context = browser.new_context(viewport={"width": width, "height": 900})
    context.set_default_timeout(15_000)
    context.add_cookies([{"name": "sessionid", "value": console["session"], "url": live_server.url}])
    page = context.new_page()
    problems = {}
    try:
        for name, path in console["pages"].items():
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.ok, f"{name} {path}: {response and response.status}"
            if name == "diagnose":  # the verdict and its checklist are the page's widest part
                page.locator("main select[name=pick]").select_option(index=1)
                page.locator("main button[type=submit]").first.click()
                page.wait_for_load_state()
            page.screenshot(path=folder / f"{name}.png", full_page=True)
            got = page.evaluate(MEASURE)
            found = [f"page is {got['scrollWidth']} px wide in a {got['innerWidth']} px window",
                     *got["culprits"]] if got["scrollWidth"] > got["innerWidth"] else []
            found += got["cut"]
            if found:
                problems[f"{name} ({path})"] = found
    finally:
        context.close()
    assert not problems, f"at {width} px (screenshots in {folder}):\n" + "\n".join(
        f"  {page_}: " + "\n      ".join(found) for page_, found in problems.items())
