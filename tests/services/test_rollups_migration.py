"""The data migration billing 0011 and its live twin (``usage_rollups_rebuild``): hours already in the ledger become
day and month rows equal to their sums, with the timestamps the write path gives them (so later samples add to the
same rows)."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.db import connection

from billing.models import UsageDay, UsageHour, UsageMonth
from billing.selectors import usage_totals
from billing.services import usage_hours_add, usage_rollups_rebuild

pytestmark = pytest.mark.django_db

migration = importlib.import_module("billing.migrations.0011_usage_rollups")
A, B = "A" + "B" * 55, "A" + "C" * 55
T0 = dt.datetime(2026, 10, 31, 22, tzinfo=dt.UTC)  # the last hours of October, then November


class _Editor:
    connection = connection


def _hours() -> None:
    """Rows as an older release wrote them: hours only."""
    for h in range(6):
        UsageHour.objects.create(account_public_key=A, hour=T0 + dt.timedelta(hours=h), sent_msgs=h + 1,
                                 sent_bytes=100 * (h + 1), connection_seconds=0.5, peak_connections=h % 4)
    UsageHour.objects.create(account_public_key=B, hour=T0, received_bytes=7)


@pytest.mark.parametrize("rebuild", [lambda: migration.backfill(None, _Editor()), usage_rollups_rebuild],
                         ids=["migration", "rebuild"])
def test_existing_hours_are_summed_into_days_and_months(rebuild):
    _hours()
    rebuild()
    days = {(r.account_public_key, r.day): (r.sent_msgs, r.sent_bytes, r.connection_seconds, r.peak_connections)
            for r in UsageDay.objects.all()}
    assert days == {(A, dt.datetime(2026, 10, 31, tzinfo=dt.UTC)): (3, 300, 1.0, 1),
                    (A, dt.datetime(2026, 11, 1, tzinfo=dt.UTC)): (18, 1800, 2.0, 3),
                    (B, dt.datetime(2026, 10, 31, tzinfo=dt.UTC)): (0, 0, 0.0, 0)}
    months = {(r.account_public_key, r.month): (r.sent_msgs, r.received_bytes) for r in UsageMonth.objects.all()}
    assert months == {(A, dt.datetime(2026, 10, 1, tzinfo=dt.UTC)): (3, 0),
                      (A, dt.datetime(2026, 11, 1, tzinfo=dt.UTC)): (18, 0),
                      (B, dt.datetime(2026, 10, 1, tzinfo=dt.UTC)): (0, 7)}
    # a later sample lands in the same rollup rows, not beside them
    usage_hours_add(account_public_key=A, hour=T0 + dt.timedelta(hours=7), sent_msgs=100)
    assert UsageDay.objects.filter(account_public_key=A).count() == 2
    assert UsageMonth.objects.get(account_public_key=A, month=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)).sent_msgs == 118
    assert usage_totals(account_public_key=A, start=T0, end=T0 + dt.timedelta(days=3))["sent_msgs"] == 121
    rebuild()  # again: the same rows
    assert UsageMonth.objects.get(account_public_key=A, month=dt.datetime(2026, 11, 1, tzinfo=dt.UTC)).sent_msgs == 118
