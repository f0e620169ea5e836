"""Monthly invoices: which accounts a team held on which plan and for how long (a plan change mid-month bills each
plan for its part), a line per priced dimension, idempotent generation, the payment provider interface, and the CSV
and JSON documents. The pricing arithmetic itself is tested in tests/unit/test_pricing.py."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.test import override_settings

from accounts_service.models import PlanSpan
from accounts_service.rights import PLATFORM
from billing import invoices
from billing.models import Invoice, InvoiceLine, Plan
from billing.payments import PaymentOutcome
from billing.services import usage_hours_add
from billing.units import GIB

pytestmark = pytest.mark.django_db

NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DEC = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
AFTER_GRACE = DEC + dt.timedelta(hours=2)


def _create(team, name, plan, at=NOV - dt.timedelta(days=3)):
    """An account on ``plan`` since ``at`` (default: before November, so held all month)."""
    from accounts_service.services import account_create

    account = account_create(actor=PLATFORM, team=team, name=name, plan=plan)
    PlanSpan.objects.filter(account_public_key=account.public_key).update(at=at)
    return account


def _used(account, hour, sent, received=0, connection_seconds=0.0, storage_byte_seconds=0):
    usage_hours_add(account_public_key=account.public_key, hour=hour, sent_bytes=sent, received_bytes=received,
                    connection_seconds=connection_seconds, storage_byte_seconds=storage_byte_seconds)


@pytest.fixture
def plans(operator_setup):
    """Pro prices data, connection-hours and GiB-hours; Developer only connection-hours; Free nothing."""
    Plan.objects.filter(name="pro").update(data_bytes=10 * GIB, base_price_cents=4900, overage_cents_per_gib=40,
                                           connection_hours=1000, connection_cents_per_1000_hours=8,
                                           storage_gib_hours=100, storage_cents_per_1000_gib_hours=20)
    Plan.objects.filter(name="developer").update(data_bytes=1 * GIB, base_price_cents=900, overage_cents_per_gib=0,
                                                 connection_hours=500, connection_cents_per_1000_hours=10,
                                                 storage_gib_hours=-1, storage_cents_per_1000_gib_hours=0)


def _rows(invoice):
    return [(line.kind, line.account_name, line.plan, line.measured, line.included, line.billed, line.unit_cents,
             line.amount_cents) for line in invoice.lines.all()]


def test_periods_are_calendar_months():
    assert invoices.period_next(NOV) == DEC
    assert invoices.period_next(DEC) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert invoices.period_previous(NOV) == dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def test_an_hour_row_belongs_to_the_period_its_hour_starts_in_for_invoices_quotas_and_usage():
    """Rows are keyed by their hour's start and periods are [start, end): the hour starting at ``end`` is the
    next period's, for the invoice, the month's allowance and a usage window alike."""
    from billing.bills import segment_usage
    from billing.selectors import month_used_bytes, usage_document, usage_totals

    key = "A" + "B" * 55
    for hour, sent in ((NOV - dt.timedelta(hours=1), 1), (NOV, 10), (DEC - dt.timedelta(hours=1), 100), (DEC, 1000)):
        usage_hours_add(account_public_key=key, hour=hour, sent_bytes=sent)
    assert segment_usage(account_public_key=key, first=NOV, stop=DEC).data_bytes == 110
    assert usage_totals(account_public_key=key, start=NOV, end=DEC)["sent_bytes"] == 110
    assert month_used_bytes(account_public_key=key, now=DEC) == 0  # December has not started using anything yet
    document = usage_document(account_public_key=key, window="1h", plan="", data_bytes=-1, used_bytes=0, now=DEC)
    assert document["sent"]["bytes"] == 100  # the last hour of November, not the first of December too

def test_many_accounts_summed_in_one_query_as_each_alone(django_assert_num_queries):
    from billing.selectors import usage_totals, usage_totals_by_account

    keys = ["A" + c * 55 for c in "BCD"]
    for i, key in enumerate(keys[:2], start=1):
        for hour in (NOV - dt.timedelta(hours=1), NOV, NOV + dt.timedelta(hours=5), DEC):
            usage_hours_add(account_public_key=key, hour=hour, sent_bytes=i * 10, received_msgs=i,
                            connection_seconds=i * 1.25, storage_byte_seconds=i * 7, peak_connections=i)
    with django_assert_num_queries(1):
        grouped = usage_totals_by_account(account_public_keys=keys, start=NOV, end=DEC)
    assert grouped == {key: usage_totals(account_public_key=key, start=NOV, end=DEC) for key in keys}
    assert grouped[keys[1]]["sent_bytes"] == 40 and grouped[keys[2]]["sent_bytes"] == 0


def test_invoice_lines_per_priced_dimension_for_a_whole_month(plans, team):
    pro = _create(team, "orders", "pro")
    dev = _create(team, "tooling", "developer")
    free = _create(team, "sandbox", "free")
    _used(pro, NOV + dt.timedelta(days=3), 8 * GIB, 4 * GIB + GIB // 2,  # 12.5 GiB: 2.5 over
          connection_seconds=1_000 * 3600 + 0.4, storage_byte_seconds=150 * GIB * 3600)
    _used(pro, NOV + dt.timedelta(days=4), 0, connection_seconds=500 * 3600 + 0.2)  # 500 h + 0.6 s past 1,000 h
    _used(pro, DEC + dt.timedelta(hours=1), 50 * GIB)  # December's: not on November's invoice
    _used(dev, NOV + dt.timedelta(days=4), 3 * GIB, connection_seconds=499 * 3600)  # data over, but not priced
    invoice, created = invoices.invoice_generate(team=team, start=NOV)
    assert created and invoice.number == f"NC-202611-{team.pk:06d}" and invoice.currency == "USD"
    month = 30 * 86400
    assert _rows(invoice) == [
        ("base", "orders", "pro", month, 0, month, 4900, 4900),
        ("data", "orders", "pro", 12 * GIB + GIB // 2, 10 * GIB, 2 * GIB + GIB // 2, 40, 100),
        # the ledger's float seconds, summed, become whole connection-seconds once: 0.4 + 0.2 rounds to 1
        ("connections", "orders", "pro", 1_500 * 3600 + 1, 1_000 * 3600, 500 * 3600 + 1, 8, 4),
        ("storage", "orders", "pro", 150 * GIB * 3600, 100 * GIB * 3600, 50 * GIB * 3600, 20, 1),
        ("base", "tooling", "developer", month, 0, month, 900, 900),
        ("connections", "tooling", "developer", 499 * 3600, 500 * 3600, 0, 10, 0),
        ("base", "sandbox", "free", month, 0, month, 0, 0),
    ]
    lines = list(invoice.lines.all())
    assert [str(line.quantity) for line in lines[:4]] == ["1.000000", "2.500000", "500.000278", "50.000000"]
    assert invoice.total_cents == sum(line.amount_cents for line in lines) == 5905
    assert invoice.status == Invoice.Status.OPEN
    assert free.public_key in {line.account_public_key for line in lines}
    assert lines[2].description == "Connection-hours on Pro, account orders"


def test_a_plan_change_mid_month_bills_each_plan_for_its_part(plans, team):
    """Developer until 16 November 00:30, Pro from then (1,297,800 and 1,294,200 of November's 2,592,000 seconds).
    Each plan's base price and allowances are prorated by its seconds; each hour's usage goes to the plan held in
    it, the hour of the change to the new one."""
    from accounts_service.services import account_plan_set

    account = _create(team, "app", "developer")
    account_plan_set(actor=PLATFORM, account=account, plan="pro")
    change = NOV + dt.timedelta(days=15, minutes=30)
    PlanSpan.objects.filter(account_public_key=account.public_key, plan="pro").update(at=change)
    _used(account, NOV + dt.timedelta(days=2), GIB, connection_seconds=300 * 3600)  # on Developer
    _used(account, NOV + dt.timedelta(days=15), 7 * GIB, connection_seconds=600 * 3600)  # 00:00, the change's hour
    invoice, _ = invoices.invoice_generate(team=team, start=NOV)
    dev, pro = 1_297_800, 1_294_200
    assert _rows(invoice) == [
        ("base", "app", "developer", dev, 0, dev, 900, 451),  # 450.625
        # 500 h a month prorated: 901,250 s; 178,750 s past it at 10 c / 1,000 h is 0.4965 c
        ("connections", "app", "developer", 300 * 3600, 901_250, 178_750, 10, 0),
        ("base", "app", "pro", pro, 0, pro, 4900, 2447),  # 2446.597...
        # 10 GiB prorated: 5,361,252,580 B; 2,154,940,188 B past it at 40 c / GiB is 80.28 c
        ("data", "app", "pro", 7 * GIB, 5_361_252_580, 2_154_940_188, 40, 80),
        # 1,000 h prorated: 1,797,500 s; 362,500 s past it at 8 c / 1,000 h is 0.806 c
        ("connections", "app", "pro", 600 * 3600, 1_797_500, 362_500, 8, 1),
        ("storage", "app", "pro", 0, 193_005_092_864_000, 0, 20, 0),
    ]
    lines = list(invoice.lines.all())
    assert [(line.starts_at, line.ends_at) for line in lines] == [(NOV, change)] * 2 + [(change, DEC)] * 4
    assert [str(line.quantity) for line in lines[:4]] == ["0.500694", "49.652778", "0.499306", "2.006944"]
    assert invoice.total_cents == sum(line.amount_cents for line in lines) == 451 + 2447 + 80 + 1
    # The plan held at the month's end is no longer billed for the whole month: that would have been 4900 + 84.
    doc = invoices.invoice_document(invoice)
    assert [line["start"] for line in doc["lines"]][::2] == ["2026-11-01T00:00:00Z", "2026-11-16T00:30:00Z",
                                                             "2026-11-16T00:30:00Z"]


def test_accounts_deleted_during_the_period_are_billed_for_their_days_and_later_ones_are_not(plans, team):
    from accounts_service.services import account_create, account_delete

    gone = _create(team, "gone", "pro", at=NOV + dt.timedelta(days=2))
    account_delete(actor=PLATFORM, account=gone)
    PlanSpan.objects.filter(account_public_key=gone.public_key, plan="").update(at=NOV + dt.timedelta(days=8))
    old = _create(team, "old", "pro")
    account_delete(actor=PLATFORM, account=old)
    PlanSpan.objects.filter(account_public_key=old.public_key).update(at=NOV - dt.timedelta(days=5))
    late = account_create(actor=PLATFORM, team=team, name="late", plan="pro")  # created in December (its span is now)
    PlanSpan.objects.filter(account_public_key=late.public_key).update(at=DEC + dt.timedelta(days=1))
    invoice, _ = invoices.invoice_generate(team=team, start=NOV)
    base = [(line.account_name, line.plan, line.billed, line.amount_cents)
            for line in invoice.lines.filter(kind="base")]
    assert base == [("gone", "pro", 6 * 86400, 980)]  # 6 of 30 days of 4900


def test_generation_is_idempotent_and_waits_for_the_grace_period(plans, team, other_team):
    _create(team, "orders", "pro")
    _create(other_team, "shop", "free")
    assert invoices.invoices_generate(now=DEC + dt.timedelta(minutes=30)) == 0  # late data may still land
    assert invoices.invoices_generate(now=AFTER_GRACE) == 2
    assert invoices.invoices_generate(now=AFTER_GRACE) == 0
    assert invoices.invoices_generate(now=AFTER_GRACE + dt.timedelta(days=3)) == 0
    assert Invoice.objects.count() == 2 and InvoiceLine.objects.count() == 4 + 1  # Pro: base and 3 priced; Free: base
    free = Invoice.objects.get(team=other_team)
    assert free.total_cents == 0 and free.status == Invoice.Status.PAID and free.paid_at is not None
    paid = Invoice.objects.get(team=team)
    assert paid.status == Invoice.Status.OPEN and paid.provider == "manual"
    assert paid.provider_reference == f"bank transfer quoting {paid.number}"


def test_teams_without_accounts_on_a_plan_get_no_invoice(operator_setup, team):
    from accounts_service.services import account_create

    account_create(actor=PLATFORM, team=team, name="operator-managed")  # no plan: the operator's own tooling
    assert invoices.invoices_generate(now=AFTER_GRACE) == 0
    assert not Invoice.objects.exists()


class RecordingProvider:
    """A payment provider that charges at once (like a card on file) and remembers what it was asked."""

    name = "recording"
    asked: list[str] = []
    fail = False

    def payment_request(self, invoice):
        if RecordingProvider.fail:
            raise ConnectionError("provider unreachable")
        RecordingProvider.asked.append(invoice.number)
        return PaymentOutcome(status="paid", reference=f"ch_{invoice.number}")


@override_settings(BILLING_PAYMENT_PROVIDER="tests.services.test_invoices.RecordingProvider")
def test_the_payment_provider_is_asked_once_and_again_after_a_failure(plans, team):
    _create(team, "orders", "pro")
    RecordingProvider.asked, RecordingProvider.fail = [], True
    assert invoices.invoices_generate(now=AFTER_GRACE) == 1
    invoice = Invoice.objects.get()
    assert invoice.status == Invoice.Status.OPEN and invoice.provider == ""  # kept, to be asked again
    RecordingProvider.fail = False
    invoices.invoices_generate(now=AFTER_GRACE)
    invoices.invoices_generate(now=AFTER_GRACE)
    invoice.refresh_from_db()
    assert RecordingProvider.asked == [invoice.number]
    assert (invoice.status, invoice.provider, invoice.provider_reference) == ("paid", "recording",
                                                                              f"ch_{invoice.number}")


def test_staff_mark_an_invoice_paid(plans, team):
    _create(team, "orders", "pro")
    invoices.invoices_generate(now=AFTER_GRACE)
    invoice = invoices.invoice_mark_paid(invoice=Invoice.objects.get(), reference="wire 123")
    assert invoice.status == "paid" and invoice.provider_reference == "wire 123" and invoice.paid_at


def test_json_and_csv_documents(plans, team):
    pro = _create(team, "orders", "pro")
    _used(pro, NOV + dt.timedelta(days=3), 11 * GIB)
    invoice, _ = invoices.invoice_generate(team=team, start=NOV)
    doc = invoices.invoice_document(invoice)
    assert doc["period"] == {"start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"}
    assert doc["total_cents"] == 4940 and doc["currency"] == "USD"
    assert [(line["kind"], line["quantity"], line["quantity_unit"], line["unit"], line["amount_cents"])
            for line in doc["lines"]] == [
        ("base", "1.000000", "months", "month", 4900), ("data", "1.000000", "GiB", "GiB", 40),
        ("connections", "0.000000", "connection-hours", "1,000 connection-hours", 0),
        ("storage", "0.000000", "GiB-hours", "1,000 GiB-hours", 0)]
    data = doc["lines"][1]
    assert (data["measure_unit"], data["measured"], data["included"], data["billed"]) == (
        "byte", 11 * GIB, 10 * GIB, GIB)
    assert (data["start"], data["end"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    rows = list(csv.DictReader(io.StringIO(invoices.invoice_csv(invoice))))
    assert [row["kind"] for row in rows] == ["base", "data", "connections", "storage", "total"]
    assert sum(int(row["amount_cents"]) for row in rows[:-1]) == int(rows[-1]["amount_cents"]) == 4940
    assert rows[1]["measured"] == str(11 * GIB) and rows[1]["account"] == pro.public_key
    assert rows[1]["quantity"] == "1.000000" and rows[1]["unit_cents"] == "40"


def test_an_invoice_is_final_once_issued(plans, team):
    pro = _create(team, "orders", "pro")
    invoice, _ = invoices.invoice_generate(team=team, start=NOV)
    _used(pro, NOV + dt.timedelta(days=3), 30 * GIB)  # arrives after issue
    again, created = invoices.invoice_generate(team=team, start=NOV)
    assert not created and again.pk == invoice.pk and again.total_cents == 4900


def test_plan_edits_reach_the_accounts_on_the_plan(plans, team):
    from billing.plans import limits_follow, plan_accounts_apply

    follows = _create(team, "follows", "pro")
    custom = _create(team, "custom", "pro")
    from accounts_service.services import account_update

    custom = account_update(actor=PLATFORM, account=custom, limits={"conn": 10, "subs": 500})
    pro = Plan.objects.get(name="pro")
    before = pro.account_limits()
    assert limits_follow(current={**before, "conn": 10}, before=before, after={**before, "conn": 5}) == {"conn": 5}
    assert limits_follow(current={**before, "conn": 10}, before=before, after={**before, "conn": 99}) == {}
    pro.conn, pro.subs = 3000, 200
    pro.save()
    assert plan_accounts_apply(plan_name="pro", before=before, account_ids=[follows.pk, custom.pk]) == 2
    follows.refresh_from_db(), custom.refresh_from_db()
    assert (follows.conn, follows.subs) == (3000, 200)  # at the old allowance: the new one
    assert (custom.conn, custom.subs) == (10, 200)  # its own lower conn stays; subs above the new ceiling drops
    assert '"conn":3000' in _payload(follows.jwt)


def _payload(jwt: str) -> str:
    import base64

    part = jwt.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()



def test_saving_a_plan_in_the_admin_re_signs_its_accounts(plans, team, django_capture_on_commit_callbacks):
    from billing.plans import plan_save

    account = _create(team, "orders", "pro")
    pro = Plan.objects.get(name="pro")
    pro.leaf = 7
    with django_capture_on_commit_callbacks(execute=True):
        plan_save(plan=pro)
    account.refresh_from_db()
    assert account.leaf == 7 and '"leaf":7' in _payload(account.jwt)
    version = account.version
    pro.title = "Pro (renamed)"  # no limit changed: nobody is re-signed
    with django_capture_on_commit_callbacks(execute=True):
        plan_save(plan=pro)
    account.refresh_from_db()
    assert account.version == version


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://evil\",\"pay\")", "+1+2", "-2+3", "@SUM(A1:A9)"])
def test_csv_cells_a_spreadsheet_would_run_are_neutralised(plans, team, name):
    account = _create(team, name, "pro")
    invoice, _ = invoices.invoice_generate(team=team, start=NOV)
    rows = list(csv.DictReader(io.StringIO(invoices.invoice_csv(invoice))))
    cells = [value for row in rows for value in row.values()]
    assert not [c for c in cells if c and c[0] in "=+-@"], cells  # nothing a spreadsheet would evaluate
    assert rows[0]["account_name"] == f"'{name}" and rows[0]["account"] == account.public_key
    assert int(rows[-1]["amount_cents"]) == invoice.total_cents  # numbers stay numbers
