"""Quotas without a fleet: warnings once per period, suspension past the allowance, resumption next period."""

from __future__ import annotations

import datetime as dt

import pytest

from accounts_service.rights import PLATFORM
from billing.models import Plan, QuotaNotice, UsageHour

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def account(operator_setup, team):
    from accounts_service.services import account_create

    Plan.objects.filter(name="free").update(data_bytes=1000)
    return account_create(actor=PLATFORM, team=team, name="metered", plan="free")


def _used(account, hour, sent, received):
    UsageHour.objects.create(account_public_key=account.public_key, hour=hour, sent_bytes=sent,
                             received_bytes=received)


def test_thresholds_suspend_and_the_next_period_resumes(account):
    from billing.quotas import quota_evaluate

    _used(account, NOW - dt.timedelta(hours=2), 500, 350)  # 85 %
    assert quota_evaluate(account=account, now=NOW)["notices"] == [80]
    _used(account, NOW - dt.timedelta(hours=1), 100, 100)  # 105 %
    result = quota_evaluate(account=account, now=NOW)
    assert result["notices"] == [90, 100] and result["suspended"]
    account.refresh_from_db()
    assert account.suspended_at is not None
    assert '"conn":0' in _payload(account.jwt)
    # December: the allowance starts over, the account is back with its own limits.
    result = quota_evaluate(account=account, now=dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC))
    account.refresh_from_db()
    assert not result["suspended"] and account.suspended_at is None and '"conn":50' in _payload(account.jwt)
    assert QuotaNotice.objects.count() == 3


def test_a_plan_with_overage_is_never_suspended(account):
    from accounts_service.services import account_plan_set
    from billing.quotas import quota_evaluate

    Plan.objects.filter(name="pro").update(data_bytes=1000)
    account = account_plan_set(actor=PLATFORM, account=account, plan="pro")
    _used(account, NOW - dt.timedelta(hours=1), 5000, 0)
    result = quota_evaluate(account=account, now=NOW)
    assert result["notices"] == [80, 90, 100] and not result["suspended"]


def test_unknown_plan_is_refused_and_changes_nothing(account):
    from accounts_service.services import account_plan_set
    from core.errors import ApplicationError

    with pytest.raises(ApplicationError, match="unknown plan"):
        account_plan_set(actor=PLATFORM, account=account, plan="platinum")
    account.refresh_from_db()
    assert account.plan == "free"


def _payload(jwt: str) -> str:
    import base64
    import json

    body = jwt.split(".")[1]
    return json.dumps(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["nats"]["limits"],
                      separators=(",", ":"))
