"""Staff edit plans (the admin); the accounts on an edited plan follow it: re-signed with the new ceilings and
pushed to the fleet (a Celery task, since a plan may hold many accounts)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.db import transaction

from accounts_service.models import LIMIT_FIELDS, Account
from accounts_service.rights import PLATFORM
from accounts_service.services import account_update
from billing.models import Plan

log = logging.getLogger(__name__)


def limits_follow(*, current: Mapping[str, int], before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """An account's limits once its plan's ceilings went from ``before`` to ``after`` (pure): a limit at the old
    allowance takes the new one; a limit the tenant set lower stays, unless the new ceiling is lower still."""
    out = {}
    for field in LIMIT_FIELDS:
        value, old, new = current[field], before.get(field), after.get(field)
        if new is None or old == new:
            continue
        if value == old or (new != -1 and (value == -1 or value > new)):
            out[field] = new
    return out


@transaction.atomic
def plan_save(*, plan: Plan) -> None:
    """Save an edited plan; when its ceilings changed, its accounts follow once the save commits."""
    before = Plan.objects.filter(pk=plan.pk).first() if plan.pk else None
    plan.save()
    if before is None or before.account_limits() == plan.account_limits():
        return
    ids = list(Account.objects.filter(plan=plan.name, is_system=False).values_list("pk", flat=True))
    if ids:
        from billing.tasks import plan_accounts_apply_task

        limits, name = before.account_limits(), plan.name
        transaction.on_commit(lambda: plan_accounts_apply_task.delay(name, limits, ids))


def plan_accounts_apply(*, plan_name: str, before: Mapping[str, int], account_ids: list[int]) -> int:
    """Re-sign each account with its limits following the plan's new ceilings; returns how many changed."""
    after = Plan.objects.get(name=plan_name).account_limits()
    changed = 0
    for account in Account.objects.filter(pk__in=account_ids, plan=plan_name):
        limits = limits_follow(current={f: getattr(account, f) for f in LIMIT_FIELDS}, before=before, after=after)
        if limits:
            account_update(account=account, limits=limits, actor=PLATFORM)
            changed += 1
    log.info("plan %s: %d of %d accounts re-signed with its new limits", plan_name, changed, len(account_ids))
    return changed
