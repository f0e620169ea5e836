"""What the month to date and the estimate cost: the usage document (``ngs.usage``, ``GET .../usage``) with its ``bill``
against the same document without it, and a team's bill and invoice lines.

Run from the repo root::

    .venv/bin/python bench/bills.py            # 1,000 accounts (10 teams of 100) x 35 days of hours (~1 min)
    .venv/bin/python bench/bills.py --quick    # 300 accounts (3 teams of 100) x 35 days (~20 s)

Everything happens in a throw-away directory (its own SQLite file): a team per 100 accounts, each account's plan
history (on ``pro`` since before the month; every third switched to ``business`` 30 hours ago) and one UsageHour row
per hour for the last 35 days, written with bulk inserts. No nats-server runs.

Figures (medians over interleaved rounds, in-process, on one warm connection):

1. product: ``account_usage(window=30d)``, the document ``ngs.usage`` answers, ``bill`` included, for accounts at
   random; floor, same run: the same document built as before the bill existed (plan, month's data, window).
   Ratio floor / product; target >= 0.6 (the bill may add at most two thirds of what the document cost);
2. informational: a 100-account team's bill (``team_bill_document``: every account's month to date and estimate
   with their lines) and its invoice lines for last month (``invoice_lines``).

This is a measurement, not a test: it exits 0 and prints PASS or FAIL (1 only when the setup fails).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
for path in (REPO_ROOT, REPO_ROOT / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from benchenv import bench_dir, django_setup, verdict  # noqa: E402

TARGET_RATIO = 0.6
TEAM_SIZE = 100


def seed(accounts: int, days: int) -> list[tuple[int, str]]:
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from accounts_service.models import PlanSpan, Team
    from billing.models import UsageHour
    from core.db import datetime_adapter

    call_command("migrate", verbosity=0)
    adapt = datetime_adapter()
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    out = []
    with transaction.atomic():
        teams = [Team.objects.create(name=f"team-{t}", slug=f"team-{t}") for t in range(accounts // TEAM_SIZE)]
        spans, rows = [], []
        for i in range(len(teams) * TEAM_SIZE):
            team, key = teams[i // TEAM_SIZE], "A" + f"{i:055d}"
            out.append((team.pk, key))
            spans.append(PlanSpan(team=team, account_public_key=key, account_name=f"a{i}", plan="pro",
                                  at=now - dt.timedelta(days=days + 5)))
            if i % 3 == 0:
                spans.append(PlanSpan(team=team, account_public_key=key, account_name=f"a{i}", plan="business",
                                      at=now - dt.timedelta(hours=30)))
            rows += [(key, adapt(now - dt.timedelta(hours=h)), 0, h * 1000 + i, 0, h, h * 3.25, 1, h * 10**9)
                     for h in range(24 * days)]
        PlanSpan.objects.bulk_create(spans)
        with connection.cursor() as cursor:  # executemany: the ORM's bulk_create is 10x slower here
            cursor.executemany(f"INSERT INTO {UsageHour._meta.db_table} (account_public_key, hour, sent_msgs, "
                               "sent_bytes, received_msgs, received_bytes, connection_seconds, peak_connections, "
                               "storage_byte_seconds) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    return out


def document_without_bill(key: str) -> dict:
    """The usage document as it was built before the bill: the plan, the month's data, the window."""
    from django.utils import timezone

    from billing.models import Plan
    from billing.selectors import month_used_bytes, usage_document

    now = timezone.now()
    plan = Plan.objects.filter(name="pro").first()
    return usage_document(account_public_key=key, window="30d", plan="pro", data_bytes=plan.data_bytes,
                          used_bytes=month_used_bytes(account_public_key=key, now=now), now=now)


def timed(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--accounts", type=int)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    accounts = args.accounts or (300 if args.quick else 1000)
    var_dir = bench_dir(None, "natsctl-billbench-")
    try:
        django_setup(var_dir)
        import os

        from billing.bills import team_bill_document
        from billing.invoices import invoice_lines
        from billing.pricing import period_start
        from billing.selectors import account_usage

        print(f"Bills benchmark (bench/bills.py): Python {platform.python_version()}, {os.cpu_count()} CPUs, "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        t0 = time.perf_counter()
        held = seed(accounts, days=35)
        print(f"  seeded {len(held):,} accounts x 35 days ({len(held) * 35 * 24:,} hour rows) in "
              f"{time.perf_counter() - t0:.1f} s")
        rng = random.Random(15)
        products, floors, ratios = [], [], []
        for r in range(args.rounds):
            sample = rng.sample(held, min(100, len(held)))
            def product(sample=sample):
                return [account_usage(account_public_key=k, plan_name="pro", window="30d", team_id=t)
                        for t, k in sample]

            def floor(sample=sample):
                return [document_without_bill(k) for _, k in sample]

            pair = [(floor, floors), (product, products)]
            for fn, into in pair if r % 2 else reversed(pair):
                into.append(timed(fn, 1) / len(sample))
            ratios.append(floors[-1] / products[-1])
        ratio = statistics.median(ratios)
        print(f"  usage document with bill   p50 {statistics.median(products):6.2f} ms per answer")
        print(f"  the same without bill      p50 {statistics.median(floors):6.2f} ms per answer")
        print(f"  ratio floor/product        {ratio:.2f} (target >= {TARGET_RATIO}): {verdict(ratio >= TARGET_RATIO)}")
        team_id = held[0][0]
        last = period_start(period_start(dt.datetime.now(dt.UTC)) - dt.timedelta(days=1))
        team = statistics.median(timed(lambda: team_bill_document(team_id=team_id), 1) for _ in range(5))
        invoice = statistics.median(timed(lambda: invoice_lines(team_id=team_id, start=last,
                                                                end=period_start(dt.datetime.now(dt.UTC))), 1)
                                    for _ in range(5))
        print(f"  informational: a {TEAM_SIZE}-account team's bill {team:.1f} ms; its invoice lines for last month "
              f"{invoice:.1f} ms")
        print(f"RESULT usage+bill p50={statistics.median(products):.2f}ms without={statistics.median(floors):.2f}ms "
              f"ratio={ratio:.2f} team_bill={team:.1f}ms invoice_lines={invoice:.1f}ms")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
