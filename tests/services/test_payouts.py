"""Payout statements: which invoices a period collects, the bases (bytes per operator, measured use per publisher),
exact shares, idempotence held by constraints, and every refusal writing nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from accounts_service.models import AuditEvent
from accounts_service.rights import PLATFORM
from billing.models import ExportUseHour, Invoice, NodeUsageHour
from core.errors import Conflict, Forbidden, Invalid
from payouts.models import PayoutInvoice, PayoutLine, PayoutStatement

pytestmark = pytest.mark.django_db

OCT = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DEC = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
JAN = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
GRACE = dt.timedelta(hours=2)


def ports(base: int) -> dict[str, int]:
    return {"client_port": base, "cluster_port": base + 1, "monitoring_port": base + 2, "leafnode_port": base + 3,
            "gateway_port": base + 4}


def invoice(team, start, cents, *, paid_at=None, number=None):
    from billing.invoices import period_next

    return Invoice.objects.create(team=team, number=number or f"T-{start:%Y%m}-{team.pk}", period_start=start,
                                  period_end=period_next(start), total_cents=cents,
                                  status=Invoice.Status.PAID if paid_at else Invoice.Status.OPEN, paid_at=paid_at)


def carried(node, hour, sent, received=0):
    """What the ledger holds for a node and hour: tenants' traffic only (tests/services/test_traffic_ledger.py)."""
    NodeUsageHour.objects.create(node=node, hour=hour, sent_bytes=sent, received_bytes=received)


def used(exporter, importer, hour, msgs, kind="service"):
    ExportUseHour.objects.create(exporter_public_key=exporter.public_key, export_subject="weather.*",
                                 importer_public_key=importer.public_key, kind=kind, hour=hour, msgs=msgs)


@pytest.fixture
def world(operator_setup):
    from accounts_service.services import account_create, team_create
    from broker_gateway.models import NodeAssignment
    from broker_gateway.node_operators import operator_create
    from broker_gateway.nodes import node_add

    acme = operator_create(slug="acme-ops", name="Acme Hosting", actor=PLATFORM)
    n1 = node_add(name="n1", ports=ports(20000))
    n2 = node_add(name="n2", ports=ports(20010), operator=acme)
    NodeAssignment.objects.update(since=OCT)  # the nodes ran before the traffic below (dated in the past)
    teams = {name: team_create(name=name, actor=PLATFORM) for name in ("pubs", "alpha", "beta", "gamma")}
    accounts = {name: account_create(actor=PLATFORM, team=teams[name], name=f"{name}-app", plan="free")
                for name in teams}
    accounts["pubs2"] = account_create(actor=PLATFORM, team=teams["pubs"], name="pubs-other", plan="free")
    # November's traffic: 1000 bytes on the platform's node, 3000 on Acme's (and October's counts nothing).
    carried("n1", NOV + dt.timedelta(hours=5), 600, 400)
    carried("n2", NOV + dt.timedelta(days=3), 1000, 2000)
    carried("n2", OCT + dt.timedelta(days=3), 10**9)
    # Use of the publisher's export: 30 + 10 by other teams; 999 by its own team's other account (not counted).
    used(accounts["pubs"], accounts["alpha"], NOV + dt.timedelta(days=1), 30)
    used(accounts["pubs"], accounts["beta"], NOV + dt.timedelta(days=2), 10, kind="stream")
    used(accounts["pubs"], accounts["pubs2"], NOV + dt.timedelta(days=2), 999)
    # Money: alpha paid November's invoice as soon as it was issued; beta has not paid yet; gamma's October invoice
    # was unpaid when October was paid out and was paid during November: it rolls into November.
    invoice(teams["alpha"], NOV, 10001, paid_at=DEC + dt.timedelta(minutes=90))
    beta_nov = invoice(teams["beta"], NOV, 5000)
    invoice(teams["gamma"], OCT, 2000, paid_at=NOV + dt.timedelta(days=14))
    invoice(teams["gamma"], NOV, 0, paid_at=DEC + dt.timedelta(minutes=61))  # a free plan's: nothing to divide
    return {"acme": acme, "nodes": (n1, n2), "teams": teams, "accounts": accounts, "beta_nov": beta_nov}


def lines(statement):
    return [(line.bucket, line.payee_name, line.basis_quantity, line.basis_unit, line.cents)
            for line in statement.lines.order_by("position")]


def test_a_period_pays_80_10_10_of_what_was_collected_exactly_to_the_cent(world):
    from payouts.services import payout_run

    statement = payout_run(period="2026-11", actor=PLATFORM, now=DEC + GRACE)
    # Collected: 100.01 (alpha, November) + 20.00 (gamma, October, paid in November) = 120.01.
    # Buckets: 96.008 / 12.001 / 12.001 -> 96.01 / 12.00 / 12.00 (the cent to the largest remainder).
    # Operators 1000 : 3000 bytes -> 24.0025 / 72.0075 -> 24.00 / 72.01. Publisher: all 12.00 (40 messages).
    assert (statement.collected_cents, statement.operators_cents, statement.publishers_cents,
            statement.community_cents) == (12001, 9601, 1200, 1200)
    assert lines(statement) == [
        ("operator", "Acme Hosting", 3000, "bytes", 7201),
        ("operator", "natsctl platform", 1000, "bytes", 2400),
        ("publisher", "pubs", 40, "messages", 1200),
        ("community", "Community fund", 0, "", 1200),
    ]
    assert (statement.operator_bytes, statement.publisher_msgs, statement.currency) == (4000, 40, "USD")
    assert sorted(PayoutInvoice.objects.values_list("invoice__number", "cents")) == [
        (f"T-202610-{world['teams']['gamma'].pk}", 2000), (f"T-202611-{world['teams']['alpha'].pk}", 10001)]
    event = AuditEvent.objects.get(action="payout.run")
    assert event.target == "2026-11" and event.detail["collected_cents"] == 12001 and event.team.is_platform


def test_an_unpaid_invoice_rolls_into_the_period_in_which_it_is_paid(world):
    from payouts.services import payout_run

    payout_run(period="2026-11", actor=PLATFORM, now=DEC + GRACE)
    Invoice.objects.filter(pk=world["beta_nov"].pk).update(status="paid", paid_at=DEC + dt.timedelta(days=9))
    carried("n2", DEC + dt.timedelta(days=4), 7)
    december = payout_run(period="2026-12", actor=PLATFORM, now=JAN + GRACE)
    # 50.00: 40.00 / 5.00 / 5.00; no export was used in December, so the publishers' 5.00 is the community's.
    assert (december.collected_cents, december.operators_cents, december.publishers_cents,
            december.community_cents, december.publishers_unused) == (5000, 4000, 0, 1000, True)
    assert lines(december) == [("operator", "Acme Hosting", 7, "bytes", 4000),
                               ("community", "Community fund", 0, "", 1000)]
    assert list(december.collected.values_list("invoice_id", flat=True)) == [world["beta_nov"].pk]


def test_refusals_write_nothing(world):
    from payouts.services import payout_run

    def nothing_written():
        return not (PayoutStatement.objects.exists() or PayoutLine.objects.exists()
                    or PayoutInvoice.objects.exists() or AuditEvent.objects.filter(action="payout.run").exists())

    for bad in ("2026-13", "26-11", "2026/11", "", None, 202611, "1999-12"):
        with pytest.raises(Invalid, match="YYYY-MM"):
            payout_run(period=bad, actor=PLATFORM, now=DEC + GRACE)
    with pytest.raises(Conflict, match="not closed yet") as exc:  # over, but its invoices not issued yet
        payout_run(period="2026-11", actor=PLATFORM, now=DEC + dt.timedelta(minutes=30))
    assert exc.value.code == "payout_period_open"
    with pytest.raises(Conflict, match="nothing was collected for 2026-09") as exc:
        payout_run(period="2026-09", actor=PLATFORM, now=DEC + GRACE)
    assert exc.value.code == "payout_no_revenue"
    person = get_user_model().objects.create_user(username="mallory", password="pw-mallory-1")
    with pytest.raises(Forbidden):
        payout_run(period="2026-11", actor=person, now=DEC + GRACE)
    assert nothing_written()

    # Revenue, but no operator's node carried any tenant traffic: the operators' 80 % has nobody to go to.
    NodeUsageHour.objects.filter(hour__gte=NOV).delete()
    with pytest.raises(Conflict, match="no node operator carried tenant traffic in 2026-11") as exc:
        payout_run(period="2026-11", actor=PLATFORM, now=DEC + GRACE)
    assert exc.value.code == "payout_no_operator_traffic"
    assert nothing_written()


def test_a_second_run_changes_nothing_and_constraints_hold_it(world):
    from payouts.services import payout_run

    first = payout_run(period="2026-11", actor=PLATFORM, now=DEC + GRACE)
    before = lines(first)
    with pytest.raises(Conflict, match="already paid out") as exc:
        payout_run(period="2026-11", actor=PLATFORM, now=DEC + GRACE + dt.timedelta(days=3))
    assert exc.value.code == "payout_exists"
    assert PayoutStatement.objects.count() == 1 and lines(PayoutStatement.objects.get()) == before
    # The database refuses what the service would never write: a second statement for the period, an invoice
    # collected twice, buckets that do not add up, a line whose payee does not fit its bucket.
    for make in (
        lambda: PayoutStatement.objects.create(period_start=NOV, period_end=DEC, currency="USD", collected_cents=1,
                                               operators_cents=1, publishers_cents=0, community_cents=0,
                                               operator_bytes=1, publisher_msgs=0),
        lambda: PayoutStatement.objects.create(period_start=OCT, period_end=NOV, currency="USD", collected_cents=10,
                                               operators_cents=1, publishers_cents=0, community_cents=0,
                                               operator_bytes=1, publisher_msgs=0),
        lambda: PayoutInvoice.objects.create(statement=first, invoice=first.collected.first().invoice, cents=1),
        lambda: PayoutLine.objects.create(statement=first, position=99, bucket="operator", payee_name="x",
                                          basis_quantity=1, cents=1),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            make()


def test_the_operator_of_each_hour_is_paid_even_after_a_reassignment_or_removal(world):
    from broker_gateway.node_operators import NodeAttribution, node_operator_assign, operator_create
    from broker_gateway.nodes import node_remove
    from payouts.services import payout_run

    n1, _ = world["nodes"]
    north = operator_create(slug="north", name="North Racks", actor=PLATFORM)
    node_operator_assign(node=n1, operator=north, actor=PLATFORM, at=NOV + dt.timedelta(days=10))
    carried("n1", NOV + dt.timedelta(days=20), 500, 500)
    node_remove(node=n1)  # gone, but what it carried in November stays its operators'
    who = NodeAttribution(["n1"])
    assert who.operator_id("n1", NOV) == world["nodes"][0].operator_id  # the platform, before the reassignment
    assert who.operator_id("n1", NOV + dt.timedelta(days=20)) == north.pk
    statement = payout_run(period="2026-11", actor=PLATFORM, now=DEC + GRACE)
    assert [(b, name, basis) for b, name, basis, _, _ in lines(statement) if b == "operator"] == [
        ("operator", "Acme Hosting", 3000), ("operator", "North Racks", 1000), ("operator", "natsctl platform", 1000)]
    assert AuditEvent.objects.filter(action="node.assign", target="n1").exists()


def test_the_monthly_task_pays_out_the_last_period_once(world):
    from payouts.services import payouts_run_due

    assert payouts_run_due(now=DEC + dt.timedelta(minutes=30)) is None  # invoices not issued yet
    statement = payouts_run_due(now=DEC + GRACE)
    assert statement.period == "2026-11"
    assert payouts_run_due(now=DEC + GRACE + dt.timedelta(hours=1)) is None
    assert PayoutStatement.objects.count() == 1
    assert payouts_run_due(now=JAN + GRACE) is None  # December: nothing collected yet, skipped with a log line
