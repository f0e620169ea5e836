"""The data migration billing 0007: accounts whose JetStream was on with streams or consumer at 0 (unlimited to
nats-server) get what they may have, and are re-signed (the re-sign's signal pushes them)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from accounts_service.models import Account
from accounts_service.rights import PLATFORM
from accounts_service.services import account_create
from billing.models import Plan
from operators import claims

pytestmark = pytest.mark.django_db

migration = importlib.import_module("billing.migrations.0007_jetstream_zero_limits")


def _legacy(account: Account, **fields) -> Account:
    """The row as the old encoding left it (0 meaning unlimited to the server), without re-signing."""
    Account.objects.filter(pk=account.pk).update(**fields)
    account.refresh_from_db()
    return account


def _jwt_js(account: Account) -> dict:
    account.refresh_from_db()
    limits = claims.decode(account.jwt).claims["nats"]["limits"]
    return {k: limits[k] for k in ("mem_storage", "disk_storage", "streams", "consumer")}


def test_zero_counts_with_jetstream_on_take_the_ceiling_or_unlimited(operator_setup, team):
    free = Plan.objects.get(name="free")
    on_plan = _legacy(account_create(actor=PLATFORM, team=team, name="free-js", plan="free"), streams=0, consumer=0)
    own = _legacy(account_create(actor=PLATFORM, team=team, name="ops-js", limits={"disk_storage": 1 << 20}),
                  streams=0, consumer=0)
    half = _legacy(account_create(actor=PLATFORM, team=team, name="half", plan="free"), consumer=0)
    off = account_create(actor=PLATFORM, team=team, name="no-js")  # storage 0/0: JetStream off, 0s stay
    versions = {a.pk: a.version for a in (on_plan, own, half, off)}

    migration.jetstream_zero_limits(apps, None)

    assert _jwt_js(on_plan) == {"mem_storage": 0, "disk_storage": free.disk_storage, "streams": 5, "consumer": 50}
    assert (on_plan.streams, on_plan.consumer, on_plan.version) == (5, 50, versions[on_plan.pk] + 1)
    assert _jwt_js(own) == {"mem_storage": 0, "disk_storage": 1 << 20, "streams": -1, "consumer": -1}
    assert (own.streams, own.consumer) == (-1, -1)
    half.refresh_from_db()
    assert (half.streams, half.consumer) == (5, 50)
    off.refresh_from_db()
    assert (off.streams, off.consumer, off.version) == (0, 0, versions[off.pk])

    # run again: nothing left to change
    migration.jetstream_zero_limits(apps, None)
    assert Account.objects.get(pk=on_plan.pk).version == versions[on_plan.pk] + 1


def test_the_re_sign_is_pushed(operator_setup, team, django_capture_on_commit_callbacks):
    """The re-sign sends ``account_jwt_issued`` once it commits: the gateway's receiver pushes on it."""
    from operators.signals import account_jwt_issued

    account = _legacy(account_create(actor=PLATFORM, team=team, name="free-js", plan="free"), streams=0, consumer=0)
    issued = []

    def record(sender, **kwargs):
        issued.append(kwargs)

    account_jwt_issued.connect(record, dispatch_uid="test.migration_push")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            migration.jetstream_zero_limits(apps, None)
    finally:
        account_jwt_issued.disconnect(dispatch_uid="test.migration_push")
    assert [k.get("account_public_key") for k in issued] == [account.public_key]
