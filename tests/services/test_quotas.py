"""Quotas without a fleet: warnings once per period, suspension past the allowance, resumption next period."""

from __future__ import annotations

import datetime as dt
import smtplib

import pytest
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend

from accounts_service.rights import PLATFORM
from billing.models import Plan, QuotaNotice
from billing.services import usage_hours_add

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def account(operator_setup, team):
    from accounts_service.services import account_create

    Plan.objects.filter(name="free").update(data_bytes=1000)
    return account_create(actor=PLATFORM, team=team, name="metered", plan="free")


@pytest.fixture
def owner(team):
    from django.contrib.auth import get_user_model

    from accounts_service.models import TeamMembership

    user = get_user_model().objects.create_user(username="o@example.com", email="o@example.com")
    TeamMembership.objects.create(team=team, user=user, role=TeamMembership.Role.OWNER)
    return user


class FailingBackend(EmailBackend):
    """Django's in-memory mail backend, raising the queued ``errors`` on the first sends."""

    errors: list[Exception] = []
    attempts = 0

    def send_messages(self, messages):
        FailingBackend.attempts += 1
        if FailingBackend.errors:
            raise FailingBackend.errors.pop(0)
        return super().send_messages(messages)


@pytest.fixture
def failing_mail(settings):
    settings.EMAIL_BACKEND = "tests.services.test_quotas.FailingBackend"
    FailingBackend.errors, FailingBackend.attempts = [], 0
    return FailingBackend


def _used(account, hour, sent, received):
    usage_hours_add(account_public_key=account.public_key, hour=hour, sent_bytes=sent,
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


def test_warnings_are_mailed_to_the_owners_by_the_mail_task_once_committed(account, owner,
                                                                          django_capture_on_commit_callbacks):
    from billing.quotas import quota_evaluate

    _used(account, NOW - dt.timedelta(hours=1), 900, 0)  # 90 %
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert quota_evaluate(account=account, now=NOW)["notices"] == [80, 90]
        assert mail.outbox == []  # nothing leaves before the notices are committed
    assert len(callbacks) == 2
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["o@example.com"], f"natsctl: account metered used {threshold}% of its monthly data")
        for threshold in (80, 90)]
    assert mail.outbox[1].body == (
        f"The account metered ({account.public_key}) on the Free plan has used 900 of its 1,000 bytes "
        f"({1000 / 1024**3:g} GiB) this month. Consider upgrading before it runs out.\n")


def test_quota_mail_is_retried_on_smtp_errors_and_on_nothing_else(account, owner, failing_mail,
                                                                  django_capture_on_commit_callbacks):
    from billing.quotas import quota_evaluate

    _used(account, NOW - dt.timedelta(hours=1), 800, 0)  # 80 %: one notice
    failing_mail.errors = [smtplib.SMTPServerDisconnected("gone"), ConnectionRefusedError("no SMTP server")]
    with django_capture_on_commit_callbacks(execute=True):
        assert quota_evaluate(account=account, now=NOW)["notices"] == [80]
    assert (failing_mail.attempts, len(mail.outbox)) == (3, 1)

    _used(account, NOW - dt.timedelta(hours=2), 100, 0)  # 90 %: a bug in sending is not tried again
    failing_mail.errors, failing_mail.attempts = [ValueError("a bug")], 0
    with django_capture_on_commit_callbacks(execute=True):
        assert quota_evaluate(account=account, now=NOW)["notices"] == [90]
    assert (failing_mail.attempts, len(mail.outbox)) == (1, 1)


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
