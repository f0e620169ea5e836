"""The four plans, as data (staff edit them in the admin)."""

from django.db import migrations

from billing.units import GIB, MIB

PLANS = [
    # name, title, order, conn, payload, subs, leaf, imports, exports, mem, disk, streams, consumers,
    # accounts per team, monthly data bytes, base cents, overage cents per GiB
    ("free", "Free", 0, 50, 1 * MIB, 1_000, 2, 25, 25, 0, 256 * MIB, 5, 50, 2, 1 * GIB, 0, 0),
    ("developer", "Developer", 1, 250, 1 * MIB, 10_000, 5, 50, 50, 64 * MIB, 5 * GIB, 25, 250, 5, 25 * GIB, 900, 0),
    ("pro", "Pro", 2, 2_000, 8 * MIB, 100_000, 25, 250, 250, 512 * MIB, 50 * GIB, 250, 2_500, 25, 250 * GIB,
     4_900, 40),
    ("business", "Business", 3, 20_000, 8 * MIB, 1_000_000, 250, 1_000, 1_000, 4 * GIB, 500 * GIB, 2_500, 25_000,
     -1, 2_500 * GIB, 29_900, 25),
]
FIELDS = ("name", "title", "sort_order", "conn", "payload", "subs", "leaf", "imports", "exports", "mem_storage",
          "disk_storage", "streams", "consumer", "accounts_per_team", "data_bytes", "base_price_cents",
          "overage_cents_per_gib")


def plans_create(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for row in PLANS:
        Plan.objects.update_or_create(name=row[0], defaults=dict(zip(FIELDS[1:], row[1:], strict=True)))


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_ledger")]
    operations = [migrations.RunPython(plans_create, migrations.RunPython.noop)]
