"""The CLI of payouts and node operators: ``payouts run|list|show|operator`` and ``node_operator ...``; a refusal is
one clear line and writes nothing. (November 2026 is over, so it can be paid out; 2099 is not.)"""

from __future__ import annotations

import csv
import io
import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from broker_gateway.models import BrokerNode, NodeOperator
from payouts.models import PayoutStatement
from tests.services.test_payouts import world  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as exc:
        run(*args)
    return str(exc.value)


def test_payouts_run_then_read_it_every_way(world):  # noqa: F811
    out = run("payouts", "run", "--period", "2026-11")
    assert out.splitlines()[0] == "payouts 2026-11: USD 120.01 collected"
    assert "operator  Acme Hosting" in out and "72.01 for 3,000 bytes" in out and "12.00 for 40 messages" in out
    assert "already paid out" in refused("payouts", "run", "--period", "2026-11")
    assert PayoutStatement.objects.count() == 1

    assert json.loads(run("payouts", "list", "--json")) == [
        {"period": "2026-11", "currency": "USD", "collected_cents": 12001, "operator_cents": 9601,
         "publisher_cents": 1200, "community_cents": 1200}]
    assert "USD       120.01 collected: operators 96.01" in run("payouts", "list")
    document = json.loads(run("payouts", "show", "--period", "2026-11", "--json"))
    assert sum(line["cents"] for line in document["lines"]) == 12001
    rows = list(csv.reader(io.StringIO(run("payouts", "show", "--period", "2026-11", "--csv"))))
    assert rows[0][0] == "period" and rows[-1] == ["2026-11", "", "total collected", "", "", "", "", "", "USD",
                                                    "12001"]
    assert json.loads(run("payouts", "operator", "acme-ops", "--json"))[0]["cents"] == 7201
    assert "USD        72.01 for 3,000 bytes" in run("payouts", "operator", "acme-ops")
    assert "not paid out yet" in refused("payouts", "show", "--period", "2026-10")


def test_refusals_are_one_clear_line_and_write_nothing(world):  # noqa: F811
    assert "not closed yet" in refused("payouts", "run", "--period", "2099-01")
    assert "nothing was collected for 2026-09" in refused("payouts", "run", "--period", "2026-09")
    assert "YYYY-MM" in refused("payouts", "run", "--period", "november")
    run("node_operator", "create", "--slug", "idle", "--name", "Idle Racks")
    assert "operator idle has no nodes" in refused("payouts", "operator", "idle")
    assert "no node operator 'nope'" in refused("payouts", "operator", "nope")
    assert not PayoutStatement.objects.exists()


def test_node_operators_from_the_cli(world):  # noqa: F811
    get_user_model().objects.create_user(username="opal")
    assert "registered; it runs no node yet" in run("node_operator", "create", "--slug", "north", "--name", "North")
    assert "already exists" in refused("node_operator", "create", "--slug", "north", "--name", "Again")
    assert "opal is a member of north" in run("node_operator", "member-add", "--operator", "north", "--user", "opal")
    assert "no user 'ghost'" in refused("node_operator", "member-add", "--operator", "north", "--user", "ghost")
    assert "from this hour on" in run("node_operator", "assign", "--operator", "north", "--node", "n1")
    assert "no node nope" in refused("node_operator", "assign", "--operator", "north", "--node", "nope")
    assert BrokerNode.objects.get(name="n1").operator.slug == "north"
    listed = {row["slug"]: row for row in json.loads(run("node_operator", "list", "--json"))}
    assert listed["north"] == {"slug": "north", "name": "North", "platform": False, "nodes": ["n1"],
                               "members": ["opal"]}
    assert listed["platform"]["platform"] and listed["platform"]["nodes"] == []
    assert json.loads(run("node_operator", "show", "acme-ops"))["nodes"] == ["n2"]
    run("node_operator", "member-remove", "--operator", "north", "--user", "opal")
    assert not NodeOperator.objects.get(slug="north").members.exists()
    # Staff approve an operator's server by adding it as a node the operator runs.
    ports = [f"--{kind}-port={20100 + i}" for i, kind in enumerate(("client", "cluster", "monitoring", "leafnode"))]
    assert run("fleet", "add", "n3", "--operator", "north", *ports).strip().endswith("run by north")
    assert BrokerNode.objects.get(name="n3").operator.slug == "north"
    assert "no node operator 'south'" in refused("fleet", "add", "n4", "--operator", "south", *ports)
    assert not BrokerNode.objects.filter(name="n4").exists()
