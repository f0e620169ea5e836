"""Daily and monthly rollups of UsageHour, backfilled from the hours already in the ledger.

From now on billing.services writes a sample's hour, its day and its month in one transaction; this migration
sums the existing hours once (one INSERT ... SELECT ... GROUP BY per table: no row passes through Python).
"""

from django.db import migrations, models

_SUMS = ("sent_msgs", "sent_bytes", "received_msgs", "received_bytes", "connection_seconds", "storage_byte_seconds")


def _truncated(vendor: str, column: str, grain: str) -> str:
    """The start of the UTC day or month of ``column``, in the form the backend stores a DateTimeField."""
    if vendor == "postgresql":
        return f"date_trunc('{grain}', {column} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    # SQLite: Django stores an aware datetime as UTC text 'YYYY-MM-DD HH:MM:SS[.ffffff]'
    return f"substr({column}, 1, 10) || ' 00:00:00'" if grain == "day" else f"substr({column}, 1, 7) || '-01 00:00:00'"


def backfill(apps, schema_editor):
    connection = schema_editor.connection
    sums = ", ".join(f"SUM({c})" for c in _SUMS)
    columns = ", ".join(_SUMS)
    with connection.cursor() as cursor:
        for table, column, source, source_column, grain in (
                ("billing_usageday", "day", "billing_usagehour", "hour", "day"),
                ("billing_usagemonth", "month", "billing_usageday", "day", "month")):
            bucket = _truncated(connection.vendor, source_column, grain)
            cursor.execute(f"DELETE FROM {table}")
            cursor.execute(
                f"INSERT INTO {table} (account_public_key, {column}, {columns}, peak_connections) "  # noqa: S608
                f"SELECT account_public_key, {bucket}, {sums}, MAX(peak_connections) FROM {source} "
                f"GROUP BY account_public_key, {bucket}")


def _counts():
    return [
        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
        ("sent_msgs", models.BigIntegerField(default=0)),
        ("sent_bytes", models.BigIntegerField(default=0)),
        ("received_msgs", models.BigIntegerField(default=0)),
        ("received_bytes", models.BigIntegerField(default=0)),
        ("connection_seconds", models.FloatField(default=0)),
        ("peak_connections", models.IntegerField(default=0)),
        ("storage_byte_seconds", models.BigIntegerField(
            default=0, help_text="JetStream bytes stored (every replica) times seconds")),
    ]


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0010_traffic_by_node_and_export"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageDay",
            fields=[*_counts(), ("account_public_key", models.CharField(max_length=56)),
                    ("day", models.DateTimeField(help_text="00:00 UTC of the day"))],
            options={"constraints": [models.UniqueConstraint(fields=("account_public_key", "day"),
                                                             name="billing_usageday_one")]},
        ),
        migrations.CreateModel(
            name="UsageMonth",
            fields=[*_counts(), ("account_public_key", models.CharField(max_length=56)),
                    ("month", models.DateTimeField(help_text="the 1st of the month, 00:00 UTC"))],
            options={"constraints": [models.UniqueConstraint(fields=("account_public_key", "month"),
                                                             name="billing_usagemonth_one")]},
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
