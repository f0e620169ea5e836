"""Payout pages: an operator's members see its nodes and lines (and only theirs), publishers see theirs on the team
page, staff run, read and download whole statements and manage operators; everyone else is sent to log in."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.contrib.auth import get_user_model

from accounts_service.models import AuditEvent
from accounts_service.rights import PLATFORM
from broker_gateway.models import BrokerNode
from payouts.models import PayoutStatement
from tests.services.test_payouts import DEC, GRACE, world  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db

STAFF_PAGES = ["/staff/payouts/", "/staff/payouts/2026-11/", "/staff/payouts/2026-11/download.csv",
               "/staff/operators/"]


@pytest.fixture
def paid_out(world):  # noqa: F811
    from accounts_service.services import team_member_add
    from broker_gateway.node_operators import operator_create, operator_member_add
    from payouts.services import payout_run

    people = {name: get_user_model().objects.create_user(username=name) for name in ("opal", "otto", "pia", "bob")}
    operator_member_add(operator=world["acme"], username="opal", actor=PLATFORM)
    idle = operator_create(slug="idle-ops", name="Idle Racks", actor=PLATFORM)
    operator_member_add(operator=idle, username="otto", actor=PLATFORM)
    team_member_add(team=world["teams"]["pubs"], user=people["pia"])
    payout_run(period="2026-11", actor=PLATFORM, now=DEC + GRACE)
    return {**world, "people": people, "staff": get_user_model().objects.create_user(username="root", is_staff=True)}


def test_an_operators_member_sees_its_nodes_and_lines_and_no_one_elses(client, paid_out):
    client.force_login(paid_out["people"]["opal"])
    page = client.get("/payouts/").content.decode()
    assert "Acme Hosting" in page and "<code>n2</code>" in page and "72.01" in page and "3000" in page
    assert "natsctl platform" not in page and "24.00" not in page and "Idle Racks" not in page
    client.force_login(paid_out["people"]["otto"])  # an operator with no nodes: said so, nothing else shown
    page = client.get("/payouts/").content.decode()
    assert "Idle Racks has no nodes yet" in page and "Acme Hosting" not in page and "72.01" not in page
    client.force_login(paid_out["people"]["bob"])
    assert "Nothing pays you yet" in client.get("/payouts/").content.decode()


def test_publishers_see_their_payouts_on_the_team_page(client, paid_out):
    client.force_login(paid_out["people"]["pia"])
    page = client.get(f"/teams/{paid_out['teams']['pubs'].slug}/").content.decode()
    assert 'id="publisher-payouts"' in page and "2026-11" in page and "USD 12.00" in page
    client.force_login(paid_out["people"]["opal"])
    assert client.get(f"/teams/{paid_out['teams']['pubs'].slug}/").status_code == 404  # not her team


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_staff_pages_send_everyone_else_to_the_login_page(client, paid_out, url):
    client.force_login(paid_out["people"]["opal"])
    response = client.get(url)
    assert response.status_code == 302 and response["Location"] == f"/admin/login/?next={url}"


def test_staff_actions_by_anyone_else_change_nothing(client, paid_out):
    client.force_login(paid_out["people"]["opal"])
    for url, body in (("/staff/payouts/", {"period": "2026-10"}), ("/staff/operators/", {"slug": "x", "name": "X"}),
                      ("/staff/operators/acme-ops/members/add", {"username": "bob"}),
                      ("/staff/nodes/n1/operator", {"operator": "acme-ops"})):
        assert client.post(url, body).status_code == 302
    assert PayoutStatement.objects.count() == 1 and not paid_out["acme"].members.filter(username="bob").exists()
    assert BrokerNode.objects.get(name="n1").operator.is_platform


def test_staff_run_read_and_download_statements(client, paid_out):
    client.force_login(paid_out["staff"])
    refused = client.post("/staff/payouts/", {"period": "2026-11"})
    assert refused.status_code == 400 and "already paid out" in refused.content.decode()
    refused = client.post("/staff/payouts/", {"period": "2026-09"})
    assert refused.status_code == 400 and "nothing was collected for 2026-09" in refused.content.decode()
    assert PayoutStatement.objects.count() == 1
    page = client.get("/staff/payouts/2026-11/").content.decode()
    for text in ("USD 120.01", "Acme Hosting", "natsctl platform", "pubs", "Community fund", "72.01", "24.00"):
        assert text in page
    rows = list(csv.DictReader(io.StringIO(client.get("/staff/payouts/2026-11/download.csv").content.decode())))
    assert [(r["bucket"], r["cents"]) for r in rows[:4]] == [("operator", "7201"), ("operator", "2400"),
                                                             ("publisher", "1200"), ("community", "1200")]
    document = json.loads(client.get("/staff/payouts/2026-11/download.json").content)
    assert document["collected_cents"] == 12001
    assert client.get("/staff/payouts/2026-11/download.pdf").status_code == 404
    assert client.get("/staff/payouts/2026-10/").status_code == 404


def test_staff_register_operators_add_members_and_assign_nodes(client, paid_out):
    client.force_login(paid_out["staff"])
    assert client.post("/staff/operators/", {"slug": "north", "name": "North Racks"}).status_code == 302
    bad = client.post("/staff/operators/", {"slug": "platform", "name": "Mine"})
    assert bad.status_code == 400 and "the platform&#x27;s own operator" in bad.content.decode()
    client.post("/staff/operators/north/members/add", {"username": "bob"})
    client.post("/staff/nodes/n1/operator", {"operator": "north"})
    page = client.get("/staff/operators/").content.decode()
    assert "North Racks" in page and "bob" in page
    assert BrokerNode.objects.get(name="n1").operator.slug == "north"
    response = client.post("/staff/operators/north/members/add", {"username": "nobody"}, follow=True)
    assert "no user &#x27;nobody&#x27;" in response.content.decode()
    assert set(AuditEvent.objects.filter(actor_name="root").values_list("action", flat=True)) == {
        "operator.create", "operator.member_add", "node.assign"}
