"""``manage.py payouts run|list|show|operator``: the network's monthly payout statements (docs/ECONOMICS.md)."""

from __future__ import annotations

import json as jsonlib

from django.core.management.base import CommandError

from accounts_service.rights import PLATFORM
from broker_gateway.node_operators import operator_get
from core.cli import SubcommandCommand
from payouts.documents import line_document, statement_csv, statement_document
from payouts.models import PayoutStatement
from payouts.selectors import lines_for_operator, period_parse, statement_get
from payouts.services import payout_run


def _cents(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


class Command(SubcommandCommand):
    help = "Payout statements: 80 % to node operators, 10 % to publishers, 10 % to the community fund."
    subcommands = {
        "run": "write the statement of a closed period: --period YYYY-MM",
        "list": "every statement",
        "show": "one whole statement: --period YYYY-MM [--json | --csv]",
        "operator": "an operator's own lines: SLUG [--json]",
    }

    def add_run_arguments(self, p) -> None:
        p.add_argument("--period", required=True, help="the month, YYYY-MM (UTC)")

    def handle_run(self, *, period, **_) -> None:
        statement = payout_run(period=period, actor=PLATFORM)
        self.out(f"payouts {statement.period}: {statement.currency} {_cents(statement.collected_cents)} collected")
        for line in statement.lines.all():
            unit = f" for {line.basis_quantity:,} {line.basis_unit}" if line.basis_unit else ""
            self.out(f"  {line.bucket:<9} {line.payee_name:<32} {_cents(line.cents):>12}{unit}")

    def add_list_arguments(self, p) -> None:
        p.add_argument("--json", action="store_true")

    def handle_list(self, *, json, **_) -> None:
        rows = [{"period": s.period, "currency": s.currency, "collected_cents": s.collected_cents,
                 "operator_cents": s.operators_cents, "publisher_cents": s.publishers_cents,
                 "community_cents": s.community_cents} for s in PayoutStatement.objects.all()]
        if json:
            self.out_json(rows)
            return
        for r in rows:
            self.out(f"{r['period']}  {r['currency']} {_cents(r['collected_cents']):>12} collected: operators "
                     f"{_cents(r['operator_cents'])}, publishers {_cents(r['publisher_cents'])}, community "
                     f"{_cents(r['community_cents'])}")

    def add_show_arguments(self, p) -> None:
        p.add_argument("--period", required=True)
        fmt = p.add_mutually_exclusive_group()
        fmt.add_argument("--json", action="store_true")
        fmt.add_argument("--csv", action="store_true")

    def handle_show(self, *, period, json, csv, **_) -> None:
        statement = statement_get(start=period_parse(period))
        if statement is None:
            raise CommandError(f"period {period} is not paid out yet (manage.py payouts run --period {period})")
        if csv:
            self.stdout.write(statement_csv(statement), ending="")
        else:
            self.out(jsonlib.dumps(statement_document(statement), indent=2))

    def add_operator_arguments(self, p) -> None:
        p.add_argument("slug")
        p.add_argument("--json", action="store_true")

    def handle_operator(self, *, slug, json, **_) -> None:
        operator = operator_get(slug=slug)
        lines = [line_document(line) for line in lines_for_operator(operator).select_related("operator")]
        if not operator.nodes.exists() and not lines:
            raise CommandError(f"operator {slug} has no nodes: it carried nothing and is paid nothing (staff assign "
                               f"nodes with manage.py node_operator assign --operator {slug} --node NAME)")
        if json:
            self.out_json(lines)
            return
        for line in lines:
            self.out(f"{line['period']}  {line['currency']} {_cents(line['cents']):>12} for "
                     f"{line['basis_quantity']:,} {line['basis_unit']}")
        if not lines:
            self.out(f"no statement pays {slug} yet")
