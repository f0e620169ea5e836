"""Quota enforcement: the servers do not enforce the monthly data allowance, so the control plane does.

Warnings at 80, 90 and 100 % (mail to the team's owners, once per period, sent by the mail task); past 100 %
on a plan without overage the account is suspended (its JWT admits no connection), and it is resumed when it
fits again: an upgrade, or the next period.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts_service.models import Account, TeamMembership
from accounts_service.rights import PLATFORM
from accounts_service.services import account_resume, account_suspend
from billing.models import Plan, QuotaNotice
from billing.selectors import month_used_bytes, period_start
from billing.units import GIB

log = logging.getLogger(__name__)

THRESHOLDS = (80, 90, 100)
SUSPEND_REASON = "monthly data allowance used up"


def _notice(account: Account, plan: Plan, threshold: int, used: int, period: dt.datetime) -> bool:
    try:
        with transaction.atomic():
            notice = QuotaNotice.objects.create(account_public_key=account.public_key, period_start=period,
                                                threshold=threshold, used_bytes=used, data_bytes=plan.data_bytes)
    except IntegrityError:
        return False
    from billing.tasks import quota_notice_mail_task  # (billing.tasks imports this module)

    # SMTP is slow outside I/O that may fail: its own task and queue, once the notice is committed.
    quota_notice_mail_task.delay_on_commit(notice.pk, plan.name)
    return True


def quota_notice_mail(*, notice_id: int, plan_name: str) -> int:
    """Mail a quota notice to the account's team owners (the mail task); returns how many it mailed to."""
    notice = QuotaNotice.objects.filter(pk=notice_id).first()
    account = (Account.objects.filter(public_key=notice.account_public_key).select_related("team").first()
               if notice is not None else None)
    plan = Plan.objects.filter(name=plan_name).first()
    if notice is None or account is None or plan is None:
        return 0  # deleted meanwhile: nobody left to tell, or nothing to tell them by
    emails = list(TeamMembership.objects.filter(team=account.team, role=TeamMembership.Role.OWNER)
                  .exclude(user__email="").values_list("user__email", flat=True))
    if not emails:
        return 0
    threshold, used, data_bytes = notice.threshold, notice.used_bytes, notice.data_bytes
    action = ("New connections are refused until you upgrade or the next month starts."
              if threshold >= 100 and not plan.overage_cents_per_gib else
              "Traffic past the allowance is billed as overage." if threshold >= 100 else
              "Consider upgrading before it runs out.")
    send_mail(f"natsctl: account {account.name} used {threshold}% of its monthly data",
              f"The account {account.name} ({account.public_key}) on the {plan.title} plan has used "
              f"{used:,} of its {data_bytes:,} bytes ({data_bytes / GIB:g} GiB) this month. {action}\n",
              settings.DEFAULT_FROM_EMAIL, emails)
    return len(emails)


def quota_evaluate(*, account: Account, now: dt.datetime | None = None) -> dict[str, object]:
    """Warn, suspend or resume one account; returns what it found."""
    now = now or timezone.now()
    plan = Plan.objects.filter(name=account.plan).first() if account.plan else None
    used = month_used_bytes(account_public_key=account.public_key, now=now)
    out: dict[str, object] = {"used_bytes": used, "notices": [], "suspended": account.suspended_at is not None}
    if plan is None or plan.data_bytes < 0:
        over = False
    else:
        period = period_start(now)
        for threshold in THRESHOLDS:
            if used * 100 >= plan.data_bytes * threshold and _notice(account, plan, threshold, used, period):
                out["notices"].append(threshold)
        over = used >= plan.data_bytes and not plan.overage_cents_per_gib
    if over and account.suspended_at is None:
        account_suspend(account=account, reason=SUSPEND_REASON, actor=PLATFORM)
        out["suspended"] = True
    elif not over and account.suspended_at is not None and account.suspended_reason == SUSPEND_REASON:
        account_resume(account=account, actor=PLATFORM)
        out["suspended"] = False
    return out


def quotas_enforce(*, now: dt.datetime | None = None) -> int:
    """Every tenant account on a plan (the beat task); returns how many changed state or got a notice."""
    changed = 0
    for account in Account.objects.exclude(plan="").filter(is_system=False).select_related("team"):
        before = account.suspended_at is not None
        result = quota_evaluate(account=account, now=now)
        changed += bool(result["notices"]) or result["suspended"] != before
    return changed


def on_plan_changed(sender, *, account_id: int, **_) -> None:
    """accounts_service's ``account_plan_changed``, on commit of any plan change (web, API, admin, shell):
    re-evaluate the quota, so an upgrade ends a quota suspension at once."""
    account = Account.objects.filter(pk=account_id).select_related("team").first()
    if account is not None:
        quota_evaluate(account=account)
