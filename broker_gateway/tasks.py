"""Celery tasks of the broker gateway: ids in, a service call, retries on transient NATS errors only.

The ``name``s are the ones the beat schedule and messages already queued use.
"""

from __future__ import annotations

from celery import shared_task

from broker_gateway import propagation
from broker_gateway.gateway import GatewayUnavailable

_RETRY = {"autoretry_for": (GatewayUnavailable,), "retry_backoff": 1, "retry_backoff_max": 30, "max_retries": 8,
          "retry_jitter": True, "acks_late": True}


@shared_task(name="broker_gateway.tasks.account_push", **_RETRY)
def account_push_task(account_id: int) -> None:
    """Push an account's latest JWT (read now, from the database) to every healthy node."""
    propagation.account_push_latest(account_id=account_id)


@shared_task(name="broker_gateway.tasks.account_delete_push", **_RETRY)
def account_delete_push_task(public_key: str) -> None:
    """Send the operator-signed delete claim of a deleted account to every healthy node."""
    propagation.account_delete_push(public_keys=[public_key])


@shared_task(name="broker_gateway.tasks.fleet_reconcile", acks_late=True)
def fleet_reconcile_task() -> None:
    """Beat: re-push every account some healthy node has not acknowledged at its latest version."""
    try:
        propagation.fleet_reconcile()
    except GatewayUnavailable:
        pass  # no node to talk to: the next beat tries again


@shared_task(name="broker_gateway.tasks.fleet_verify", acks_late=True)
def fleet_verify_task() -> None:
    """Beat: check with LIST and LOOKUP what nodes really hold, and repair it."""
    try:
        propagation.fleet_verify()
    except GatewayUnavailable:
        pass
