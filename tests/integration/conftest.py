"""Fixtures of the integration tests: a real Redis that this test process's Celery publishes to."""

from __future__ import annotations

import pytest

from tests.fleet import start_redis


def _broker_connections_forget(app) -> None:
    """Drop the app's cached broker connections so the next publish connects to ``app.conf.broker_url``.

    What Celery itself does after a fork (``Celery._after_fork``): the connection pool (``app.pool``) and the
    producer pool (``app.amqp.producer_pool``) are built on first use from the configuration of that moment.
    """
    from kombu import pools

    pools.reset()  # close every pooled connection (https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.pools.html)
    app.close()  # forget app.pool
    app.amqp._producer_pool = None


@pytest.fixture
def redis_broker(tmp_path):
    """A real Redis, and the test process's Celery publishing to it (not eager, unlike the tests' default) until
    the test ends."""
    from accounts_service.celery import app

    redis = start_redis(tmp_path / "redis")
    saved = {key: app.conf[key] for key in ("task_always_eager", "broker_url")}
    app.conf.update(task_always_eager=False, broker_url=redis.url)
    _broker_connections_forget(app)
    try:
        yield redis
    finally:
        app.conf.update(saved)
        _broker_connections_forget(app)
        redis.stop()
