"""The CLI against a real nats-server: ``account push`` and ``account delete --url``."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command

from accounts_service.models import Account
from broker_gateway.propagation import account_lookup

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip()


def test_account_push_returns_once_the_server_answered(nats_server):
    a = run("account", "create", "--team", "acme", "--name", "svc")
    started = time.monotonic()
    out = run("account", "push", a, "--url", nats_server.url, "--timeout", "20")
    elapsed = time.monotonic() - started
    assert "200 jwt updated" in out
    # One server with no routes: the push is done when it answered, not when the 20 s are up.
    assert elapsed < 5, elapsed
    assert account_lookup(account_public_key=a, url=nats_server.url) == Account.objects.get(public_key=a).jwt


def test_account_delete_url_deletes_it_from_that_server(nats_server):
    a = run("account", "create", "--team", "acme", "--name", "svc")
    run("account", "push", a, "--url", nats_server.url)
    assert account_lookup(account_public_key=a, url=nats_server.url)
    started = time.monotonic()
    out = run("account", "delete", a, "--url", nats_server.url, "--timeout", "20")
    assert f"deleted {a}" in out and "deleted 1 accounts" in out
    assert time.monotonic() - started < 5
    assert account_lookup(account_public_key=a, url=nats_server.url) == ""
