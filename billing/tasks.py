"""Billing's tasks (thin: they call services): the beat tasks and plan edits on the billing queue, quota mail on
the mail queue (https://docs.celeryq.dev/en/stable/userguide/tasks.html#list-of-options)."""

import smtplib

from celery import shared_task

from billing.invoices import invoices_generate
from billing.plans import plan_accounts_apply
from billing.quotas import quota_notice_mail, quotas_enforce

# Limits stay under the broker's visibility timeout (CELERY_VISIBILITY_TIMEOUT, 300 s): with acks_late, a task
# still unacknowledged then is handed to a second worker as well. The same holds for a retry's countdown.
SOFT_TIME_LIMIT, TIME_LIMIT = 240, 270

# What is worth another try: the SMTP server answering an error, or refusing, dropping or not answering the
# connection. Anything else is a bug and is not retried.
SMTP_ERRORS = (smtplib.SMTPException, ConnectionError, TimeoutError)


@shared_task(name="billing.tasks.quotas_enforce", queue="billing", soft_time_limit=SOFT_TIME_LIMIT,
             time_limit=TIME_LIMIT)
def quotas_enforce_task() -> int:
    return quotas_enforce()


@shared_task(name="billing.tasks.invoices_generate", queue="billing", soft_time_limit=SOFT_TIME_LIMIT,
             time_limit=TIME_LIMIT)
def invoices_generate_task() -> int:
    return invoices_generate()


@shared_task(name="billing.tasks.plan_accounts_apply", queue="billing", acks_late=True,
             soft_time_limit=SOFT_TIME_LIMIT, time_limit=TIME_LIMIT)
def plan_accounts_apply_task(plan_name: str, before: dict[str, int], account_ids: list[int]) -> int:
    return plan_accounts_apply(plan_name=plan_name, before=before, account_ids=account_ids)


@shared_task(name="billing.tasks.quota_notice_mail", queue="mail", soft_time_limit=60, time_limit=90,
             autoretry_for=SMTP_ERRORS, max_retries=6, retry_backoff=10, retry_backoff_max=240, retry_jitter=True)
def quota_notice_mail_task(notice_id: int, plan_name: str) -> int:
    return quota_notice_mail(notice_id=notice_id, plan_name=plan_name)
