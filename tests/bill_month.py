"""A team's November so far, with exact expected bills, for the API and web tests of the month to date and the
estimate. The clock is set to 20 November 2026 00:00 UTC (``django.utils.timezone.now``, which every figure reads),
so the figures are exact rather than a moving target; the ledger and the plan history are real rows.

- ``app``: Developer from before November, Pro from 10 November 00:00. On Developer 300 connection-hours (the 9 days'
  allowance is 150 h: 150 h at 10 c / 1,000 h is 1.5 c, 2 c); on Pro 5 GiB and 100 connection-hours so far.
  To date: Developer 9/30 of 900 = 270, + 2, Pro 10/30 of 4900 = 1633 (its allowances granted to the month's end: 21
  of 30 days, 7 GiB and 700 h, nothing past them) = 1905. Estimate: 19 days held, 11 left, so 11/19 more of
  everything: data 5 GiB * 30/19 = 8,476,909,137 B, 960,716,369 B past 7 GiB at 40 c / GiB = 35.79 c, 36; Pro for 21
  days 3430; 270 + 2 + 3430 + 36 = 3738.
- ``gone``: Pro from 1 to 4 November, then deleted: 3/30 of 4900 = 490, to date and estimate alike.
- ``sandbox``: Free all month: 0.
The team: 2395 to date, 4228 estimated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from accounts_service.models import Account, PlanSpan
from accounts_service.rights import PLATFORM
from billing.models import Plan
from billing.services import usage_hours_add
from billing.units import GIB

NOV = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
APP_TO_DATE, APP_ESTIMATE, GONE, TEAM_TO_DATE, TEAM_ESTIMATE = 1905, 3738, 490, 2395, 4228


@dataclass
class Month:
    app: Account
    sandbox: Account
    gone_key: str


def clock_set(monkeypatch, at: dt.datetime = NOW) -> None:
    """Every ``timezone.now()`` answers ``at``."""
    monkeypatch.setattr("django.utils.timezone.now", lambda: at)


def month_build(team) -> Month:
    from accounts_service.services import account_create, account_delete, account_plan_set

    Plan.objects.filter(name="pro").update(base_price_cents=4900, data_bytes=10 * GIB, overage_cents_per_gib=40,
                                           connection_hours=1000, connection_cents_per_1000_hours=8,
                                           storage_gib_hours=100, storage_cents_per_1000_gib_hours=20)
    Plan.objects.filter(name="developer").update(base_price_cents=900, data_bytes=GIB, overage_cents_per_gib=0,
                                                 connection_hours=500, connection_cents_per_1000_hours=10,
                                                 storage_gib_hours=-1, storage_cents_per_1000_gib_hours=0)
    Plan.objects.filter(name="free").update(base_price_cents=0, overage_cents_per_gib=0,
                                            connection_cents_per_1000_hours=0, storage_cents_per_1000_gib_hours=0)
    app = account_create(actor=PLATFORM, team=team, name="app", plan="developer")
    PlanSpan.objects.filter(account_public_key=app.public_key).update(at=NOV - dt.timedelta(days=10))
    account_plan_set(actor=PLATFORM, account=app, plan="pro")
    PlanSpan.objects.filter(account_public_key=app.public_key, plan="pro").update(at=NOV + dt.timedelta(days=9))
    gone = account_create(actor=PLATFORM, team=team, name="gone", plan="pro")
    account_delete(actor=PLATFORM, account=gone)
    PlanSpan.objects.filter(account_public_key=gone.public_key, plan="pro").update(at=NOV)
    PlanSpan.objects.filter(account_public_key=gone.public_key, plan="").update(at=NOV + dt.timedelta(days=3))
    sandbox = account_create(actor=PLATFORM, team=team, name="sandbox", plan="free")
    PlanSpan.objects.filter(account_public_key=sandbox.public_key).update(at=NOV - dt.timedelta(days=1))
    usage_hours_add(account_public_key=app.public_key, hour=NOV + dt.timedelta(days=4),
                    connection_seconds=300 * 3600.0)
    usage_hours_add(account_public_key=app.public_key, hour=NOV + dt.timedelta(days=14, hours=5),
                    sent_bytes=3 * GIB, received_bytes=2 * GIB, connection_seconds=100 * 3600.0)
    usage_hours_add(account_public_key=sandbox.public_key, hour=NOV + dt.timedelta(days=2),
                    sent_bytes=GIB)
    app.refresh_from_db()
    return Month(app=app, sandbox=sandbox, gone_key=gone.public_key)
