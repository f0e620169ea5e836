"""Counters and stored bytes are no longer claimed by a MeterSample row each (billing.services: their sequence
number or time in ServerAccountCounter / AccountStorage decides). The rows they left are read by nothing: drop them,
in chunks (a ledger that ran for months holds a row per poll, server and active account)."""

from django.db import migrations

OBSOLETE = ("conns", "statz", "jsz")  # SampleKind COUNTERS_EVENT, COUNTERS_POLL, STORAGE_POLL
CHUNK = 50_000


def forwards(apps, schema_editor):
    """Delete by ranges of ids (a single DELETE each: nothing refers to these rows)."""
    from django.db.models import Max, Min

    MeterSample = apps.get_model("billing", "MeterSample")
    bounds = MeterSample.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    if bounds["lo"] is None:
        return
    for start in range(bounds["lo"], bounds["hi"] + 1, CHUNK):
        MeterSample.objects.filter(pk__gte=start, pk__lt=start + CHUNK, kind__in=OBSOLETE).delete()


class Migration(migrations.Migration):
    atomic = False  # each chunk commits on its own: a long ledger is not one transaction

    dependencies = [
        ("billing", "0013_usage_covering_indexes"),
    ]

    operations = [
        migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True),
    ]
