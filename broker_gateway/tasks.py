"""Celery tasks of the broker gateway: ids in, a service call, retries on transient NATS errors only."""

from __future__ import annotations

from celery import shared_task

from broker_gateway import services
from broker_gateway.gateway import GatewayUnavailable

_RETRY = {"autoretry_for": (GatewayUnavailable,), "retry_backoff": 1, "retry_backoff_max": 30, "max_retries": 8,
          "retry_jitter": True, "acks_late": True}


@shared_task(**_RETRY)
def account_push(account_id: int) -> None:
    """Push an account's latest JWT (read now, from the database) to every healthy node."""
    services.account_push_latest(account_id=account_id)


@shared_task(**_RETRY)
def account_delete_push(public_key: str) -> None:
    """Send the operator-signed delete claim of a deleted account to every healthy node."""
    services.account_delete_push(public_keys=[public_key])


@shared_task(acks_late=True)
def fleet_reconcile() -> None:
    """Beat: re-push every account some healthy node has not acknowledged at its latest version."""
    try:
        services.fleet_reconcile()
    except GatewayUnavailable:
        pass  # no node to talk to: the next beat tries again


@shared_task(acks_late=True)
def fleet_verify() -> None:
    """Beat: check with LIST and LOOKUP what nodes really hold, and repair it."""
    try:
        services.fleet_verify()
    except GatewayUnavailable:
        pass
