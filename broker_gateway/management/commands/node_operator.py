"""``manage.py node_operator create|list|show|member-add|member-remove|assign``: who runs the fleet's nodes."""

from __future__ import annotations

from accounts_service.rights import PLATFORM
from broker_gateway.models import NodeOperator
from broker_gateway.node_operators import (
    node_operator_assign,
    operator_create,
    operator_get,
    operator_member_add,
    operator_member_remove,
)
from broker_gateway.selectors import node_get
from core.cli import SubcommandCommand


def _row(operator: NodeOperator) -> dict:
    return {"slug": operator.slug, "name": operator.name, "platform": operator.is_platform,
            "nodes": sorted(operator.nodes.values_list("name", flat=True)),
            "members": sorted(operator.members.values_list("username", flat=True))}


class Command(SubcommandCommand):
    help = "Node operators (organisations that run nodes and are paid for the traffic they carry)."
    subcommands = {
        "create": "register an operator: --slug SLUG --name NAME [--email EMAIL]",
        "list": "every operator with its nodes and members",
        "show": "one operator: SLUG",
        "member-add": "let a person see the operator's nodes and statement: --operator SLUG --user USERNAME",
        "member-remove": "--operator SLUG --user USERNAME",
        "assign": "the operator runs this node from now on: --operator SLUG --node NAME",
    }

    def add_create_arguments(self, p) -> None:
        p.add_argument("--slug", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--email", default="")

    def handle_create(self, *, slug, name, email, **_) -> None:
        operator = operator_create(slug=slug, name=name, contact_email=email, actor=PLATFORM)
        self.out(f"operator {operator.slug} ({operator.name}) registered; it runs no node yet")

    def add_list_arguments(self, p) -> None:
        p.add_argument("--json", action="store_true")

    def handle_list(self, *, json, **_) -> None:
        rows = [_row(o) for o in NodeOperator.objects.all()]
        if json:
            self.out_json(rows)
            return
        for row in rows:
            nodes = ", ".join(row["nodes"]) or "no nodes"
            self.out(f"{row['slug']:<20} {row['name']:<30} {nodes}  members: {', '.join(row['members']) or '-'}")

    def add_show_arguments(self, p) -> None:
        p.add_argument("slug")

    def handle_show(self, *, slug, **_) -> None:
        self.out_json(_row(operator_get(slug=slug)))

    def add_member_add_arguments(self, p) -> None:
        p.add_argument("--operator", required=True)
        p.add_argument("--user", required=True)

    add_member_remove_arguments = add_member_add_arguments

    def handle_member_add(self, *, operator, user, **_) -> None:
        operator_member_add(operator=operator_get(slug=operator), username=user, actor=PLATFORM)
        self.out(f"{user} is a member of {operator}")

    def handle_member_remove(self, *, operator, user, **_) -> None:
        operator_member_remove(operator=operator_get(slug=operator), username=user, actor=PLATFORM)
        self.out(f"{user} is no longer a member of {operator}")

    def add_assign_arguments(self, p) -> None:
        p.add_argument("--operator", required=True)
        p.add_argument("--node", required=True)

    def handle_assign(self, *, operator, node, **_) -> None:
        target = operator_get(slug=operator)
        node_operator_assign(node=node_get(name=node), operator=target, actor=PLATFORM)
        self.out(f"node {node} is run by {target.slug} from this hour on")
