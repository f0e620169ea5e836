"""Billing in the dashboard: usage charts (hourly for 24 h and 7 d, daily for 30 d), the quota meter and the
80/90/100 % banners, choosing a plan, and the team's invoices with their CSV and JSON downloads."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.utils import timezone

from accounts_service import services
from accounts_service.models import Account, AuditEvent, PlanSpan, TeamMembership
from accounts_service.rights import PLATFORM
from billing import metering
from billing.invoices import invoice_generate
from billing.models import Plan, QuotaNotice
from billing.quotas import quota_evaluate
from billing.selectors import period_start, plan_terms_key, usage_series
from billing.services import usage_hours_add
from core.templatetags.units import iec
from tests.web.conftest import person

pytestmark = pytest.mark.django_db





@pytest.fixture
def account(shared) -> Account:
    return Account.objects.get(team=shared)



def _hour(hours_ago: int) -> dt.datetime:
    return metering.hour_floor(timezone.now()) - dt.timedelta(hours=hours_ago)


def test_series_are_zero_filled_hourly_and_daily(account):
    now = timezone.now()
    usage_hours_add(account_public_key=account.public_key, hour=_hour(0), sent_msgs=3, sent_bytes=300)
    usage_hours_add(account_public_key=account.public_key, hour=_hour(30), received_msgs=2,
                             received_bytes=50)
    usage_hours_add(account_public_key=account.public_key, hour=_hour(24 * 40), sent_bytes=9)  # too old
    day = usage_series(account_public_key=account.public_key, chart="24h", now=now)
    week = usage_series(account_public_key=account.public_key, chart="7d", now=now)
    month = usage_series(account_public_key=account.public_key, chart="30d", now=now)
    assert (len(day), len(week), len(month)) == (24, 168, 30)
    assert day[-1]["sent_bytes"] == 300 and sum(b["received_bytes"] for b in day) == 0  # 30 h ago is outside
    assert sum(b["received_bytes"] for b in week) == 50 and sum(b["sent_bytes"] for b in week) == 300
    assert sum(b["sent_bytes"] + b["received_bytes"] for b in month) == 350
    assert all(b["start"].hour == 0 for b in month) and month[-1]["start"].date() == now.date()


def test_usage_page_shows_the_charts_and_the_quota_meter(owner_client, account):
    Plan.objects.filter(name="free").update(data_bytes=1000)
    usage_hours_add(account_public_key=account.public_key, hour=_hour(1), sent_msgs=7, sent_bytes=400,
                             received_msgs=7, received_bytes=450)
    page = owner_client.get(f"/accounts/{account.public_key}/usage/").content.decode()
    for chart in ("24h", "7d", "30d"):
        assert f'id="chart-{chart}"' in page
    assert len(re.findall(r'<rect class="sent"', page)) == 24 + 168 + 30
    assert "sent 7 msgs / 400 B, received 7 msgs / 450 B" in page  # the bar's tooltip
    assert "(85.0%)" in page and 'class="meter warn"' in page
    assert 'id="conns-current">0<' in page


def test_usage_page_gives_exact_totals_with_a_last_hour_window_iec_units_and_chart_axes(owner_client, account):
    Plan.objects.filter(name="free").update(data_bytes=3 * 1024**3)
    usage_hours_add(account_public_key=account.public_key, hour=_hour(0), sent_msgs=3, sent_bytes=1_572_864,
                             received_msgs=2, received_bytes=10)
    usage_hours_add(account_public_key=account.public_key, hour=_hour(5), sent_msgs=1, sent_bytes=1)
    page = owner_client.get(f"/accounts/{account.public_key}/usage/").content.decode()
    last_hour = page[page.index('id="totals-1h"'):]
    last_hour = last_hour[:last_hour.index("</tr>")]
    assert "<td>3</td>" in last_hour and "1,572,864 B" in last_hour and "10 B" in last_hour
    day = page[page.index('id="totals-24h"'):]
    assert "1,572,865 B" in day[:day.index("</tr>")]  # both hours, to the byte
    assert "of 3.00 GiB" in page and "(3,221,225,472 B)" in page and " GB" not in page and " MB" not in page
    chart = page[page.index('id="chart-24h"'):]
    assert 'class="chart-y' in chart and "1.50 MiB" in chart and "UTC</span>" in chart


def test_iec_and_exact_byte_filters():
    from core.templatetags.units import exact_bytes, iec

    assert [iec(v) for v in (0, 1023, 1024, 1_572_864, 5 * 1024**3, -2048, "x")] == [
        "0 B", "1,023 B", "1.00 KiB", "1.50 MiB", "5.00 GiB", "-2.00 KiB", ""]
    assert exact_bytes(1_572_864) == "1,572,864 B" and exact_bytes(None) == ""


def test_banners_at_80_90_and_100_percent(owner_client, account):
    Plan.objects.filter(name="free").update(data_bytes=1000)
    usage_hours_add(account_public_key=account.public_key, hour=_hour(1), sent_bytes=820)
    quota_evaluate(account=account)
    page = owner_client.get(f"/accounts/{account.public_key}/").content.decode()
    assert "This account has used 80% of its monthly data" in page
    assert "80% data" in owner_client.get("/dashboard/").content.decode()
    usage_hours_add(account_public_key=account.public_key, hour=_hour(1), sent_bytes=180)  # 820 -> 1000
    quota_evaluate(account=account)
    page = owner_client.get(f"/accounts/{account.public_key}/usage/").content.decode()
    assert "This account has used all of its monthly data" in page
    assert "New connections are refused until you upgrade" in page  # the free plan has no overage
    assert QuotaNotice.objects.filter(account_public_key=account.public_key).count() == 3


def _terms(name: str) -> dict:
    """What the confirmation page's form posts: the priced terms the owner saw."""
    return {"terms": plan_terms_key(Plan.objects.get(name=name))}


def test_owner_switches_plan_and_the_suspension_ends(owner_client, account, django_capture_on_commit_callbacks):
    Plan.objects.filter(name="free").update(data_bytes=1000)
    usage_hours_add(account_public_key=account.public_key, hour=_hour(1), sent_bytes=5000)
    quota_evaluate(account=account)
    account.refresh_from_db()
    assert account.suspended_at is not None
    page = owner_client.get(f"/accounts/{account.public_key}/plan/").content.decode()
    assert 'id="plan-free" class="current-plan"' in page and "Switch to Pro" in page
    assert f'href="/accounts/{account.public_key}/plan/pro/"' in page  # a link to the confirmation, not a POST
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(f"/accounts/{account.public_key}/plan/pro/", _terms("pro"))
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.plan == "pro" and account.suspended_at is None  # billing re-evaluated on commit
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PLAN_CHANGE, target=account.public_key).exists()


def test_members_see_plans_but_cannot_switch(client, shared, account):
    member = person("member@example.com")
    services.team_member_add(team=shared, user=member, role=TeamMembership.Role.MEMBER)
    client.force_login(member)
    page = client.get(f"/accounts/{account.public_key}/plan/").content.decode()
    assert "Only the team's owners change plans" in page and "Switch to" not in page
    confirm = client.get(f"/accounts/{account.public_key}/plan/pro/").content.decode()
    assert "Only the team's owners change plans" in confirm and "Confirm: switch" not in confirm
    response = client.post(f"/accounts/{account.public_key}/plan/pro/", _terms("pro"), follow=True)
    assert "only the team&#x27;s owners may do this" in response.content.decode()
    assert Account.objects.get(pk=account.pk).plan == "free"


def test_a_full_plan_is_refused_with_the_reason(owner_client, shared, account):
    services.account_create(actor=PLATFORM, team=shared, name="second", plan="free")
    dev = services.account_create(actor=PLATFORM, team=shared, name="dev", plan="developer")
    page = owner_client.get(f"/accounts/{dev.public_key}/plan/").content.decode()
    assert "team is full" in page
    response = owner_client.post(f"/accounts/{dev.public_key}/plan/free/", _terms("free"), follow=True)
    assert "the Free plan allows 2 accounts per team" in response.content.decode()
    assert Account.objects.get(pk=dev.pk).plan == "developer"
    confirm = owner_client.get(f"/accounts/{dev.public_key}/plan/free/").content.decode()
    assert "all the Free accounts that plan allows" in confirm and "Confirm: switch" not in confirm


def test_plan_confirmation_shows_both_prices_and_limits_and_only_its_post_switches(owner_client, account):
    free, pro = Plan.objects.get(name="free"), Plan.objects.get(name="pro")
    Plan.objects.filter(name="pro").update(base_price_cents=4900, overage_cents_per_gib=25)
    pro.refresh_from_db()
    url = f"/accounts/{account.public_key}/plan/pro/"

    # The old one-click form (a POST to the plan page) now only opens the confirmation.
    opened = owner_client.post(f"/accounts/{account.public_key}/plan/", {"plan": "pro"})
    assert opened.status_code == 302 and opened["Location"] == url
    assert Account.objects.get(pk=account.pk).plan == "free"

    page = owner_client.get(url).content.decode()
    assert Account.objects.get(pk=account.pk).plan == "free"  # a GET changes nothing
    assert 'id="price-current">$0.00<' in page and 'id="price-new">$49.00<' in page
    price = re.search(r'id="compare-base_price_cents">(.*?)</tr>', page, re.S).group(1)
    assert "$0.00" in price and "$49.00" in price and "costs more" in price
    overage = re.search(r'id="compare-overage_cents_per_gib">(.*?)</tr>', page, re.S).group(1)
    assert "none (suspends at 100%)" in overage and "$0.25" in overage
    data = re.search(r'id="compare-data_bytes">(.*?)</tr>', page, re.S).group(1)
    assert iec(free.data_bytes) in data and (iec(pro.data_bytes) if pro.data_bytes >= 0 else "unlimited") in data
    conn = re.search(r'id="compare-conn">(.*?)</tr>', page, re.S).group(1)
    assert f"{free.conn:,}" in conn and ("more" in conn or free.conn == pro.conn)
    assert "Confirm: switch to Pro" in page and f'name="terms" value="{plan_terms_key(pro)}"' in page

    # Terms edited by staff since the page was opened: nothing switches, the new terms are shown.
    stale = owner_client.post(url, {"terms": "0:0:0"})
    assert stale.status_code == 409 and b"terms changed since you opened this page" in stale.content
    assert Account.objects.get(pk=account.pk).plan == "free"

    assert owner_client.post(url, _terms("pro")).status_code == 302
    assert Account.objects.get(pk=account.pk).plan == "pro"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.PLAN_CHANGE, target=account.public_key).count() == 1

    # The current plan and an unknown one have no confirmation.
    assert owner_client.get(url)["Location"] == f"/accounts/{account.public_key}/plan/"
    assert owner_client.get(f"/accounts/{account.public_key}/plan/platinum/").status_code == 404


def test_invoices_list_detail_and_downloads(owner_client, shared, account):
    Plan.objects.filter(name="free").update(base_price_cents=250)
    PlanSpan.objects.filter(account_public_key=account.public_key).update(at=period_start() - dt.timedelta(days=1))
    invoice, _ = invoice_generate(team=shared, start=period_start())
    listing = owner_client.get(f"/teams/{shared.slug}/invoices/").content.decode()
    assert invoice.number in listing and "USD 2.50" in listing
    detail = owner_client.get(f"/teams/{shared.slug}/invoices/{invoice.number}/").content.decode()
    assert 'id="invoice-total">2.50<' in detail and "Free plan, account default" in detail
    got = owner_client.get(f"/teams/{shared.slug}/invoices/{invoice.number}/download.csv")
    assert got["Content-Type"].startswith("text/csv")
    assert got["Content-Disposition"] == f'attachment; filename="{invoice.number}.csv"'
    rows = list(csv.DictReader(io.StringIO(got.content.decode())))
    assert [(r["kind"], r["amount_cents"]) for r in rows] == [("base", "250"), ("total", "250")]
    doc = json.loads(owner_client.get(f"/teams/{shared.slug}/invoices/{invoice.number}/download.json").content)
    assert doc["number"] == invoice.number and doc["total_cents"] == 250 and len(doc["lines"]) == 1
    assert owner_client.get(f"/teams/{shared.slug}/invoices/{invoice.number}/download.pdf").status_code == 404
    assert owner_client.get(f"/teams/{shared.slug}/invoices/NC-000000-000000/").status_code == 404
