"""Payouts' beat task (thin: it calls the service), on the billing queue."""

from celery import shared_task

from payouts.services import payouts_run_due

SOFT_TIME_LIMIT, TIME_LIMIT = 240, 270  # under the broker's visibility timeout, as billing's tasks


@shared_task(name="payouts.tasks.payouts_run_due", queue="billing", soft_time_limit=SOFT_TIME_LIMIT,
             time_limit=TIME_LIMIT)
def payouts_run_due_task() -> str:
    statement = payouts_run_due()
    return statement.period if statement is not None else ""
