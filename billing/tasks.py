"""Billing's beat tasks (thin: they call services)."""

from celery import shared_task

from billing.invoices import invoices_generate
from billing.plans import plan_accounts_apply
from billing.quotas import quotas_enforce


@shared_task(name="billing.tasks.quotas_enforce")
def quotas_enforce_task() -> int:
    return quotas_enforce()


@shared_task(name="billing.tasks.invoices_generate")
def invoices_generate_task() -> int:
    return invoices_generate()


@shared_task(name="billing.tasks.plan_accounts_apply", acks_late=True)
def plan_accounts_apply_task(plan_name: str, before: dict[str, int], account_ids: list[int]) -> int:
    return plan_accounts_apply(plan_name=plan_name, before=before, account_ids=account_ids)
