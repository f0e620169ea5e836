"""Billing's beat tasks (thin: they call services)."""

from celery import shared_task

from billing.quotas import quotas_enforce


@shared_task(name="billing.tasks.quotas_enforce")
def quotas_enforce_task() -> int:
    return quotas_enforce()
