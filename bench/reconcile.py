"""The supervisor reconciler's database cost: ``accounts_behind_ids`` against a plain scan of the accounts table.

Run from the repo root::

    .venv/bin/python bench/reconcile.py             # 10,000 accounts x 3 nodes, 15 interleaved rounds (~10 s)
    .venv/bin/python bench/reconcile.py --quick     # 2,000 accounts, 7 rounds (~4 s)
    .venv/bin/python bench/reconcile.py --accounts 50000 --nodes 5

The supervisor's reconciler (broker_gateway/fleet/reconciler.py) runs every FLEET_RECONCILE_SECONDS (2 s), worker
or no worker, so what it asks of the database each round must stay small at fleet scale. Everything happens in a
throw-away directory (its own SQLite file): ``operator_init``, one account made by ``account_create`` (its JWT is
the size every other row gets), then N accounts, N x nodes NodeClaim rows (every node holds every account at its
latest jti, except 10 accounts one node holds an older version of) and the healthy BrokerNode rows, written with
bulk inserts. No nats-server runs: nothing here is behind in a way that needs a push.

Figures:

1. product: ``accounts_behind_ids(healthy_nodes())``, the query that decides what a round pushes, in ms;
2. floor, same run, same connection: ``SELECT id FROM accounts_service_account WHERE jwt <> ''`` (fetched) and
   ``SELECT COUNT(jti) FROM broker_gateway_nodeclaim WHERE node_id IN (<healthy>)``: one pass over each table,
   which any check of every account's latest version against what every node holds must make at least.
   (1) and (2) alternate, swapping which goes first each round; medians are reported, and the headline ratio is
   the median of the per-round ratios floor / product (1.0: as cheap as the two passes). Targets: ratio >= 0.5
   and product <= 5 % of FLEET_RECONCILE_SECONDS;
3. informational: a whole idle round of ``Reconciler.round()`` (the query above, the healthy nodes, and the
   account keys it compares with the previous round's to find deletions), and the query as it was before it
   grouped by the account id alone (it grouped by every column, the JWT text included).

This is a measurement, not a test: it exits 0 and prints PASS or FAIL (1 only when the setup fails).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
for path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from benchenv import bench_dir, bench_dir_close, db_argument, db_describe, django_setup, verdict  # noqa: E402

TARGET_RATIO = 0.5
TARGET_SHARE = 0.05  # of FLEET_RECONCILE_SECONDS
BEHIND = 10  # accounts one node holds an older version of


def populate(accounts: int, nodes: int) -> int:
    """The rows of a fleet of ``accounts`` accounts on ``nodes`` healthy nodes; returns the JWT size."""
    from django.core.management import call_command
    from django.utils import timezone

    from accounts_service.models import Account
    from accounts_service.rights import PLATFORM
    from accounts_service.services import account_create, team_create
    from broker_gateway.models import BrokerNode, NodeClaim
    from operators.models import SealedSeed
    from operators.services import operator_init

    call_command("migrate", verbosity=0, interactive=False)
    operator_init(name="bench", identity_seed_out=None, store_identity_key=True)
    team = team_create(actor=PLATFORM, name="bench")
    sample = account_create(actor=PLATFORM, team=team, name="sample")  # no node yet: nothing is pushed
    jwt = sample.jwt
    seeds = SealedSeed.objects.bulk_create(
        [SealedSeed(public_key=f"A{i:055d}", key_type="A", key_id="bench", sealed="x" * 80) for i in range(accounts)],
        batch_size=2000)
    Account.objects.bulk_create(
        [Account(team=team, name=f"acct-{i}", public_key=s.public_key, identity_seed=s, jwt=jwt, jwt_jti=f"J{i:051d}",
                 jwt_iat=1) for i, s in enumerate(seeds)], batch_size=2000)
    now = timezone.now()
    rows = [BrokerNode.objects.create(name=f"node-{n + 1}", client_port=14000 + n, cluster_port=15000 + n,
                                      monitoring_port=16000 + n, leafnode_port=17000 + n, gateway_port=18000 + n,
                                      observed_state="healthy",
                                      last_healthy_at=now) for n in range(nodes)]
    claims = Account.objects.values_list("pk", "jwt_jti")
    stale = set(list(Account.objects.exclude(is_system=True).values_list("pk", flat=True)[:BEHIND]))
    NodeClaim.objects.bulk_create(
        [NodeClaim(account_id=pk, node=node, jti="old" if (pk in stale and node is rows[0]) else jti, iat=1,
                   updated_at=now) for pk, jti in claims for node in rows], batch_size=5000)
    return len(jwt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, help="accounts (default 10000, --quick 2000)")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 15, --quick 7)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the throw-away directory")
    db_argument(parser)
    args = parser.parse_args(argv)
    accounts = args.accounts or (2000 if args.quick else 10_000)
    rounds = args.rounds or (7 if args.quick else 15)
    var_dir = bench_dir(None, "natsctl-bench-reconcile-")
    try:
        django_setup(var_dir, args.db)
        print(f"database: {db_describe()}")
        t0 = time.perf_counter()
        jwt_bytes = populate(accounts, args.nodes)
        setup_s = time.perf_counter() - t0
        return run(accounts=accounts, nodes=args.nodes, rounds=rounds, jwt_bytes=jwt_bytes, setup_s=setup_s)
    finally:
        bench_dir_close(var_dir, reuse=False, keep=args.keep)


def run(*, accounts: int, nodes: int, rounds: int, jwt_bytes: int, setup_s: float) -> int:
    import django
    from django.conf import settings
    from django.db import connection
    from django.db.models import Count, F, OuterRef, Q, Subquery
    from django.utils import timezone

    from accounts_service.models import Account
    from broker_gateway.fleet.reconciler import Reconciler
    from broker_gateway.models import BrokerNode, NodeClaim
    from broker_gateway.selectors import accounts_behind_ids, healthy_nodes

    def fresh() -> list:
        BrokerNode.objects.update(last_healthy_at=timezone.now())  # as the supervisor's heartbeat keeps it
        return healthy_nodes()

    healthy = fresh()
    assert len(healthy) == nodes
    cursor = connection.cursor()

    def product() -> list[int]:
        return accounts_behind_ids(healthy)

    node_ids = [n.pk for n in healthy]
    claims_sql = f"SELECT COUNT(jti) FROM broker_gateway_nodeclaim WHERE node_id IN ({', '.join(['%s'] * nodes)})"

    def floor() -> list:
        cursor.execute("SELECT id FROM accounts_service_account WHERE jwt <> ''")
        ids = cursor.fetchall()
        cursor.execute(claims_sql, node_ids)
        assert cursor.fetchone()[0] == len(ids) * len(node_ids)
        return ids

    def before() -> list[int]:  # the query as it was: grouped by every column of the account, its JWT included
        held = Count("node_claims", filter=Q(node_claims__node__in=healthy, node_claims__jti=F("jwt_jti")))
        return list(Account.objects.exclude(jwt="").annotate(held=held).filter(held__lt=len(healthy))
                    .values_list("pk", flat=True))

    assert len(product()) == BEHIND and sorted(before()) == sorted(product())
    assert len(floor()) == accounts + 2  # and the sample and the system account
    timings: dict[str, list[float]] = {"product": [], "floor": []}
    for r in range(rounds):
        order = [("product", product), ("floor", floor)]
        for name, fn in order if r % 2 == 0 else reversed(order):
            started = time.perf_counter()
            fn()
            timings[name].append(time.perf_counter() - started)
    ratios = [f / p for f, p in zip(timings["floor"], timings["product"], strict=True)]

    # An idle round: nothing behind (the stale claims brought up to date), nothing deleted, so nothing to send.
    NodeClaim.objects.filter(jti="old").update(
        jti=Subquery(Account.objects.filter(pk=OuterRef("account_id")).values("jwt_jti")[:1]))
    reconciler = Reconciler(every=settings.FLEET_RECONCILE_SECONDS)
    reconciler._listed = True  # the nodes' LIST is asked once per supervisor start, and no node runs here
    idle, old = [], []
    for _ in range(max(rounds // 2, 3)):
        fresh()
        started = time.perf_counter()
        reconciler.round()
        idle.append(time.perf_counter() - started)
        started = time.perf_counter()
        before()
        old.append(time.perf_counter() - started)
    assert not accounts_behind_ids(fresh())

    product_ms, floor_ms = statistics.median(timings["product"]) * 1000, statistics.median(timings["floor"]) * 1000
    ratio = statistics.median(ratios)
    share = product_ms / 1000 / settings.FLEET_RECONCILE_SECONDS
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    print("Reconciler database cost (bench/reconcile.py)")
    print(f"  Python {platform.python_version()}, Django {django.get_version()}, "
          f"{connection.vendor} {connection.Database.sqlite_version if connection.vendor == 'sqlite' else ''}")
    print(f"  {platform.machine()}, {os.cpu_count()} CPUs{load}")
    print(f"  {accounts:,} accounts x {nodes} nodes ({accounts * nodes:,} NodeClaim rows, {BEHIND} behind), "
          f"account JWT {jwt_bytes} bytes, {rounds} interleaved rounds, median; set up in {setup_s:.1f} s")
    print()
    print(f"1. accounts_behind_ids:       {product_ms:7.1f} ms  ({share:.1%} of FLEET_RECONCILE_SECONDS="
          f"{settings.FLEET_RECONCILE_SECONDS:g})")
    print(f"2. floor, one pass per table: {floor_ms:7.1f} ms")
    print(f"   ratio floor/product: {ratio:.2f} (per round: {', '.join(f'{x:.2f}' for x in ratios)})")
    print(f"   {verdict(ratio >= TARGET_RATIO)} ratio >= {TARGET_RATIO}; "
          f"{verdict(share <= TARGET_SHARE)} product <= {TARGET_SHARE:.0%} of the reconcile period")
    print(f"3. an idle Reconciler.round(): {statistics.median(idle) * 1000:6.1f} ms; the query before grouping by the "
          f"id alone: {statistics.median(old) * 1000:.1f} ms (informational)")
    if reconciler.failing:
        print(f"   ! the round reported failures: {reconciler.failing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
