"""Raw SQL the ORM has no fast form for: many rows in one INSERT (or upsert), run with executemany.

Only ``django.db.connection``, no app import. SQLite (3.24+) and PostgreSQL both speak
``INSERT ... ON CONFLICT (...) DO UPDATE SET``; the one difference used here is the name of the two-argument
maximum (``GREATEST`` on PostgreSQL, the scalar ``MAX`` on SQLite).
https://www.sqlite.org/lang_upsert.html https://www.postgresql.org/docs/current/sql-insert.html#SQL-ON-CONFLICT
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.db import connection

if TYPE_CHECKING:
    from django.db.models import Model


class Merge(StrEnum):
    """What a column of a conflicting row becomes."""

    NEW = "new"  # the value of the row being inserted
    ADD = "add"  # the stored value plus the new one
    MAX = "max"  # the larger of the two


def _merged(table: str, column: str, merge: Merge) -> str:
    new = f"excluded.{column}"
    if merge is Merge.ADD:
        return f"{column} = {table}.{column} + {new}"
    if merge is Merge.MAX:
        greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
        return f"{column} = {greatest}({table}.{column}, {new})"
    return f"{column} = {new}"


def rows_upsert(model: type[Model], fields: Sequence[str], rows: Sequence[Sequence[Any]], *,
                conflict: Sequence[str] = (), merge: Mapping[str, Merge] | None = None) -> int:
    """Insert ``rows`` (values of ``fields``, in that order, as the database takes them) into ``model``'s table in
    one statement run with executemany; returns how many rows were sent.

    Without ``conflict`` it is a plain INSERT: a row that breaks a constraint raises IntegrityError. With it, a
    row clashing on the ``conflict`` fields (a unique constraint) updates the stored row instead, each field of
    ``merge`` as its Merge says (no ``merge``: the stored row stays as it is). The ORM's bulk_create and
    bulk_update build model instances (and bulk_update a CASE per field and row): far slower for the thousands
    of rows a metering batch or a full sync writes.
    """
    if not rows:
        return 0
    quote, meta = connection.ops.quote_name, model._meta

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    table = quote(meta.db_table)
    # Every name is the model's own, quoted; every value is a parameter.
    sql = (f"INSERT INTO {table} ({', '.join(column(f) for f in fields)}) "  # noqa: S608
           f"VALUES ({', '.join(['%s'] * len(fields))})")
    on_conflict = ""
    if conflict:
        updates = ", ".join(_merged(table, column(f), how) for f, how in (merge or {}).items())
        on_conflict = f" ON CONFLICT ({', '.join(column(f) for f in conflict)}) "
        on_conflict += f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    if connection.vendor == "postgresql" and len(rows) >= COPY_ROWS and _keys_unique(fields, rows, conflict):
        _copy_upsert(table, [column(f) for f in fields], rows, on_conflict)
        return len(rows)
    with connection.cursor() as cursor:
        cursor.executemany(sql + on_conflict, rows)
    return len(rows)


COPY_ROWS = 64  # from this many rows on, PostgreSQL gets them by COPY


def _keys_unique(fields: Sequence[str], rows: Sequence[Sequence[Any]], conflict: Sequence[str]) -> bool:
    """One INSERT ... SELECT may not update the same row twice; executemany applies repeated keys in turn."""
    if not conflict:
        return True
    at = [list(fields).index(f) for f in conflict]
    return len({tuple(row[i] for i in at) for row in rows}) == len(rows)


def _copy_upsert(table: str, columns: list[str], rows: Sequence[Sequence[Any]], on_conflict: str) -> None:
    """PostgreSQL: the rows by COPY into a temporary table of the same columns, then one INSERT ... SELECT with the
    same conflict rule. psycopg's executemany sends (and Django's client-side binding quotes) each row on its own:
    at a metering batch's thousands of rows that cost more than the database's work.
    https://www.psycopg.org/psycopg3/docs/basic/copy.html"""
    import zlib

    names = ", ".join(columns)
    temp = f"_rows_{zlib.crc32(f'{table}:{names}'.encode()):08x}"  # one per table and column list
    from django.db import transaction

    # (in a transaction, joined if there is one: the temporary table empties itself at the commit)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # (a temporary table lives as long as the connection, unless the transaction that made it rolled back)
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {temp} ON COMMIT DELETE ROWS AS "  # noqa: S608
                       f"SELECT {names} FROM {table} WITH NO DATA")
        cursor.execute(f"DELETE FROM {temp}")  # noqa: S608 (rows of an earlier statement of this transaction)
        with cursor.cursor.copy(f"COPY {temp} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {temp}{on_conflict}")  # noqa: S608


def datetime_adapter() -> Callable[[Any], Any]:
    """What the database stores for an aware datetime, as Django's ``adapt_datetimefield_value`` gives it, fast:
    that costs ~10 µs a call on SQLite, and a metering batch adapts several per sample (a test holds them equal)."""
    if connection.vendor == "sqlite":
        tz = connection.timezone
        utc = tz.utcoffset(None) == dt.timedelta(0) if hasattr(tz, "utcoffset") else False

        def adapt(value):
            # In UTC, an aware UTC datetime's isoformat is Django's text plus "+00:00": cut it (no replace())
            if utc and value.utcoffset() == _ZERO:
                return value.isoformat(" ")[:-6]
            return str(value.astimezone(tz).replace(tzinfo=None))

        return adapt
    return connection.ops.adapt_datetimefield_value


_ZERO = dt.timedelta(0)


def rows_read(sql: str, params: Sequence[Any]) -> list[tuple]:
    """``cursor.execute(sql, params).fetchall()`` for a hot read whose text repeats (``ngs.usage``'s). On PostgreSQL
    with psycopg 3 it is sent with server-side parameters and prepared on its connection (planned once per distinct
    text, not per request; Django's own cursors bind on the client and never prepare, so that connection poolers
    keep working: https://docs.djangoproject.com/en/5.2/ref/databases/#server-side-parameters-binding). A
    transaction-mode pooler in front of the database would need ``DATABASE_PREPARED_READS=0``. Errors are Django's
    (``DatabaseError``), as from any cursor, and the query is logged as Django logs its own (``connection.queries``,
    the tests' query counts)."""
    if not prepared_reads():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    import time

    import psycopg

    connection.ensure_connection()
    start = time.monotonic()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        rows = cursor.fetchall()
    if connection.queries_logged:
        connection.queries_log.append({"sql": f"{sql} -- {list(params)!r}", "time": f"{time.monotonic() - start:.3f}"})
    return rows


def prepared_reads() -> bool:
    """PostgreSQL with ``DATABASE_PREPARED_READS``: ``rows_read`` prepares its queries and ``rows_read_many`` sends
    them together."""
    from django.conf import settings

    return connection.vendor == "postgresql" and getattr(settings, "DATABASE_PREPARED_READS", True)


def rows_read_many(queries: Sequence[tuple[str, Sequence[Any]]]) -> list[list[tuple]]:
    """``rows_read`` of each (sql, params), in one round trip on PostgreSQL: psycopg's pipeline mode sends them all,
    then reads every result (https://www.psycopg.org/psycopg3/docs/advanced/pipeline.html). For reads that do not
    depend on each other; outside a transaction each runs on its own, as separate ``rows_read`` calls would.
    Elsewhere they run one after the other."""
    if not prepared_reads():
        return [rows_read(sql, params) for sql, params in queries]
    import time

    import psycopg

    connection.ensure_connection()
    start = time.monotonic()
    with connection.wrap_database_errors, contextlib.ExitStack() as stack:
        stack.enter_context(connection.connection.pipeline())
        cursors = [stack.enter_context(psycopg.Cursor(connection.connection)) for _ in queries]
        for cursor, (sql, params) in zip(cursors, queries, strict=True):
            cursor.execute(sql, params, prepare=True)
        results = [cursor.fetchall() for cursor in cursors]
    if connection.queries_logged:
        took = f"{time.monotonic() - start:.3f}"
        connection.queries_log.extend({"sql": f"{sql} -- {list(params)!r}", "time": took} for sql, params in queries)
    return results


# ------------------------------------------------------------------------------------------------
# One new row, as Model.save(force_insert=True) writes it, without compiling the INSERT on every call
# ------------------------------------------------------------------------------------------------


def _insert_plan(model: type[Model], vendor: str) -> tuple[str, list, Any] | None:
    """(SQL, the fields it writes, the primary key) for ``model``, built once per process and database; None for a
    model this cannot insert exactly as the ORM would (a database default, a generated field, no RETURNING)."""
    key = (model, vendor)
    if key not in _INSERT_PLANS:
        meta = model._meta
        fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
        exact = (meta.auto_field is not None and connection.features.can_return_columns_from_insert
                 and not any(f.has_db_default() or getattr(f, "generated", False) for f in meta.local_concrete_fields)
                 and not meta.parents)
        q = connection.ops.quote_name
        _INSERT_PLANS[key] = (
            f"INSERT INTO {q(meta.db_table)} ({', '.join(q(f.column) for f in fields)}) "  # noqa: S608
            f"VALUES ({', '.join(['%s'] * len(fields))}) RETURNING {q(meta.auto_field.column)}",
            fields, meta.auto_field,
        ) if exact else None
    return _INSERT_PLANS[key]


_INSERT_PLANS: dict[tuple[type, str], tuple[str, list, Any] | None] = {}


def row_insert(obj: Model) -> Model:
    """Insert the new ``obj`` (no primary key yet) as ``obj.save(force_insert=True)`` does: each field's
    ``pre_save`` (``auto_now_add``) and database form (JSON, date-times), the primary key read back, the
    instance marked saved. Only the SQL text is kept per process (table and column names); the values are the
    object's. A model with save signals' receivers, or one the plan cannot write exactly, is saved by the ORM."""
    from django.db.models import signals

    model = type(obj)
    plan = _insert_plan(model, connection.vendor)
    if (plan is None or obj.pk is not None or signals.pre_save.has_listeners(model)
            or signals.post_save.has_listeners(model)):
        obj.save(force_insert=True)
        return obj
    sql, fields, pk = plan
    obj._prepare_related_fields_for_save(operation_name="save")
    values = [f.pre_save(obj, True) for f in fields]
    if any(hasattr(v, "resolve_expression") for v in values):  # (an F() or a function: the ORM compiles those)
        obj.save(force_insert=True)
        return obj
    values = [f.get_db_prep_save(v, connection=connection) for f, v in zip(fields, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        (value,) = cursor.fetchone()
    col = pk.get_col(pk.model._meta.db_table)
    for converter in connection.ops.get_db_converters(col) + col.get_db_converters(connection):
        value = converter(value, col, connection)
    setattr(obj, pk.attname, value)
    obj._state.adding = False
    obj._state.db = connection.alias
    return obj
