"""Existing accounts whose JetStream is on with ``streams`` or ``consumer`` at 0: nats-server read those 0s as
unlimited, and from now on 0 means none (``streams = 0`` is JetStream off, ``consumer = 0`` is refused while
JetStream is on; ``accounts_service.selectors.account_jetstream_limits``). Each such limit takes what the tenant
may have: the plan's ceiling, or -1 (unlimited, as the server gave them) for an account without a plan or on a plan
without that ceiling. The account is re-signed through the service, whose signal pushes it to the fleet.

It signs JWTs, so it calls the service with the current models, and only when an operator exists (a fresh database
has no account to change), like ``accounts_service/migrations/0004_usage_imports.py``.
"""

from django.db import migrations

JETSTREAM_COUNTS = ("streams", "consumer")


def jetstream_zero_limits(apps, schema_editor):
    Operator = apps.get_model("operators", "Operator")
    if not Operator.objects.exists():
        return
    from django.db.models import Q

    from accounts_service.models import Account
    from accounts_service.rights import PLATFORM
    from accounts_service.services import account_update
    from billing.models import Plan

    ceilings = {plan.name: plan.account_limits() for plan in Plan.objects.all()}
    stale = (Account.objects.filter(is_system=False).exclude(mem_storage=0, disk_storage=0)
             .filter(Q(streams=0) | Q(consumer=0)).order_by("pk"))
    for account in stale:
        plan = ceilings.get(account.plan, {})
        limits = {field: plan.get(field, -1) for field in JETSTREAM_COUNTS if getattr(account, field) == 0}
        if limits.get("consumer") == 0:
            # A plan allowing no consumers but some streams: the server cannot say so; JetStream off is within it.
            limits["streams"] = 0
        account_update(account=account, actor=PLATFORM, limits=limits)


class Migration(migrations.Migration):
    dependencies = [("billing", "0006_sample_kind"), ("accounts_service", "0010_user_tags"),
                    ("operators", "0001_initial")]
    operations = [migrations.RunPython(jetstream_zero_limits, migrations.RunPython.noop)]
