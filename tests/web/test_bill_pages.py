"""The month to date and the estimate in the console (account overview, Usage tab line by line, team page, invoices
page), the invoice page's exact lines after a plan change, and the plans' connection-hour and GiB-hour terms. The
figures are those of tests/bill_month.py, on its fixed clock."""

from __future__ import annotations

import re

import pytest

from billing.invoices import invoice_generate
from billing.models import Plan
from billing.selectors import plan_terms_key
from tests.bill_month import NOV, clock_set, month_build

pytestmark = pytest.mark.django_db


@pytest.fixture
def month(shared, monkeypatch):
    clock_set(monkeypatch)
    return month_build(shared)


def _between(page: str, start: str, end: str = "</tr>") -> str:
    part = page[page.index(start):]
    return part[:part.index(end)]


def test_the_account_page_shows_the_month_to_date_and_the_estimate(owner_client, month):
    page = owner_client.get(f"/accounts/{month.app.public_key}/").content.decode()
    assert 'id="bill-to-date">USD 19.05<' in page and 'id="bill-estimate">USD 37.38<' in page
    assert "so far in November 2026" in page and f'href="/accounts/{month.app.public_key}/usage/#bill"' in page


def test_the_usage_tab_shows_the_bill_line_by_line(owner_client, month):
    page = owner_client.get(f"/accounts/{month.app.public_key}/usage/").content.decode()
    assert 'id="bill-lines"' in page
    dev_conns = _between(page, 'id="bill-connections-2"')
    assert "developer, Nov 1 00:00" in dev_conns and "300 connection-hours" in dev_conns
    assert "150 connection-hours" in dev_conns and "0.10 / 1,000 connection-hours" in dev_conns
    assert 'title="1,080,000 connection-seconds"' in dev_conns  # the exact figure
    pro_base = _between(page, 'id="bill-base-3"')
    assert "Pro plan" in pro_base and "10 days" in pro_base and ">16.33<" in pro_base and ">34.30<" in pro_base
    pro_data = _between(page, 'id="bill-data-4"')
    assert "5 GiB" in pro_data and "7 GiB" in pro_data and ">0.00<" in pro_data and ">0.36<" in pro_data
    total = _between(page, "<th colspan=\"5\">Total (USD)</th>")
    assert ">19.05<" in total and ">37.38<" in total


def test_the_team_page_and_the_invoices_page_show_the_teams_month(owner_client, shared, month):
    for url in (f"/teams/{shared.slug}/", f"/teams/{shared.slug}/invoices/"):
        page = owner_client.get(url).content.decode()
        assert 'id="team-bill-to-date">USD 23.95<' in page and 'id="team-bill-estimate">USD 42.28<' in page, url
        app = _between(page, f'id="team-bill-{month.app.public_key}"')
        assert ">app</a>" in app and ">19.05<" in app and ">37.38<" in app
        gone = _between(page, f'id="team-bill-{month.gone_key}"')
        assert "gone" in gone and "deleted" in gone and "<a " not in gone and gone.count(">4.90<") == 2


def test_the_invoice_page_shows_each_plans_part_and_exact_figures(owner_client, shared, month):
    invoice, _ = invoice_generate(team=shared, start=NOV)
    page = owner_client.get(f"/teams/{shared.slug}/invoices/{invoice.number}/").content.decode()
    lines = {line.position: line for line in invoice.lines.all()}
    dev_base = _between(page, 'id="line-1"')
    assert "Developer plan, account app" in dev_base and "Nov 1 00:00 to Nov 10 00:00" in dev_base
    assert "9 days" in dev_base and "0.300000 months" in dev_base and "9.00 / month" in dev_base
    assert ">2.70<" in dev_base and lines[1].amount_cents == 270
    dev_conns = _between(page, 'id="line-2"')
    assert "Connection-hours on Developer, account app" in dev_conns and "150.000000 connection-hours" in dev_conns
    assert 'title="540,000 connection-seconds"' in dev_conns and ">0.02<" in dev_conns
    assert f'id="invoice-total">{invoice.total_cents // 100}.{invoice.total_cents % 100:02d}<' in page
    assert invoice.total_cents == sum(line.amount_cents for line in lines.values())


def test_the_plans_show_their_connection_hour_and_storage_terms(owner_client, shared):
    account = shared.accounts.get()
    page = owner_client.get(f"/accounts/{account.public_key}/plan/").content.decode()
    pro = _between(page, 'id="plan-pro-connection-hours"', "</td>")
    assert "500,000 included, then $0.08 / 1,000" in pro
    assert "7,300 included, then $0.20 / 1,000" in _between(page, 'id="plan-pro-storage"', "</td>")
    assert "unlimited" in _between(page, 'id="plan-free-connection-hours"', "</td>")
    assert "each plan for the time the account held it within the month" in page
    confirm = owner_client.get(f"/accounts/{account.public_key}/plan/pro/").content.decode()
    rate = re.search(r'id="compare-connection_cents_per_1000_hours">(.*?)</tr>', confirm, re.S).group(1)
    assert "not billed" in rate and "$0.08" in rate and "billed past the allowance" in rate
    hours = re.search(r'id="compare-connection_hours">(.*?)</tr>', confirm, re.S).group(1)
    assert "unlimited" in hours and "500,000" in hours
    # The priced terms the owner confirms include the new ones: staff changing them makes a confirmation stale.
    key = plan_terms_key(Plan.objects.get(name="pro"))
    Plan.objects.filter(name="pro").update(connection_cents_per_1000_hours=9)
    assert owner_client.post(f"/accounts/{account.public_key}/plan/pro/", {"terms": key}).status_code == 409


def test_staff_edit_the_new_prices_in_the_admin_and_a_price_without_an_allowance_is_refused(client):
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.create_superuser(username="root", email="root@example.com", password="x")
    client.force_login(staff)
    pro = Plan.objects.get(name="pro")
    url = f"/admin/billing/plan/{pro.pk}/change/"
    form = client.get(url).content.decode()
    for field in ("connection_hours", "connection_cents_per_1000_hours", "storage_gib_hours",
                  "storage_cents_per_1000_gib_hours"):
        assert f'name="{field}"' in form, field
    fields = [f.name for f in Plan._meta.fields if f.name not in ("id", "name")]
    data = {f: getattr(pro, f) for f in fields} | {"connection_cents_per_1000_hours": 12, "storage_gib_hours": 50}
    assert client.post(url, data).status_code == 302
    pro.refresh_from_db()
    assert (pro.connection_cents_per_1000_hours, pro.storage_gib_hours) == (12, 50)
    refused = client.post(url, data | {"connection_hours": -1})
    assert refused.status_code == 200 and "an unlimited connection_hours leaves nothing to price" in \
        refused.content.decode()
    pro.refresh_from_db()
    assert pro.connection_hours == 500_000
