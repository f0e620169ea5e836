"""Payouts end to end against ground truth: real clustered nodes run by two operators, tenant traffic through
both, two publishers' stream exports imported by other teams, the real collector and export meter, invoices
paid, the statement written, and every cent checked against a hand computation from the traffic sent."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from django.db.models import Sum

from accounts_service.rights import PLATFORM
from tests.fleet import route_interest_wait, running_fleet
from tests.integration.test_metering import CollectorThread
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

# The traffic, chosen so that every split has a remainder to place:
N, M = 50, 100  # pubs publishes N messages of M bytes on feed.today (node-1)
K, L = 20, 50  # alpha publishes K messages of L bytes on node-2 to its own subscriber on node-1
J, P = 30, 70  # beta publishes J messages of P bytes on news.today (node-2)
# Who receives what: alpha has two subscriptions on feed.> (node-2) and one on news.> (node-2); beta one on feed.>
# (node-1). Bytes each node exchanged with tenant clients (published plus delivered):
NODE1 = N * M + N * M + K * L  # pubs' publishes, beta's deliveries, alpha's own deliveries = 11,000
NODE2 = 2 * N * M + K * L + J * P + J * P  # alpha's two feed deliveries, its publishes, beta's news both ways = 15,200
# Messages other teams took through each publisher's exports: pubs' feed 2N (alpha) + N (beta); beta's news J.
PUBS_USE, BETA_USE = 3 * N, J
PRO, DEVELOPER = 4901, 1234  # plan prices in cents: alpha (pro) and beta (developer) pay, pubs (developer) not yet


def test_every_share_is_exact_to_the_cent(operator_setup, tmp_path):
    from accounts_service.models import PlanSpan
    from accounts_service.services import (
        account_create,
        export_create,
        import_create,
        team_create,
        usage_service_ensure,
        user_create,
        user_creds_get,
    )
    from billing.invoices import invoice_generate, invoice_mark_paid, period_next
    from billing.models import NodeUsageHour, Plan
    from billing.selectors import period_start
    from broker_gateway.export_meter import ExportMeter
    from broker_gateway.node_operators import node_operator_assign, operator_create
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import running_node_urls
    from payouts.services import payout_run

    Plan.objects.filter(name="pro").update(base_price_cents=PRO)
    Plan.objects.filter(name="developer").update(base_price_cents=DEVELOPER)
    usage_service_ensure()
    with running_fleet(2, tmp_path / "fleet") as (nodes, _):
        node1, node2 = nodes
        acme = operator_create(slug="acme-ops", name="Acme Hosting", actor=PLATFORM)
        # Staff approve Acme's server into the region: from this hour on, its traffic is Acme's.
        node_operator_assign(node=node2, operator=acme, actor=PLATFORM)
        teams = {name: team_create(name=name, actor=PLATFORM) for name in ("pubs", "alpha", "beta")}
        pub = account_create(actor=PLATFORM, team=teams["pubs"], name="feed", plan="developer")
        alpha = account_create(actor=PLATFORM, team=teams["alpha"], name="app", plan="pro")
        beta = account_create(actor=PLATFORM, team=teams["beta"], name="news", plan="developer")
        export_create(account=pub, actor=PLATFORM, name="feed", subject="feed.>", type="stream")
        export_create(account=beta, actor=PLATFORM, name="news", subject="news.>", type="stream")
        for importer in (alpha, beta):
            import_create(account=importer, actor=PLATFORM, exporter_public_key=pub.public_key, subject="feed.>")
        import_create(account=alpha, actor=PLATFORM, exporter_public_key=beta.public_key, subject="news.>")
        fleet_reconcile()
        creds = {a.name: user_creds_get(user=user_create(actor=PLATFORM, account=a, name="u"))
                 for a in (pub, alpha, beta)}
        urls = running_node_urls()
        collector = CollectorThread(urls).start()
        meter = ExportMeter(urls)
        try:
            asyncio.run(traffic(node1, node2, creds, meter))
            def carried():
                rows = NodeUsageHour.objects.values("node").annotate(s=Sum("sent_bytes"), r=Sum("received_bytes"))
                got = {row["node"]: row["s"] + row["r"] for row in rows}
                return got if got.get(node1.name, 0) >= NODE1 and got.get(node2.name, 0) >= NODE2 else None

            got = wait_for(carried, timeout=20, what="the ledger to count each node's traffic")
        finally:
            meter.close()
            collector.stop()
    assert got == {node1.name: NODE1, node2.name: NODE2}

    start = period_start(node1.created_at)
    # The accounts held their plans the whole month (invoices prorate by the plan history, and these were made
    # minutes ago): the hand computation below bills whole months.
    PlanSpan.objects.filter(account_public_key__in=[pub.public_key, alpha.public_key, beta.public_key]).update(at=start)
    for name in ("pubs", "alpha", "beta"):
        invoice, _ = invoice_generate(team=teams[name], start=start)
        if name != "pubs":  # pubs has not paid: its invoice rolls into the period in which it is paid
            invoice_mark_paid(invoice=invoice, reference="bank transfer")
    statement = payout_run(period=start, actor=PLATFORM, now=period_next(start) + dt.timedelta(hours=2))

    # By hand. Collected 49.01 + 12.34 = 61.35. Buckets: 80 % = 49.08 exactly; 10 % = 6.135 twice: 6.13 each and
    # one cent left, remainders equal (0.5): it goes to the earlier bucket, the publishers' (6.14); community 6.13.
    # Operators, 49.08 by bytes 11,000 (platform, node-1) : 15,200 (Acme, node-2) of 26,200:
    #   4908 * 11000 / 26200 = 2060.61..., 4908 * 15200 / 26200 = 2847.38...: floors 2060 + 2847 = 4907, the cent
    #   left to the larger remainder (the platform's): 20.61 and 28.47.
    # Publishers, 6.14 by messages used by other teams 150 (pubs) : 30 (beta) of 180:
    #   614 * 150 / 180 = 511.66..., 614 * 30 / 180 = 102.33...: 511 + 102 = 613, the cent to pubs: 5.12 and 1.02.
    assert (statement.collected_cents, statement.operators_cents, statement.publishers_cents,
            statement.community_cents) == (6135, 4908, 614, 613)
    assert [(line.bucket, line.payee_name, line.basis_quantity, line.cents) for line in statement.lines.all()] == [
        ("operator", "Acme Hosting", NODE2, 2847),
        ("operator", "natsctl platform", NODE1, 2061),
        ("publisher", "beta", BETA_USE, 102),
        ("publisher", "pubs", PUBS_USE, 512),
        ("community", "Community fund", 0, 613),
    ]


async def traffic(node1, node2, creds: dict[str, str], meter) -> None:
    """The traffic above, each subscriber counting what it got; the export meter reads SUBSZ while every
    subscription is still open (a subscription's count dies with it)."""
    from broker_gateway import nats_client

    got: dict[str, int] = {"alpha-feed": 0, "alpha-news": 0, "beta-feed": 0, "alpha-own": 0}
    want = {"alpha-feed": 2 * N, "alpha-news": J, "beta-feed": N, "alpha-own": K}
    done = asyncio.Event()

    def counting(key):
        async def cb(msg):
            got[key] += 1
            if got == want:
                done.set()
        return cb

    alpha2 = await nats_client.connect_creds(node2.client_url, creds["app"], name="alpha-2")
    for _ in range(2):
        await alpha2.subscribe("feed.>", cb=counting("alpha-feed"))
    await alpha2.subscribe("news.>", cb=counting("alpha-news"))
    alpha1 = await nats_client.connect_creds(node1.client_url, creds["app"], name="alpha-1")
    await alpha1.subscribe("alpha.x", cb=counting("alpha-own"))
    beta1 = await nats_client.connect_creds(node1.client_url, creds["news"], name="beta-1")
    await beta1.subscribe("feed.>", cb=counting("beta-feed"))
    for nc in (alpha2, alpha1, beta1):
        await nc.flush()
    await route_interest_wait((node1, "feed.>"), (node2, "alpha.x"))
    pubs1 = await nats_client.connect_creds(node1.client_url, creds["feed"], name="pubs-1")
    beta2 = await nats_client.connect_creds(node2.client_url, creds["news"], name="beta-2")
    for nc, subject, n, size in ((pubs1, "feed.today", N, M), (alpha2, "alpha.x", K, L),
                                 (beta2, "news.today", J, P)):
        for _ in range(n):
            await nc.publish(subject, b"x" * size)
        await nc.flush()
    await asyncio.wait_for(done.wait(), 10)
    assert await asyncio.to_thread(meter.poll) == 3 * N + J
    for nc in (pubs1, beta2, alpha2, alpha1, beta1):
        await nc.close()
