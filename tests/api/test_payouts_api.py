"""Payouts over the API: each person sees only the lines paying someone they speak for (an operator they are a
member of, a team they belong to); every staff route is a 403 to anyone else and works for staff; bad input is a
4xx in the one error shape that writes nothing."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model

from accounts_service.rights import PLATFORM
from payouts.models import PayoutStatement
from tests.api.routes import METHODS, ROUTES, STAFF, token_client
from tests.services.test_payouts import DEC, GRACE, world  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

STAFF_PATHS = {
    "api-fleet-nodes": "/api/v1/fleet/nodes/",
    "api-payout-statements": "/api/v1/payouts/statements/",
    "api-payout-statement": "/api/v1/payouts/statements/2026-11",
    "api-payout-statement-csv": "/api/v1/payouts/statements/2026-11/csv",
    "api-node-operators": "/api/v1/node-operators/",
    "api-node-operator-members": "/api/v1/node-operators/acme-ops/members/",
    "api-node-operator-member": "/api/v1/node-operators/acme-ops/members/opal",
    "api-node-operator-assign": "/api/v1/fleet/nodes/n1/operator",
}


@pytest.fixture
def paid_out(world):  # noqa: F811
    from broker_gateway.node_operators import operator_member_add
    from payouts.services import payout_run

    people = {name: get_user_model().objects.create_user(username=name)  # token auth: no password to hash
              for name in ("opal", "otto", "pia", "stranger")}
    operator_member_add(operator=world["acme"], username="opal", actor=PLATFORM)
    from broker_gateway.node_operators import operator_create

    other = operator_create(slug="other-ops", name="Other Racks", actor=PLATFORM)
    operator_member_add(operator=other, username="otto", actor=PLATFORM)
    from accounts_service.services import team_member_add

    team_member_add(team=world["teams"]["pubs"], user=people["pia"])
    payout_run(period="2026-11", actor=PLATFORM, now=DEC + GRACE)
    staff = get_user_model().objects.create_user(username="root", is_staff=True)
    return {**world, "people": people, "staff": staff}


def _lines(client):
    body = client.get("/api/v1/payouts/").json()
    return [(r["bucket"], r["payee"], r["basis_quantity"], r["cents"]) for r in body["results"]]


def test_each_person_sees_only_their_own_lines(paid_out):
    people = paid_out["people"]
    assert _lines(token_client(people["opal"])) == [("operator", "Acme Hosting", 3000, 7201)]
    assert _lines(token_client(people["pia"])) == [("publisher", "pubs", 40, 1200)]
    # A member of another operator, and someone with no operator and no paid team, see nothing of anyone's.
    assert _lines(token_client(people["otto"])) == []
    assert _lines(token_client(people["stranger"])) == []
    # Staff read whole statements on their own routes; their /payouts/ is theirs alone, like anyone's.
    assert _lines(token_client(paid_out["staff"])) == []
    # And the operators they are a member of, with their nodes: only their own.
    mine = token_client(people["opal"]).get("/api/v1/payouts/operators/").json()["results"]
    assert [(o["slug"], o["nodes"]) for o in mine] == [("acme-ops", ["n2"])]
    assert [o["slug"] for o in token_client(people["otto"]).get("/api/v1/payouts/operators/").json()["results"]] == [
        "other-ops"]
    assert token_client(people["stranger"]).get("/api/v1/payouts/operators/").json()["results"] == []
    row = token_client(people["opal"]).get("/api/v1/payouts/").json()["results"][0]
    assert row == {"period": "2026-11", "currency": "USD", "position": 1, "bucket": "operator",
                   "payee": "Acme Hosting", "operator": "acme-ops", "team": None, "basis_quantity": 3000,
                   "basis_unit": "bytes", "cents": 7201}


def test_the_staff_walk_covers_every_staff_route():
    assert {name for name, _, _ in ROUTES if name in STAFF} == set(STAFF_PATHS) == STAFF


def test_every_staff_route_is_a_403_to_anyone_else(paid_out):
    clients = [token_client(paid_out["people"][person]) for person in ("opal", "pia", "stranger")]
    for name, path in sorted(STAFF_PATHS.items()):
        view = next(v for n, _, v in ROUTES if n == name)
        for client in clients:
            for method in [m for m in METHODS if hasattr(view, m)]:
                response = getattr(client, method)(path, {}, format="json")
                assert response.status_code == 403, (name, method, response.content[:200])
                assert set(response.json()) == {"message", "code", "extra"}


def test_staff_see_whole_statements_and_manage_operators(paid_out):
    staff = token_client(paid_out["staff"])
    doc = staff.get("/api/v1/payouts/statements/2026-11").json()
    assert doc["collected_cents"] == 12001 and doc["buckets"] == {"operator": 9601, "publisher": 1200,
                                                                  "community": 1200}
    assert sum(line["cents"] for line in doc["lines"]) == 12001 and len(doc["invoices"]) == 2
    csv = staff.get("/api/v1/payouts/statements/2026-11/csv")
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines()[-1] == "2026-11,,total collected,,,,,,USD,12001"
    assert staff.get("/api/v1/payouts/statements/").json()["count"] == 1
    assert staff.get("/api/v1/payouts/statements/2026-10").status_code == 404

    created = staff.post("/api/v1/node-operators/", {"slug": "north", "name": "North Racks"}, format="json")
    assert created.status_code == 201 and created.json()["nodes"] == []
    added = staff.post("/api/v1/node-operators/north/members/", {"username": "pia"}, format="json")
    assert added.status_code == 201 and added.json()["members"] == ["pia"]
    moved = staff.put("/api/v1/fleet/nodes/n1/operator", {"operator": "north"}, format="json")
    assert moved.status_code == 200 and moved.json()["nodes"] == ["n1"]
    assert staff.delete("/api/v1/node-operators/north/members/pia").status_code == 204
    listed = {o["slug"]: o for o in staff.get("/api/v1/node-operators/").json()["results"]}
    assert listed["platform"]["is_platform"] and listed["north"]["members"] == []


def test_bad_input_is_a_clear_4xx_that_writes_nothing(paid_out):
    staff = token_client(paid_out["staff"])
    cases = [
        ("post", "/api/v1/payouts/statements/", {"period": "2026-11"}, 409, "payout_exists"),
        ("post", "/api/v1/payouts/statements/", {"period": "2099-01"}, 409, "payout_period_open"),
        ("post", "/api/v1/payouts/statements/", {"period": "2026-13"}, 400, "period_invalid"),
        ("post", "/api/v1/payouts/statements/", {"period": "2026-11", "force": True}, 400, "invalid"),
        ("post", "/api/v1/node-operators/", {"slug": "platform", "name": "Me"}, 409, "operator_slug_taken"),
        ("post", "/api/v1/node-operators/", {"slug": "Bad Slug", "name": "x"}, 400, "invalid"),
        ("post", "/api/v1/node-operators/acme-ops/members/", {"username": "nobody"}, 404, "user_not_found"),
        ("put", "/api/v1/fleet/nodes/n1/operator", {"operator": "nope"}, 404, "operator_not_found"),
        ("put", "/api/v1/fleet/nodes/nope/operator", {"operator": "acme-ops"}, 404, "not_found"),
    ]
    for method, path, body, code, error in cases:
        response = getattr(staff, method)(path, body, format="json")
        assert (response.status_code, response.json()["code"]) == (code, error), (path, body, response.json())
    assert PayoutStatement.objects.count() == 1
    assert not paid_out["acme"].members.filter(username="nobody").exists()


def test_a_period_before_any_revenue_is_refused_with_its_reason(paid_out):
    staff = token_client(paid_out["staff"])
    response = staff.post("/api/v1/payouts/statements/", {"period": "2026-09"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "payout_no_revenue"
    assert "nothing was collected for 2026-09" in response.json()["message"]
    assert not PayoutStatement.objects.filter(period_start=dt.datetime(2026, 9, 1, tzinfo=dt.UTC)).exists()
