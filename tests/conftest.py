"""Shared fixtures: an operator with its system account, and real nats-server processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from accounts_service.rights import PLATFORM
from tests.natsproc import NatsServer, free_port, start_nats_server


@pytest.fixture(autouse=True, scope="session")
def _celery_eager():
    """Tasks run in the test's own process unless a test starts a real worker (tests/fleet.py)."""
    from accounts_service.celery import app

    app.conf.task_always_eager = True
    yield


@pytest.fixture(autouse=True, scope="session")
def _fast_password_hashing():
    """Tests hash passwords with a cheap hasher: the production one (PBKDF2, 1,000,000 rounds) costs ~0.5 s a
    password on this machine's CPUs, and the suite creates and logs in hundreds of people. What is tested about
    hashing (that a known and a new email cost one hash each, tests/web/test_hostile_web.py) counts calls, not
    seconds; PBKDF2 stays listed so a stored PBKDF2 hash still verifies. Processes a test starts (gunicorn, the
    worker) keep the product's settings."""
    from django.conf import settings
    from django.contrib.auth import hashers

    saved = settings.PASSWORD_HASHERS
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *saved]
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()
    yield
    settings.PASSWORD_HASHERS = saved
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()


@pytest.fixture(autouse=True)
def _throttles_reset():
    """API throttling counts in the cache; each test starts with a clean slate."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _gateway_closed():
    """Each test gets a fresh fleet connection (nodes differ per test)."""
    yield
    from broker_gateway.services import gateway_reset

    gateway_reset()


@pytest.fixture
def operator_setup(db, tmp_path: Path):
    """An operator (identity seed written to a 0600 file, not stored) and its system account; the plans the
    data migration seeds are put back, since transactional tests flush every table."""
    import importlib

    from django.apps import apps

    from accounts_service.services import system_account_ensure
    from operators.services import operator_init

    importlib.import_module("billing.migrations.0002_plans").plans_create(apps, None)

    result = operator_init(name="test-op", identity_seed_out=tmp_path / "operator.nk")
    system_account_ensure()
    return result


@pytest.fixture
def team(db):
    from accounts_service.services import team_create

    return team_create(actor=PLATFORM, name="acme")


@pytest.fixture
def other_team(db):
    from accounts_service.services import team_create

    return team_create(actor=PLATFORM, name="globex")


@pytest.fixture
def nats_server(operator_setup, tmp_path: Path):
    """A real nats-server in operator mode with the full resolver, on free loopback ports."""
    from broker_gateway.nodes import server_config_build

    port, http_port = free_port(), free_port()
    config = server_config_build(
        resolver_dir=tmp_path / "jwt", server_name="test-node", port=port, http_port=http_port,
        resolver_interval="2m",
    )
    server: NatsServer = start_nats_server(config, tmp_path / "nats", port=port, http_port=http_port)
    yield server
    server.stop()
