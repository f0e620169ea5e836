"""Monthly invoices: which accounts a team held on which plan, base and overage lines, idempotent generation,
the payment provider interface, and the CSV and JSON documents."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

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


def _create(team, name, plan):
    from accounts_service.services import account_create

    account = account_create(actor=PLATFORM, team=team, name=name, plan=plan)
    PlanSpan.objects.filter(account_public_key=account.public_key).update(at=NOV + dt.timedelta(days=2))
    return account


def _used(account, hour, sent, received=0):
    usage_hours_add(account_public_key=account.public_key, hour=hour, sent_bytes=sent,
                             received_bytes=received)


@pytest.fixture
def plans(operator_setup):
    Plan.objects.filter(name="pro").update(data_bytes=10 * GIB, base_price_cents=4900, overage_cents_per_gib=40)
    Plan.objects.filter(name="developer").update(data_bytes=1 * GIB, base_price_cents=900, overage_cents_per_gib=0)


def test_overage_rounds_up_to_a_thousandth_of_a_gib_and_cents_half_up():
    assert invoices.overage_gib(5, 10) == 0
    assert invoices.overage_gib(5, -1) == 0
    assert invoices.overage_gib(10 * GIB + 1, 10 * GIB) == Decimal("0.001")
    assert invoices.overage_gib(12 * GIB + GIB // 2, 10 * GIB) == Decimal("2.500")
    assert invoices.cents(Decimal("2.500"), 40) == 100
    assert invoices.cents(Decimal("0.001"), 40) == 0
    assert invoices.cents(Decimal("0.013"), 40) == 1  # 0.52 cents rounds half up to 1


def test_periods_are_calendar_months():
    assert invoices.period_next(NOV) == DEC
    assert invoices.period_next(DEC) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert invoices.period_previous(NOV) == dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def test_an_hour_row_belongs_to_the_period_its_hour_starts_in_for_invoices_quotas_and_usage():
    """Rows are keyed by their hour's start and periods are [start, end): the hour starting at ``end`` is the
    next period's, for the invoice, the month's allowance and a usage window alike."""
    from billing.selectors import month_used_bytes, usage_document, usage_totals

    key = "A" + "B" * 55
    for hour, sent in ((NOV - dt.timedelta(hours=1), 1), (NOV, 10), (DEC - dt.timedelta(hours=1), 100), (DEC, 1000)):
        usage_hours_add(account_public_key=key, hour=hour, sent_bytes=sent)
    assert invoices.used_bytes_between(account_public_key=key, start=NOV, end=DEC) == 110
    assert usage_totals(account_public_key=key, start=NOV, end=DEC)["sent_bytes"] == 110
    assert month_used_bytes(account_public_key=key, now=DEC) == 0  # December has not started using anything yet
    document = usage_document(account_public_key=key, window="1h", plan="", data_bytes=-1, used_bytes=0, now=DEC)
    assert document["sent"]["bytes"] == 100  # the last hour of November, not the first of December too

def test_invoice_lines_base_and_overage(plans, team):
    pro = _create(team, "orders", "pro")
    dev = _create(team, "tooling", "developer")
    free = _create(team, "sandbox", "free")
    _used(pro, NOV + dt.timedelta(days=3), 8 * GIB, 4 * GIB + GIB // 2)  # 12.5 GiB: 2.5 over
    _used(pro, DEC + dt.timedelta(hours=1), 50 * GIB)  # December's: not on November's invoice
    _used(dev, NOV + dt.timedelta(days=4), 3 * GIB)  # over, but the developer plan has no overage: no line
    invoice, created = invoices.invoice_generate(team=team, start=NOV)
    assert created and invoice.number == f"NC-202611-{team.pk:06d}"
    rows = [(line.kind, line.account_name, line.plan, line.quantity, line.unit_cents, line.amount_cents)
            for line in invoice.lines.all()]
    assert rows == [
        ("base", "orders", "pro", Decimal("1.000"), 4900, 4900),
        ("overage", "orders", "pro", Decimal("2.500"), 40, 100),
        ("base", "tooling", "developer", Decimal("1.000"), 900, 900),
        ("base", "sandbox", "free", Decimal("1.000"), 0, 0),
    ]
    assert invoice.total_cents == 5900 and invoice.status == Invoice.Status.OPEN
    overage = invoice.lines.get(kind="overage")
    assert (overage.used_bytes, overage.allowance_bytes) == (12 * GIB + GIB // 2, 10 * GIB)
    assert free.public_key in {line.account_public_key for line in invoice.lines.all()}


def test_accounts_deleted_during_the_period_are_billed_and_later_ones_are_not(plans, team):
    from accounts_service.services import account_create, account_delete, account_plan_set

    gone = _create(team, "gone", "pro")
    account_delete(actor=PLATFORM, account=gone)
    PlanSpan.objects.filter(account_public_key=gone.public_key, plan="").update(at=NOV + dt.timedelta(days=9))
    old = _create(team, "old", "pro")
    account_delete(actor=PLATFORM, account=old)
    PlanSpan.objects.filter(account_public_key=old.public_key).update(at=NOV - dt.timedelta(days=5))
    late = account_create(actor=PLATFORM, team=team, name="late", plan="pro")  # created in December (its span is now)
    PlanSpan.objects.filter(account_public_key=late.public_key).update(at=DEC + dt.timedelta(days=1))
    upgraded = _create(team, "upgraded", "developer")
    account_plan_set(actor=PLATFORM, account=upgraded, plan="pro")  # the plan at the period's end is billed
    PlanSpan.objects.filter(account_public_key=upgraded.public_key, plan="pro").update(at=NOV + dt.timedelta(days=20))
    invoice, _ = invoices.invoice_generate(team=team, start=NOV)
    assert [(line.account_name, line.plan) for line in invoice.lines.all()] == [("gone", "pro"), ("upgraded", "pro")]


def test_generation_is_idempotent_and_waits_for_the_grace_period(plans, team, other_team):
    _create(team, "orders", "pro")
    _create(other_team, "shop", "free")
    assert invoices.invoices_generate(now=DEC + dt.timedelta(minutes=30)) == 0  # late data may still land
    assert invoices.invoices_generate(now=AFTER_GRACE) == 2
    assert invoices.invoices_generate(now=AFTER_GRACE) == 0
    assert invoices.invoices_generate(now=AFTER_GRACE + dt.timedelta(days=3)) == 0
    assert Invoice.objects.count() == 2 and InvoiceLine.objects.count() == 2
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
    assert [(line["kind"], line["quantity"], line["amount_cents"]) for line in doc["lines"]] == [
        ("base", "1.000", 4900), ("overage", "1.000", 40)]
    rows = list(csv.DictReader(io.StringIO(invoices.invoice_csv(invoice))))
    assert [row["kind"] for row in rows] == ["base", "overage", "total"]
    assert sum(int(row["amount_cents"]) for row in rows[:-1]) == int(rows[-1]["amount_cents"]) == 4940
    assert rows[1]["used_bytes"] == str(11 * GIB) and rows[1]["account"] == pro.public_key


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
