"""Celery tasks of the broker gateway: ids in, a service call, retries on transient NATS errors only.

They run on the ``propagation`` queue, so pushes never wait behind slower work. Every limit stays under the
Redis visibility timeout (CELERY_VISIBILITY_TIMEOUT, 300 s), past which a task still running (acks_late) would
be handed to a second worker. https://docs.celeryq.dev/en/stable/userguide/workers.html#time-limits
The ``name``s are the ones the beat schedule and messages already queued use.
"""

from __future__ import annotations

from celery import shared_task

from broker_gateway import propagation
from broker_gateway.gateway import GatewayUnavailable

_RETRY = {"autoretry_for": (GatewayUnavailable,), "retry_backoff": 1, "retry_backoff_max": 30, "max_retries": 8,
          "retry_jitter": True, "acks_late": True}


# One account: a push round trip is NATS_PUSH_TIMEOUT (2 s) at most, and a re-signed account is pushed twice.
@shared_task(name="broker_gateway.tasks.account_push", queue="propagation", soft_time_limit=30, time_limit=60,
             **_RETRY)
def account_push_task(account_id: int) -> None:
    """Push an account's latest JWT (read now, from the database) to every healthy node."""
    propagation.account_push_latest(account_id=account_id)


@shared_task(name="broker_gateway.tasks.account_delete_push", queue="propagation", soft_time_limit=30,
             time_limit=60, **_RETRY)
def account_delete_push_task(public_key: str) -> None:
    """Send the operator-signed delete claim of a deleted account to every healthy node."""
    propagation.account_delete_push(public_keys=[public_key])


# The whole fleet: a full push runs at a few thousand accounts a second (docs/BENCHMARKS.md), so these limits
# leave room for some hundred thousand accounts; a run cut short is picked up by the next beat.
@shared_task(name="broker_gateway.tasks.fleet_reconcile", queue="propagation", soft_time_limit=120,
             time_limit=180, acks_late=True)
def fleet_reconcile_task() -> None:
    """Beat: re-push every account some healthy node has not acknowledged at its latest version."""
    try:
        propagation.fleet_reconcile()
    except GatewayUnavailable:
        pass  # no node to talk to: the next beat tries again


@shared_task(name="broker_gateway.tasks.fleet_verify", queue="propagation", soft_time_limit=120, time_limit=180,
             acks_late=True)
def fleet_verify_task() -> None:
    """Beat: check with LIST and LOOKUP what nodes really hold, and repair it."""
    try:
        propagation.fleet_verify()
    except GatewayUnavailable:
        pass
