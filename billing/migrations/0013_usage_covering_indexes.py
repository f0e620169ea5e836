"""PostgreSQL: the hour, day and month rollups indexed by (account, start) with every column ``ngs.usage`` sums
included, so a window's rows are read from a few index pages (an index-only scan) rather than one table page each:
an account's rows are written hour after hour beside every other account's. SQLite keeps its tables as they are
(its answers meet the target without, docs/BENCHMARKS.md "Metering"). Built CONCURRENTLY: a big ledger keeps taking
writes while the index is built (so this migration runs outside a transaction)."""

from django.db import migrations

_SUMS = "sent_msgs, sent_bytes, received_msgs, received_bytes, connection_seconds, storage_byte_seconds, peak_connections"
_INDEXES = (("billing_usagehour_cover", "billing_usagehour", "hour"),
            ("billing_usageday_cover", "billing_usageday", "day"),
            ("billing_usagemonth_cover", "billing_usagemonth", "month"))


def _create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, table, column in _INDEXES:
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} "
                              f"(account_public_key, {column}) INCLUDE ({_SUMS})")


def _drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _, _ in _INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("billing", "0012_ledger_lease")]

    operations = [migrations.RunPython(_create, _drop)]
