"""Pushing accounts to a supercluster (regions joined by gateways), and a region that comes back.

Run from the repo root::

    .venv/bin/python bench/supercluster.py                         # 10,000 accounts, us-east=3,eu-west=3 (~6 min)
    .venv/bin/python bench/supercluster.py --quick                 # 2,000 accounts, 3 rounds, 1 return (~2 min)
    .venv/bin/python bench/supercluster.py --regions us-east=3,eu-west=3 --var-dir /tmp/scb10k   # reuse accounts

The setup is bench/push.py's (a throw-away directory with its own SQLite file, fleet directory and seed key;
the accounts created through ``account_create`` before any node exists), with nodes in every region of
``--regions`` on free loopback ports, under the real supervisor as ``manage.py fleet run`` has it: local process
driver, production policy, 0.25 s tick, NodeSyncer and the supervisor's own Reconciler.

Two figures:

1. push: ``accounts_push()`` of every account to every node of every region (one connection, to one node; each
   request is acknowledged by all of them), against the same floor as bench/push.py: a bare nats-py loop sending
   the same ``$SYS.REQ.CLAIMS.UPDATE`` requests over its own connection to the same node with the same window,
   freeing a slot at the last node's reply. Interleaved rounds; the headline is the median of the per-round
   ratios. Target >= 0.8, as for one cluster;
2. returning region: a region (default: one the product's connection does not use) is drained through the
   supervisor (``region_desired_set(stopped)``, as ``fleet region drain``); while it is down, ``--resign``
   accounts are re-signed and ``--revoke`` users revoked (each revocation re-signs its account); then it is
   resumed (``fleet region resume``). The clock runs from the resume until every node of the region has a
   ``NodeClaim`` at the latest jti of every account AND a LOOKUP spot-check over a connection to a returning node
   (every changed account and ``--lookup-sample`` others, each answered by every node of the supercluster) finds
   the latest JWT on all of them. Target <= 10 s.

A measurement, not a test: it exits 0 and prints PASS or FAIL (1 only when the setup itself fails).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchenv import bench_dir, bench_dir_close, db_argument, django_setup, fmt, sigterm_unwinds, verdict  # noqa: E402
from push import Fleet, Floor, accounts_create, bench_push, product_push, profile_push  # noqa: E402

from tests.fleet import nodes_add  # noqa: E402  (the repository root is on sys.path only now)
from tests.waiting import wait_for  # noqa: E402

TARGET_RATIO = 0.8
TARGET_RETURN_S = 10.0


class SuperFleet(Fleet):
    """bench/push.py's fleet, with the supervisor's own reconciler as ``manage.py fleet run`` starts it: a region
    that comes back is caught up by the full sync and by this reconciler, as in production."""

    def __post_init__(self) -> None:
        from broker_gateway.fleet.local import LocalProcessDriver
        from broker_gateway.fleet.reconciler import Reconciler
        from broker_gateway.fleet.supervisor import NodeSyncer, Policy, Supervisor

        self.driver = LocalProcessDriver(self.base_dir)
        self.syncer = NodeSyncer()
        self.supervisor = Supervisor(self.driver, policy=Policy.from_settings(), on_healthy=self.syncer,
                                     reconciler=Reconciler(sync_started=self.syncer.running_since))


def _claims_complete(node_ids: list[int]) -> int:
    """How many (account, node) pairs of ``node_ids`` have a NodeClaim at the account's latest jti."""
    from django.db.models import F

    from broker_gateway.models import NodeClaim

    return (NodeClaim.objects.filter(node_id__in=node_ids, jti=F("account__jwt_jti"))
            .exclude(account__jwt="").count())


def _lookup_check(gateway, sample: list[tuple[str, str]], *, expect: int) -> int:
    """LOOKUP every (public key, latest JWT) of ``sample``; how many were answered by ``expect`` nodes, all with
    the latest JWT."""
    from django.conf import settings

    replies = gateway.lookup([p for p, _ in sample], expect=expect, timeout=5.0,
                             concurrency=settings.FLEET_PUSH_CONCURRENCY)
    return sum(1 for (_, jwt), got in zip(sample, replies, strict=True) if len(got) >= expect
               and all(j == jwt for j in got))


def _users_make(accounts: list, count: int) -> list:
    """One active user in each of the first ``count`` of ``accounts`` (untimed setup)."""
    from accounts_service.models import NatsUser
    from accounts_service.rights import PLATFORM
    from accounts_service.services import user_create

    users = []
    for account in accounts[:count]:
        user = NatsUser.objects.filter(account=account, revoked_at__isnull=True).first()
        name = f"bench-user-{NatsUser.objects.filter(account=account).count() + 1}"
        users.append(user or user_create(actor=PLATFORM, account=account, name=name, pub_allow=["foo.>"],
                                         sub_allow=["foo.>"]))
    return users


def bench_return(fleet: SuperFleet, region: str, *, resign: int, revoke: int,
                 lookup_sample: int, expect: int, timeout: float = 120.0) -> dict:
    from django.db import transaction

    from accounts_service.models import Account
    from accounts_service.rights import PLATFORM
    from accounts_service.services import account_lock, account_resign, user_revoke
    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import region_desired_set
    from broker_gateway.services import gateway_open

    nodes = list(BrokerNode.objects.filter(region=region).order_by("name"))
    names, ids = [n.name for n in nodes], [n.pk for n in nodes]
    tenants = list(Account.objects.filter(is_system=False).exclude(jwt="").order_by("?"))
    # Revoked users live in accounts not re-signed otherwise, so that both kinds of change are counted.
    users = _users_make(tenants[resign:], revoke)

    # Down: drained through the supervisor (lame duck, then stopped), as `fleet region drain` does.
    t0 = time.monotonic()
    region_desired_set(region=region, desired=BrokerNode.Desired.STOPPED)
    wait_for(lambda: all(fleet.driver.status(n).running is False for n in names)
             and not BrokerNode.objects.filter(pk__in=ids).exclude(observed_state="stopped").exists(),
             timeout=120, interval=0.2, what=f"{region} stopped")
    drain_s = time.monotonic() - t0

    # While it is down: re-sign and revoke (each change is also pushed at once to the regions still up).
    t0 = time.monotonic()
    for account in tenants[:resign]:
        with transaction.atomic():
            account_resign(account=account_lock(account))
    for user in users:
        user_revoke(user=user, actor=PLATFORM)
    change_s = time.monotonic() - t0
    changed = {a.pk for a in tenants[:resign]} | {u.account_id for u in users}
    fleet.syncs_drained()

    latest = dict(Account.objects.exclude(jwt="").values_list("public_key", "jwt"))
    accounts = len(latest)
    changed_keys = set(Account.objects.filter(pk__in=changed).values_list("public_key", flat=True))
    rest = [k for k in latest if k not in changed_keys]
    sample = [(k, latest[k]) for k in sorted(changed_keys) + random.sample(rest, min(lookup_sample, len(rest)))]
    want = accounts * len(ids)
    before = _claims_complete(ids)

    # Back: resumed; the clock runs from here.
    t_resume = time.monotonic()
    region_desired_set(region=region, desired=BrokerNode.Desired.RUNNING)
    ev = fleet.events
    wait_for(lambda: all(ev.first(n, "healthy", t_resume) is not None for n in names), timeout=timeout,
             interval=0.02, what=f"{region} healthy")
    # Polled from the resume, while the returning nodes' full syncs run: the supervisor records what it wrote into
    # each node's store before starting it, so the records can be complete before the syncs end (the LOOKUPs
    # below check the nodes themselves).
    t_claims = None
    polls = 0
    while time.monotonic() - t_resume <= timeout:
        polls += 1
        if _claims_complete(ids) >= want:
            t_claims = time.monotonic()
            break
        time.sleep(0.1)
    # LOOKUP over a connection to a returning node: every node of every region answers each one.
    looked = lookup_ok = 0
    t_lookup = None
    monitor = gateway_open([n.client_url for n in BrokerNode.objects.filter(pk__in=ids)], name="bench-lookup")
    try:
        while time.monotonic() - t_resume <= timeout:
            looked += 1
            lookup_ok = _lookup_check(monitor, sample, expect=expect)
            if lookup_ok == len(sample):
                t_lookup = time.monotonic()
                break
    finally:
        monitor.close()
    t_done = None if t_claims is None or t_lookup is None else max(t_claims, t_lookup)
    fleet.syncs_drained()  # the full syncs end after that (the timeline shows when)

    starting = [ev.first(n, "starting", t_resume) for n in names]
    healthy = [ev.first(n, "healthy", t_resume) for n in names]
    with ev._mutex:
        syncs = [s for s in ev.syncs if s[0] >= t_resume]
        timeline = sorted([(t - t_resume, f"{n} {state}") for t, n, state in ev.transitions
                           if t >= t_resume and n in names]
                          + [(t - t_resume, f"sync({n}) {secs:.2f}s {c:,}/{a:,} on all") for t, n, secs, c, a in syncs])
    return {
        "drain": drain_s, "change": change_s, "changed": len(changed), "accounts": accounts, "before": before,
        "want": want, "first_start": min(starting) - t_resume, "last_start": max(starting) - t_resume,
        "last_healthy": max(healthy) - t_resume, "syncs": syncs, "timeline": timeline,
        "claims": None if t_claims is None else t_claims - t_resume,
        "lookup": None if t_lookup is None else t_lookup - t_resume, "lookups": looked, "lookup_ok": lookup_ok,
        "sample": len(sample), "complete": None if t_done is None else t_done - t_resume,
        "from_last_start": None if t_done is None else t_done - t_resume - (max(starting) - t_resume),
        "polls": polls, "timeout": timeout,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--regions", default="us-east=3,eu-west=3", help="REGION=NODES,... (default %(default)s)")
    parser.add_argument("--accounts", type=int, help="accounts to create and push (default 10000, --quick 2000)")
    parser.add_argument("--quick", action="store_true", help="2,000 accounts, 3 rounds, 1 return")
    parser.add_argument("--rounds", type=int, help="interleaved product/floor rounds (default 5, --quick 3)")
    parser.add_argument("--returns", type=int, help="region drain/change/resume cycles to time (default 3, --quick 1)")
    parser.add_argument("--returning", default="", help="region to drain (default: one the gateway does not use)")
    parser.add_argument("--resign", type=int, default=1000, help="accounts re-signed while it is down (%(default)s)")
    parser.add_argument("--revoke", type=int, default=100, help="users revoked while it is down (%(default)s)")
    parser.add_argument("--lookup-sample", type=int, default=500,
                        help="unchanged accounts LOOKUP checks besides the changed ones (%(default)s)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one accounts_push() and print the top")
    parser.add_argument("--keep", action="store_true", help="keep the temp directory (logs, database) at the end")
    parser.add_argument("--var-dir", type=Path, help="use (and keep) this directory; accounts in it are reused")
    db_argument(parser)
    args = parser.parse_args(argv)
    accounts = args.accounts or (2_000 if args.quick else 10_000)
    rounds = args.rounds or (3 if args.quick else 5)
    returns = args.returns if args.returns is not None else (1 if args.quick else 3)

    sigterm_unwinds()
    var_dir = bench_dir(args.var_dir, "natsctl-scbench-")
    fleet: SuperFleet | None = None
    floor: Floor | None = None
    t_all = time.perf_counter()
    try:
        django_setup(var_dir, args.db)
        from django.conf import settings
        from nats.aio.client import __version__ as nats_py_version

        from accounts_service.models import Account
        from broker_gateway.fleet.local import nats_server_bin
        from broker_gateway.models import BrokerNode
        from broker_gateway.selectors import healthy_nodes, node_gateways
        from broker_gateway.services import gateway_get
        from broker_gateway.topology import topology_parse

        topology = topology_parse(args.regions)
        total = sum(n for _, n in topology)
        concurrency = settings.FLEET_PUSH_CONCURRENCY
        server_version = subprocess.run([nats_server_bin(settings.NATS_SERVER_BIN), "--version"],
                                        capture_output=True, text=True, check=False).stdout.strip()
        print("Supercluster benchmark (bench/supercluster.py)")
        print(f"  Python {platform.python_version()} ({platform.python_implementation()}), nats-py "
              f"{nats_py_version}, {server_version}")
        load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
        print(f"  {platform.machine()}, {os.cpu_count()} CPUs{load}")
        print(f"  {accounts:,} accounts, regions {args.regions} ({total} nodes, one machine), "
              f"FLEET_PUSH_CONCURRENCY={concurrency}, {rounds} interleaved rounds; "
              f"{'' if args.var_dir else 'temp '}dir {var_dir}")
        print()

        migrate_s, create_s, created = accounts_create(accounts)
        print(f"Setup: migrate {migrate_s:.1f} s; {created:,} accounts through account_create in {create_s:.1f} s, "
              f"{accounts - created:,} reused; no node existed, so nothing was pushed")

        for region, count in topology:
            nodes_add(count, region=region)
        everyone = list(BrokerNode.objects.order_by("name"))
        fleet = SuperFleet(var_dir / "fleet")
        t0 = fleet.start()
        wait_for(lambda: len(healthy_nodes()) == total, timeout=300, interval=0.05, what=f"{total} healthy nodes")
        wait_for(lambda: all(link["state"] == "up" for links in node_gateways(nodes=everyone).values()
                             for link in links), timeout=60, interval=0.2, what="every gateway link up")
        start_s = time.monotonic() - t0
        fleet.syncs_drained()
        wanted = Account.objects.exclude(jwt="").count()
        ids = [n.pk for n in everyone]
        wait_for(lambda: _claims_complete(ids) >= wanted * total, timeout=120, interval=0.5,
                 what="every node acknowledging every account")
        print(f"Fleet start: {total} nodes healthy and every gateway up {start_s:.2f} s after the supervisor started; "
              f"every node acknowledged all {wanted:,} accounts {time.monotonic() - t0:.1f} s after it")

        gateway = gateway_get()
        port = gateway._nc.connected_url.port if gateway._nc.connected_url else None
        gateway_node = next(n for n in healthy_nodes() if n.client_port == port)
        print(f"  the product's gateway is connected to {gateway_node.name} ({gateway_node.region})")
        print()

        payloads = [j.encode("ascii") for j in Account.objects.exclude(jwt="").order_by("-updated_at", "-pk")
                    .values_list("jwt", flat=True)]
        floor = Floor(gateway_node.client_url, expect=total, concurrency=concurrency)
        floor.push(payloads)  # warm-up of both paths, untimed
        product_push()
        print(f"Push, product vs floor (every request gathers all {total} nodes' replies in both)")
        s = bench_push(floor, payloads, rounds)
        ok_ratio = s["ratio"] >= TARGET_RATIO
        print(f"  product accounts_push()             {fmt(s['product']):>8} accounts/s   "
              f"(rounds: {', '.join(fmt(r) for r in s['product_rates'])})")
        print(f"  floor   nats-py, {total} replies/request   {fmt(s['floor']):>8} accounts/s   "
              f"(rounds: {', '.join(fmt(r) for r in s['floor_rates'])})")
        print(f"  ratio   product/floor               {s['ratio']:>8.3f}   (median of per-round ratios: "
              f"{', '.join(f'{r:.3f}' for r in s['round_ratios'])}; ratio of medians "
              f"{s['product'] / s['floor']:.3f})")
        print(f"  target ratio >= {TARGET_RATIO}: {verdict(ok_ratio)}; {s['incomplete']} incomplete product rounds")
        print(flush=True)
        if args.profile:
            profile_push(gateway)

        region = args.returning or next(r for r, _ in reversed(topology) if r != gateway_node.region)
        results = []
        for i in range(returns):
            res = bench_return(fleet, region, resign=args.resign,
                               revoke=args.revoke, lookup_sample=args.lookup_sample, expect=total)
            results.append(res)
            done = (f"{res['complete']:.2f} s" if res["complete"] is not None
                    else f"NOT within {res['timeout']:g} s")
            print(f"Return {i + 1}/{returns}: {region} drained in {res['drain']:.1f} s; while down {res['changed']:,} "
                  f"accounts changed ({args.resign:,} re-signed, {args.revoke:,} users revoked) in "
                  f"{res['change']:.1f} s; {res['before']:,}/{res['want']:,} claims current before the resume")
            after = "" if res["from_last_start"] is None else f" ({res['from_last_start']:.2f} s after its last start)"
            print(f"    resume -> every node of {region} holds every latest JWT: {done}{after}")
            print(f"    parts: prime+start {res['first_start']:.2f}-{res['last_start']:.2f} s, all healthy "
                  f"{res['last_healthy']:.2f} s, NodeClaims complete "
                  + ("-" if res["claims"] is None else f"{res['claims']:.2f} s")
                  + ", LOOKUP of " + f"{res['sample']:,} accounts x {total} nodes all latest "
                  + ("-" if res["lookup"] is None else f"{res['lookup']:.2f} s")
                  + f" ({res['lookups']} LOOKUP rounds, last {res['lookup_ok']:,}/{res['sample']:,})")
            print("    timeline: " + "; ".join(f"+{t:.2f} {what}" for t, what in res["timeline"]), flush=True)
        times = [r["complete"] if r["complete"] is not None else float("inf") for r in results]
        return_s = statistics.median(times) if times else None
        ok_return = return_s is not None and return_s <= TARGET_RETURN_S
        if results:
            print(f"  median resume -> all held: {return_s:.2f} s (runs {', '.join(f'{t:.2f}' for t in times)}); "
                  f"target <= {TARGET_RETURN_S:g} s: {verdict(ok_return)}")
        print()
        print(f"RESULT regions={args.regions} push={fmt(s['product'])}/s floor={fmt(s['floor'])}/s "
              f"ratio={s['ratio']:.3f} (>= {TARGET_RATIO}: {verdict(ok_ratio)}) "
              + (f"return={return_s:.2f}s (<= {TARGET_RETURN_S:g}s: {verdict(ok_return)}) "
                 if return_s is not None else "")
              + f"fleet_start={start_s:.2f}s ({accounts:,} accounts; total {time.perf_counter() - t_all:.0f} s)")
        return 0
    finally:
        if floor is not None:
            floor.close()
        if fleet is not None:
            fleet.stop()
        with contextlib.suppress(Exception):
            bench_dir_close(var_dir, reuse=bool(args.var_dir), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
