"""The ``manage.py fleet`` contract without any nats-server: add, remove, status, scale, stop and start."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts_service.rights import PLATFORM
from broker_gateway.models import BrokerNode
from core.errors import ApplicationError
from tests.natsproc import free_port

pytestmark = pytest.mark.django_db

NAME_RULE = "node name must be 1-64 letters, digits, '-' or '_'"


def run(*args: str) -> str:
    out = StringIO()
    call_command("fleet", *args, stdout=out)
    return out.getvalue().strip()


def free_ports() -> dict[str, int]:
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    return dict(zip(("client", "cluster", "monitoring", "leafnode"), sorted(ports), strict=True))


# ------------------------------------------------------------------------------------------------
# regions
# ------------------------------------------------------------------------------------------------


def test_run_topology_and_region_add_drain_resume(settings):
    from broker_gateway.nodes import fleet_ensure

    fleet_ensure(topology="us-east=2,eu-west=1")
    assert [(n.name, n.region) for n in BrokerNode.objects.order_by("pk")] == [
        ("us-east-1", "us-east"), ("us-east-2", "us-east"), ("eu-west-1", "eu-west")]
    fleet_ensure(topology="ap-south=5")  # an existing fleet is never touched
    assert BrokerNode.objects.count() == 3
    assert run("region", "add", "ap-south", "--nodes", "2") == "ap-south: added ap-south-1, ap-south-2"
    assert run("add", "eu-west-9", "--region", "eu-west").startswith("added eu-west-9 to eu-west:")
    rows = {r["region"]: r for r in json.loads(run("region", "list", "--json"))}
    assert list(rows) == ["us-east", "eu-west", "ap-south"]
    assert rows["eu-west"]["names"] == ["eu-west-1", "eu-west-9"] and rows["eu-west"]["running"] == 2
    assert run("region", "drain", "eu-west").startswith("eu-west: 2 nodes draining")
    assert set(BrokerNode.objects.filter(region="eu-west").values_list("desired_state", flat=True)) == {"stopped"}
    assert json.loads(run("region", "list", "--json"))[1]["drained"] is True
    assert run("region", "resume", "eu-west") == "eu-west: 2 nodes desired running"
    status = {r["name"]: r for r in json.loads(run("status", "--json"))}
    assert status["ap-south-1"]["region"] == "ap-south" and status["ap-south-1"]["gateway_url"].startswith("nats://")
    # Not running: each node's link to the two other regions is unknown (its /gatewayz did not answer).
    assert {(g["region"], g["state"]) for g in status["ap-south-1"]["gateways"]} == {("us-east", "unknown"),
                                                                                     ("eu-west", "unknown")}


@pytest.mark.parametrize(("args", "message"), [
    (("region", "add", "EU_West"), "is not a region name"),
    (("region", "drain", "nowhere"), "no region nowhere"),
    (("region", "add"), "region add needs the region's name"),
    (("add", "x1", "--region", "bad_"), "is not a region name"),
])
def test_region_bad_input_is_refused_and_nothing_written(args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not BrokerNode.objects.exists()


def test_draining_the_only_running_region_is_refused():
    run("region", "add", "solo", "--nodes", "1")
    with pytest.raises(CommandError, match="solo is the only region running"):
        run("region", "drain", "solo")
    assert BrokerNode.objects.get().desired_state == "running"


@pytest.mark.parametrize(("text", "message"), [
    ("", "topology is empty"), ("us-east", "is not REGION=NODES"), ("us-east=x", "is not a number of nodes"),
    ("a=1,a=2", "region a is given twice"), ("a=40,b=30", "the fleet takes at most 64"), ("Bad=1", "region name"),
])
def test_topology_bad_input_is_refused_and_nothing_written(text, message):
    from broker_gateway.nodes import fleet_ensure

    with pytest.raises(ApplicationError, match=message):
        fleet_ensure(topology=text)
    assert not BrokerNode.objects.exists()


def port_args(ports: dict[str, int]) -> list[str]:
    return [arg for kind, port in ports.items() for arg in (f"--{kind}-port", str(port))]


# ------------------------------------------------------------------------------------------------
# add / remove
# ------------------------------------------------------------------------------------------------


def test_add_with_auto_ports_gives_each_node_four_distinct_unclaimed_ports():
    first = run("add", "edge-1")
    second = run("add", "edge_2")

    nodes = list(BrokerNode.objects.order_by("name"))
    assert [n.name for n in nodes] == ["edge-1", "edge_2"]
    for node, out in zip(nodes, (first, second), strict=True):
        assert out == (f"added {node.name} to us-east: nats://127.0.0.1:{node.client_port} "
                       f"(monitoring {node.monitoring_url})")
        assert node.desired_state == BrokerNode.Desired.RUNNING
        assert node.observed_state == BrokerNode.Observed.STOPPED and node.pid is None
        assert all(0 < p <= 65535 for p in node.ports)
    every_port = [p for n in nodes for p in n.ports]
    assert len(set(every_port)) == 10, every_port


def test_add_with_explicit_ports_and_host():
    ports = free_ports()
    out = run("add", "edge-1", "--host", "127.0.0.2", *port_args(ports))

    node = BrokerNode.objects.get(name="edge-1")
    assert out == (f"added edge-1 to us-east: nats://127.0.0.2:{ports['client']} "
                   f"(monitoring http://127.0.0.2:{ports['monitoring']})")
    assert node.host == "127.0.0.2"
    assert (node.client_port, node.cluster_port, node.monitoring_port, node.leafnode_port) == tuple(ports.values())


@pytest.mark.parametrize("name", ["bad name", "-leading-dash", "dot.ted", "x" * 65, "nöde", ""])
def test_add_refuses_a_bad_name(name):
    with pytest.raises(CommandError, match=f"^{NAME_RULE}"):
        run("add", "--", name)  # '--': a name may start with '-' as far as argparse is concerned
    assert not BrokerNode.objects.exists()


def test_add_refuses_a_duplicate_name():
    run("add", "edge-1")
    with pytest.raises(CommandError, match="node edge-1 already exists"):
        run("add", "edge-1", *port_args(free_ports()))
    assert BrokerNode.objects.count() == 1


def test_add_refuses_ports_another_node_uses():
    taken = free_ports()
    run("add", "edge-1", *port_args(taken))
    clashing = {**free_ports(), "monitoring": taken["client"]}
    with pytest.raises(CommandError, match=rf"ports \[{taken['client']}\] are used by another node"):
        run("add", "edge-2", *port_args(clashing))
    assert list(BrokerNode.objects.values_list("name", flat=True)) == ["edge-1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cluster": "client"}, "a node's 5 ports must differ"),
        ({"client": 70000}, "client_port must be a TCP port"),
        ({"leafnode": 0}, "leafnode_port must be a TCP port"),
    ],
)
def test_add_refuses_bad_ports(change, message):
    ports = free_ports()
    ports.update({k: ports[v] if isinstance(v, str) else v for k, v in change.items()})
    with pytest.raises(CommandError, match=message):
        run("add", "edge-1", *port_args(ports))
    assert not BrokerNode.objects.exists()


def test_add_needs_all_four_ports_or_none():
    with pytest.raises(CommandError, match="give the client, cluster, monitoring and leafnode ports, or none"):
        run("add", "edge-1", "--client-port", str(free_port()))
    assert not BrokerNode.objects.exists()


def test_remove_forgets_the_node_and_unknown_names_are_an_error():
    run("add", "edge-1")
    assert run("remove", "edge-1") == "removed edge-1"
    assert not BrokerNode.objects.exists()
    with pytest.raises(CommandError, match="no node edge-1"):
        run("remove", "edge-1")


# ------------------------------------------------------------------------------------------------
# status
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def two_nodes():
    run("add", "edge-1", *port_args(free_ports()))
    run("add", "edge-2", *port_args(free_ports()))
    BrokerNode.objects.filter(name="edge-1").update(
        observed_state=BrokerNode.Observed.HEALTHY, last_healthy_at=timezone.now(), pid=4321, server_id="NSERVERID1",
        version="2.15.1", restarts=2)
    BrokerNode.objects.filter(name="edge-2").update(
        desired_state=BrokerNode.Desired.STOPPED, observed_state=BrokerNode.Observed.FAILED,
        last_error="killed by SIGKILL\n[FTL] boom", consecutive_failures=3)
    return {n.name: n for n in BrokerNode.objects.all()}


def test_status_json_has_every_field(two_nodes):
    rows = {r["name"]: r for r in json.loads(run("status", "--json"))}
    assert list(rows) == ["edge-1", "edge-2"]
    one, two = two_nodes["edge-1"], two_nodes["edge-2"]
    assert {k: rows["edge-1"][k] for k in ("name", "state", "desired_state", "pid", "client_url", "monitoring_url",
                                           "server_id", "version", "restarts")} == {
        "name": "edge-1", "state": "healthy", "desired_state": "running", "pid": 4321,
        "client_url": one.client_url, "monitoring_url": one.monitoring_url, "server_id": "NSERVERID1",
        "version": "2.15.1", "restarts": 2,
    }
    assert rows["edge-2"]["state"] == "failed" and rows["edge-2"]["desired_state"] == "stopped"
    assert rows["edge-2"]["pid"] is None and rows["edge-2"]["server_id"] == "" and rows["edge-2"]["restarts"] == 0
    assert rows["edge-2"]["client_url"] == two.client_url and rows["edge-2"]["consecutive_failures"] == 3
    assert rows["edge-1"]["accounts_in_sync"] == 0 and rows["edge-1"]["accounts_total"] == 0


def test_status_table(two_nodes):
    lines = run("status").splitlines()
    header = lines[0].split()
    assert header[:3] == ["NAME", "REGION", "STATE"] and {"PID", "VERSION", "RESTARTS", "ID"} <= set(header), lines[0]
    one, two = two_nodes["edge-1"], two_nodes["edge-2"]
    assert lines[1].split() == ["edge-1", "us-east", "healthy", "4321", one.client_url, one.monitoring_url, "2.15.1",
                                "2", "0/0", "NSERVERID1"]
    # A node not meant to run is marked with '*'; empty fields show '-'.
    assert lines[2].split() == ["edge-2", "us-east", "failed*", "-", two.client_url, two.monitoring_url, "-", "0",
                                "0/0", "-"]
    assert lines[3].split() == ["last", "error:", "[FTL]", "boom"]  # the last line of the node's last error
    assert len(lines) == 4


def test_status_shows_healthy_the_supervisor_stopped_confirming_as_unconfirmed(two_nodes, settings):
    stale = timezone.now() - timedelta(seconds=settings.FLEET_HEALTH_STALE_SECONDS + 1)
    BrokerNode.objects.filter(name="edge-1").update(last_healthy_at=stale)
    assert json.loads(run("status", "--json"))[0]["state"] == "unconfirmed"
    assert run("status").splitlines()[1].split()[:3] == ["edge-1", "us-east", "unconfirmed"]


def test_status_of_an_empty_fleet_is_the_header_only():
    assert run("status").splitlines()[0].startswith("NAME")
    assert len(run("status").splitlines()) == 1
    assert json.loads(run("status", "--json")) == []


# ------------------------------------------------------------------------------------------------
# scale
# ------------------------------------------------------------------------------------------------


def test_scale_up_names_nodes_and_scale_down_removes_the_highest():
    assert run("scale", "3") == "us-east: 3 nodes (us-east-1, us-east-2, us-east-3)"
    ports = [p for n in BrokerNode.objects.all() for p in n.ports]
    assert len(set(ports)) == 15, ports
    before = {n.name: n.ports for n in BrokerNode.objects.all()}

    assert run("scale", "1") == "us-east: 1 nodes (us-east-1)"
    assert list(BrokerNode.objects.values_list("name", flat=True)) == ["us-east-1"]
    assert BrokerNode.objects.get().ports == before["us-east-1"]  # the kept node is untouched

    assert run("scale", "2") == "us-east: 2 nodes (us-east-1, us-east-2)"
    assert run("scale", "2") == "us-east: 2 nodes (us-east-1, us-east-2)"  # idempotent
    assert run("scale", "1", "--region", "eu-west") == "eu-west: 1 nodes (eu-west-1)"  # a new region


def test_scale_refuses_out_of_range_counts():
    for count in ("-1", "65"):
        with pytest.raises(CommandError, match="count must be between 0 and 64"):
            run("scale", count)
    assert not BrokerNode.objects.exists()


def test_scale_keeps_hand_named_nodes_and_fills_name_gaps():
    run("add", "edge", *port_args(free_ports()))
    assert run("scale", "3") == "us-east: 3 nodes (edge, us-east-1, us-east-2)"
    run("remove", "us-east-1")
    assert run("scale", "3") == "us-east: 3 nodes (edge, us-east-2, us-east-1)"


# ------------------------------------------------------------------------------------------------
# stop / start
# ------------------------------------------------------------------------------------------------


def test_stop_then_start_sets_the_desired_state():
    run("add", "edge-1")
    assert run("stop", "edge-1") == "edge-1: desired stopped"
    assert BrokerNode.objects.get().desired_state == BrokerNode.Desired.STOPPED
    assert run("start", "edge-1") == "edge-1: desired running"
    assert BrokerNode.objects.get().desired_state == BrokerNode.Desired.RUNNING


def test_start_clears_a_failed_node_but_stop_keeps_its_failures():
    run("add", "edge-1")
    BrokerNode.objects.update(observed_state=BrokerNode.Observed.FAILED, consecutive_failures=5,
                              last_error="exited with status 1")
    run("stop", "edge-1")
    node = BrokerNode.objects.get()
    assert (node.desired_state, node.observed_state, node.consecutive_failures) == ("stopped", "failed", 5)

    run("start", "edge-1")
    node.refresh_from_db()
    # The operator fixed it: the supervisor may start it again (it never starts a failed node on its own).
    assert (node.desired_state, node.observed_state, node.consecutive_failures) == ("running", "stopped", 0)


def test_start_of_a_healthy_node_leaves_its_state_alone():
    run("add", "edge-1")
    BrokerNode.objects.update(observed_state=BrokerNode.Observed.HEALTHY, pid=99, consecutive_failures=1)
    run("start", "edge-1")
    node = BrokerNode.objects.get()
    assert (node.observed_state, node.pid, node.consecutive_failures) == ("healthy", 99, 1)


@pytest.mark.parametrize("sub", ["start", "stop", "remove"])
def test_unknown_node_is_an_error(sub):
    with pytest.raises(CommandError, match="no node ghost"):
        run(sub, "ghost")


# ------------------------------------------------------------------------------------------------
# account describe shows where the account is live
# ------------------------------------------------------------------------------------------------


def test_account_describe_shows_what_each_node_holds(operator_setup, team):
    from accounts_service.services import account_create
    from broker_gateway.models import NodeClaim

    account = account_create(actor=PLATFORM, team=team, name="shop")  # before any node exists: nothing to push
    run("add", "n1", *port_args(free_ports()))
    run("add", "n2", *port_args(free_ports()))
    now = timezone.now()
    BrokerNode.objects.update(observed_state="healthy", last_healthy_at=now)
    NodeClaim.objects.create(account=account, node=BrokerNode.objects.get(name="n1"), jti=account.jwt_jti,
                             iat=account.jwt_iat, updated_at=now)
    NodeClaim.objects.create(account=account, node=BrokerNode.objects.get(name="n2"), jti="older",
                             iat=account.jwt_iat - 3, updated_at=now)
    out = StringIO()
    call_command("account", "describe", account.public_key, stdout=out)
    text = out.getvalue()
    assert "live on:     1/2 healthy nodes" in text
    assert "n1          healthy     holds latest" in text
    assert f"n2          healthy     holds iat {account.jwt_iat - 3}" in text
    out = StringIO()
    call_command("account", "describe", account.public_key, "--json", stdout=out)
    assert json.loads(out.getvalue())["propagation"]["live_on"] == 1
