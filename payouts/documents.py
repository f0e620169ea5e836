"""A payout statement as documents: JSON (API and download) and CSV (download), amounts in integer cents."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from payouts.models import PayoutLine, PayoutStatement


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def line_document(line: PayoutLine) -> dict[str, Any]:
    """One line as anyone allowed to see it sees it (operators and publishers: only their own)."""
    statement = line.statement
    return {"period": statement.period, "currency": statement.currency, "position": line.position,
            "bucket": line.bucket, "payee": line.payee_name,
            "operator": line.operator.slug if line.operator_id else None, "team": line.team_id,
            "basis_quantity": line.basis_quantity, "basis_unit": line.basis_unit, "cents": line.cents}


def statement_document(statement: PayoutStatement) -> dict[str, Any]:
    """The whole statement (staff): the buckets, every line, and the invoices whose payments it divides."""
    return {
        "period": statement.period,
        "start": _iso(statement.period_start),
        "end": _iso(statement.period_end),
        "currency": statement.currency,
        "collected_cents": statement.collected_cents,
        "buckets": {"operator": statement.operators_cents, "publisher": statement.publishers_cents,
                    "community": statement.community_cents},
        "basis": {"operator_bytes": statement.operator_bytes, "publisher_messages": statement.publisher_msgs},
        "publishers_unused": statement.publishers_unused,
        "created_at": _iso(statement.created_at),
        "created_by": statement.created_by,
        "lines": [line_document(line) for line in statement.lines.select_related("operator", "statement")],
        "invoices": [{"number": c.invoice.number, "team": c.invoice.team_id,
                      "period_start": _iso(c.invoice.period_start),
                      "paid_at": _iso(c.invoice.paid_at) if c.invoice.paid_at else None, "cents": c.cents}
                     for c in statement.collected.select_related("invoice").order_by("invoice__number")],
    }


CSV_COLUMNS = ("period", "position", "bucket", "payee", "operator", "team", "basis_quantity", "basis_unit",
               "currency", "cents")

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection"); payee names are
# people's text (team and operator names), so such a cell gets a leading apostrophe, as invoice CSVs do.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def statement_csv(statement: PayoutStatement) -> str:
    """One row per line, then a row per bucket total and the total collected."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in statement.lines.select_related("operator"):
        doc = line_document(line)
        writer.writerow([_cell(doc[column] if doc[column] is not None else "") for column in CSV_COLUMNS])
    for bucket, cents in (("operator", statement.operators_cents), ("publisher", statement.publishers_cents),
                          ("community", statement.community_cents), ("collected", statement.collected_cents)):
        writer.writerow([statement.period, "", f"total {bucket}", "", "", "", "", "", statement.currency, cents])
    return out.getvalue()
