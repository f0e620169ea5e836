"""core.db: the one raw INSERT / upsert builder, on whichever database the tests run (SQLite or PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, transaction

from core.db import Merge, datetime_adapter, rows_upsert

pytestmark = pytest.mark.django_db

HOUR = dt.datetime(2026, 11, 29, 18, tzinfo=dt.UTC)
FIELDS = ("account_public_key", "hour", "sent_msgs", "peak_connections", "connection_seconds", "sent_bytes",
          "received_msgs", "received_bytes", "storage_byte_seconds")  # Django's defaults are not the table's


def _row(account: str, sent: int, peak: int, seconds: float) -> tuple:
    return (account, datetime_adapter()(HOUR), sent, peak, seconds, 0, 0, 0, 0)


def _hours() -> list[tuple]:
    from billing.models import UsageHour

    return sorted(UsageHour.objects.values_list("account_public_key", "sent_msgs", "peak_connections",
                                                "connection_seconds"))


def test_a_plain_insert_refuses_a_row_that_breaks_a_constraint():
    from billing.models import UsageHour

    assert rows_upsert(UsageHour, FIELDS, [_row("A1", 1, 2, 0.5), _row("A2", 3, 4, 0.0)]) == 2
    assert _hours() == [("A1", 1, 2, 0.5), ("A2", 3, 4, 0.0)]
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_upsert(UsageHour, FIELDS, [_row("A1", 1, 1, 0.0)])
    assert rows_upsert(UsageHour, FIELDS, []) == 0


def test_an_upsert_merges_each_column_as_told():
    from billing.models import UsageHour

    merge = {"sent_msgs": Merge.ADD, "peak_connections": Merge.MAX, "connection_seconds": Merge.NEW}
    rows_upsert(UsageHour, FIELDS, [_row("A1", 5, 3, 1.0)], conflict=("account_public_key", "hour"), merge=merge)
    # One statement, many rows: a clash with the stored row and a new row alike.
    rows_upsert(UsageHour, FIELDS, [_row("A1", 7, 2, 9.0), _row("A2", 1, 1, 1.0)],
                conflict=("account_public_key", "hour"), merge=merge)
    assert _hours() == [("A1", 12, 3, 9.0), ("A2", 1, 1, 1.0)]
    rows_upsert(UsageHour, FIELDS, [_row("A1", 1, 8, 0.0)], conflict=("account_public_key", "hour"), merge=merge)
    assert _hours() == [("A1", 13, 8, 0.0), ("A2", 1, 1, 1.0)]
    # No merge: a clashing row leaves the stored one as it is.
    rows_upsert(UsageHour, FIELDS, [_row("A2", 100, 100, 100.0)], conflict=("account_public_key", "hour"))
    assert _hours() == [("A1", 13, 8, 0.0), ("A2", 1, 1, 1.0)]


def test_the_fast_datetime_adapter_stores_what_django_stores():
    from django.db import connection

    adapt = datetime_adapter()
    for value in (dt.datetime(2026, 11, 29, 18, 0, tzinfo=dt.UTC), dt.datetime(2026, 11, 29, 18, 2, 27, 898686,
                                                                              tzinfo=dt.UTC),
                  dt.datetime(2026, 11, 29, 19, 2, 27, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))):
        assert adapt(value) == connection.ops.adapt_datetimefield_value(value)


def test_many_rows_merge_the_same_as_a_few(monkeypatch):
    """From COPY_ROWS rows on PostgreSQL takes them by COPY into a temporary table and one INSERT ... SELECT: the
    same merge as row by row, twice in one transaction, and a clash on a plain insert is still an IntegrityError."""
    import core.db

    merge = {"sent_msgs": Merge.ADD, "peak_connections": Merge.MAX, "connection_seconds": Merge.ADD}
    many = [_row(f"A{i:04d}", i, i % 7, 0.5) for i in range(core.db.COPY_ROWS * 3)]
    with transaction.atomic():
        rows_upsert(UsageHour_(), FIELDS, many, conflict=("account_public_key", "hour"), merge=merge)
        rows_upsert(UsageHour_(), FIELDS, [_row(a, 1, 5, 0.25) for a, *_ in many],
                    conflict=("account_public_key", "hour"), merge=merge)
    assert _hours() == [(f"A{i:04d}", i + 1, max(i % 7, 5), 0.75) for i in range(core.db.COPY_ROWS * 3)]
    with pytest.raises(IntegrityError), transaction.atomic():
        rows_upsert(UsageHour_(), FIELDS, many)
    # repeated keys in one call: applied in turn (never one INSERT ... SELECT touching a row twice)
    twice = [_row("B0001", 1, 1, 0.0)] * (core.db.COPY_ROWS + 1)
    rows_upsert(UsageHour_(), FIELDS, twice, conflict=("account_public_key", "hour"), merge=merge)
    assert ("B0001", core.db.COPY_ROWS + 1, 1, 0.0) in _hours()


def UsageHour_():  # (the model, imported once Django is set up)
    from billing.models import UsageHour

    return UsageHour
