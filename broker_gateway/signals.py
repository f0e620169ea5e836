"""Every issued account JWT and every deleted account is pushed to the fleet, enqueued on commit."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from accounts_service.signals import account_deleted
from operators.signals import account_jwt_issued

log = logging.getLogger(__name__)


def _enqueue(task, *args) -> None:
    # Enqueue failures (Redis down) must not fail the tenant's change: the reconciler pushes it later.
    try:
        task.delay(*args)
    except Exception as exc:
        log.warning("could not enqueue %s (%s); the reconciler will push it", task.name, exc)


@receiver(account_jwt_issued, dispatch_uid="broker_gateway.push_on_issue")
def _push_on_issue(sender, account_public_key: str, **kwargs) -> None:
    from accounts_service.models import Account
    from broker_gateway.models import BrokerNode
    from broker_gateway.tasks import account_push_task

    if not BrokerNode.objects.exists():
        return  # no fleet yet (tests, a CLI-only setup): nothing to push to
    account_id = Account.objects.filter(public_key=account_public_key).values_list("pk", flat=True).first()
    if account_id is not None:
        _enqueue(account_push_task, account_id)


@receiver(account_deleted, dispatch_uid="broker_gateway.delete_on_delete")
def _push_delete(sender, account_public_key: str, **kwargs) -> None:
    from broker_gateway.models import BrokerNode
    from broker_gateway.tasks import account_delete_push_task

    if BrokerNode.objects.exists():
        _enqueue(account_delete_push_task, account_public_key)
