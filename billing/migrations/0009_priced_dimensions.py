"""Every metered dimension priced (issue 15): plans get an allowance and a unit price for connection-hours and
JetStream GiB-hours (the seeded four get the defaults below; a plan staff made keeps -1/0: unlimited, not priced),
and invoice lines become one per plan held and priced dimension, with exact integer quantities.

Invoices issued before keep their amounts and quantities; their lines are restated in the new columns: the period
is the invoice's, a base line measured the whole period in seconds, and an ``overage`` line becomes a ``data`` line
(measured: the bytes used, included: the allowance, billed: the bytes past it).
"""

from django.db import migrations, models

# name: (connection-hours included, cents per 1,000 connection-hours past them,
#        GiB-hours included, cents per 1,000 GiB-hours past them)
PRICES = {
    "free": (-1, 0, -1, 0),  # free stays free: its limits (50 connections, 256 MiB) bound it
    "developer": (50_000, 10, 730, 25),  # ~68 connections and 1 GiB held all month included
    "pro": (500_000, 8, 7_300, 20),  # ~684 connections and 10 GiB
    "business": (5_000_000, 5, 73_000, 15),  # ~6,849 connections and 100 GiB
}


def plans_priced(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for name, (hours, hour_cents, gib_hours, gib_hour_cents) in PRICES.items():
        Plan.objects.filter(name=name, connection_hours=-1, connection_cents_per_1000_hours=0, storage_gib_hours=-1,
                            storage_cents_per_1000_gib_hours=0).update(
            connection_hours=hours, connection_cents_per_1000_hours=hour_cents, storage_gib_hours=gib_hours,
            storage_cents_per_1000_gib_hours=gib_hour_cents)


def lines_restated(apps, schema_editor):
    InvoiceLine = apps.get_model("billing", "InvoiceLine")
    for line in InvoiceLine.objects.select_related("invoice").iterator():
        start, end = line.invoice.period_start, line.invoice.period_end
        line.starts_at, line.ends_at = start, end
        if line.kind == "overage":
            line.kind = "data"
            line.measured, line.included = line.used_bytes, line.allowance_bytes
            line.billed = max(0, line.used_bytes - line.allowance_bytes) if line.allowance_bytes >= 0 else 0
        else:
            held = int((end - start).total_seconds())
            line.measured, line.included, line.billed = held, 0, held
        line.save(update_fields=["kind", "starts_at", "ends_at", "measured", "included", "billed"])


def lines_unstated(apps, schema_editor):
    """Backwards: a data line is an overage line again, and the byte columns come back."""
    InvoiceLine = apps.get_model("billing", "InvoiceLine")
    Plan = apps.get_model("billing", "Plan")
    allowance = dict(Plan.objects.values_list("name", "data_bytes"))
    for line in InvoiceLine.objects.iterator():
        if line.kind == "data":
            line.kind, line.used_bytes, line.allowance_bytes = "overage", line.measured, line.included
        else:
            line.used_bytes, line.allowance_bytes = 0, allowance.get(line.plan, -1)
        line.save(update_fields=["kind", "used_bytes", "allowance_bytes"])


KINDS = [("base", "Base price"), ("data", "Data"), ("connections", "Connection-hours"),
         ("storage", "JetStream storage")]


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_counter_leafnodes")]

    operations = [
        # Plans: the new dimensions' allowances and prices
        migrations.AlterField(
            model_name="plan", name="base_price_cents",
            field=models.PositiveIntegerField(default=0, help_text="per month, in the billing currency's minor unit "
                                                                   "(cents)")),
        migrations.AlterField(
            model_name="plan", name="overage_cents_per_gib",
            field=models.PositiveIntegerField(default=0, help_text="data past the allowance, cents per GiB; 0: no "
                                                                   "overage, suspend at 100%")),
        migrations.AddField(
            model_name="plan", name="connection_hours",
            field=models.BigIntegerField(default=-1, help_text="monthly connection-hours included (-1 unlimited)")),
        migrations.AddField(
            model_name="plan", name="connection_cents_per_1000_hours",
            field=models.PositiveIntegerField(default=0, help_text="connection-hours past the allowance, cents per "
                                                                   "1,000; 0: not priced")),
        migrations.AddField(
            model_name="plan", name="storage_gib_hours",
            field=models.BigIntegerField(default=-1, help_text="monthly JetStream GiB-hours included (every replica; "
                                                               "-1 unlimited)")),
        migrations.AddField(
            model_name="plan", name="storage_cents_per_1000_gib_hours",
            field=models.PositiveIntegerField(default=0, help_text="JetStream GiB-hours past the allowance, cents per "
                                                                   "1,000; 0: not priced")),
        migrations.RunPython(plans_priced, migrations.RunPython.noop),
        # Invoice lines: one per plan held and priced dimension, exact integer quantities
        migrations.AlterField(
            model_name="invoiceline", name="kind",
            field=models.CharField(choices=[*KINDS, ("overage", "Overage")], max_length=12)),
        migrations.AddField(model_name="invoiceline", name="starts_at", field=models.DateTimeField(null=True)),
        migrations.AddField(model_name="invoiceline", name="ends_at", field=models.DateTimeField(null=True)),
        migrations.AddField(model_name="invoiceline", name="measured", field=models.BigIntegerField(default=0)),
        migrations.AddField(model_name="invoiceline", name="included", field=models.BigIntegerField(default=0)),
        migrations.AddField(model_name="invoiceline", name="billed", field=models.BigIntegerField(default=0)),
        migrations.RunPython(lines_restated, lines_unstated),
        migrations.RemoveField(model_name="invoiceline", name="used_bytes"),
        migrations.RemoveField(model_name="invoiceline", name="allowance_bytes"),
        migrations.AlterField(
            model_name="invoiceline", name="kind", field=models.CharField(choices=KINDS, max_length=12)),
        migrations.AlterField(
            model_name="invoiceline", name="starts_at",
            field=models.DateTimeField(help_text="when the account started holding the plan in the period")),
        migrations.AlterField(
            model_name="invoiceline", name="ends_at",
            field=models.DateTimeField(help_text="when it stopped (or the period's end)")),
        migrations.AlterField(
            model_name="invoiceline", name="measured",
            field=models.BigIntegerField(help_text="seconds held (base), bytes (data), connection-seconds, "
                                                   "byte-seconds (storage)")),
        migrations.AlterField(
            model_name="invoiceline", name="included",
            field=models.BigIntegerField(help_text="the allowance prorated to the time held, same unit (-1 "
                                                   "unlimited)")),
        migrations.AlterField(
            model_name="invoiceline", name="billed",
            field=models.BigIntegerField(help_text="what was priced, same unit: measured past included; seconds "
                                                   "held")),
        migrations.AlterField(
            model_name="invoiceline", name="quantity",
            field=models.DecimalField(decimal_places=6, max_digits=24,
                                      help_text="billed in the priced unit: months, GiB, connection-hours, "
                                                "GiB-hours")),
        migrations.AlterField(
            model_name="invoiceline", name="unit_cents",
            field=models.PositiveIntegerField(help_text="per month, per GiB, per 1,000 connection- or GiB-hours")),
    ]

