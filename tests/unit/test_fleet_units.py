"""Fleet pieces without a running node: node configs (checked by `nats-server -t`), the restart policy,
reply parsing, a node's last words, and the local driver's config check."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from accounts_service.rights import PLATFORM
from broker_gateway.fleet.driver import NodeSpec
from broker_gateway.fleet.local import LocalProcessDriver, last_words, nats_server_bin
from broker_gateway.fleet.supervisor import Policy
from broker_gateway.gateway import parse_reply, reply_ok, reply_server

# ------------------------------------------------------------------------------------------------
# Restart policy
# ------------------------------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped():
    policy = Policy(backoff_base=0.5, backoff_max=30.0)
    assert [policy.backoff(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.backoff(0) == 0.5


def test_policy_from_settings(settings):
    settings.FLEET_LAME_DUCK_DURATION = "1m30s"
    settings.FLEET_MAX_FAILURES = 7
    policy = Policy.from_settings()
    assert policy.lame_duck == 90 and policy.max_failures == 7


# ------------------------------------------------------------------------------------------------
# Replies
# ------------------------------------------------------------------------------------------------


def test_parse_reply_shapes():
    ok = json.dumps({"server": {"name": "node-1"}, "data": {"code": 200, "message": "jwt updated"}}).encode()
    assert reply_ok(parse_reply(ok)) and reply_server(parse_reply(ok)) == "node-1"
    err = json.dumps({"server": {"name": "node-2"}, "error": {"code": 500, "description": "nope"}}).encode()
    assert not reply_ok(parse_reply(err)) and reply_server(parse_reply(err)) == "node-2"
    assert parse_reply(b"") == {}
    assert parse_reply(b"eyJ.not-json") == {"raw": "eyJ.not-json"}
    assert parse_reply(b"[1, 2]") == {"raw": [1, 2]}
    assert not reply_ok({"data": "jwt updated"}) and reply_server({}) == ""


def test_update_acknowledged_by_reads_only_a_plain_success():
    from broker_gateway.gateway import update_acknowledged_by

    ok = (b'{"server":{"name":"node-2","host":"127.0.0.1","id":"NABC","ver":"2.15.1"},'
          b'"data":{"account":"AAA","code":200,"message":"jwt updated"}}')
    assert update_acknowledged_by(ok) == "node-2"
    assert parse_reply(ok)["server"]["name"] == "node-2"  # the same answer the slow path gives
    refused = (b'{"server":{"name":"node-2"},"error":{"account":"AAA","code":500,'
               b'"description":"jwt update resulted in error"}}')
    assert update_acknowledged_by(refused) is None
    assert update_acknowledged_by(b'{"data":{"code":200}}') is None  # no server: parsed properly instead
    assert update_acknowledged_by(b"") is None


# ------------------------------------------------------------------------------------------------
# Last words of a node
# ------------------------------------------------------------------------------------------------


def test_last_words_reads_only_the_latest_instance(tmp_path: Path):
    log = tmp_path / "nats.log"
    log.write_text(
        "--- natsctl starting n1 at 2026-01-01T00:00:00Z\n"
        "[1] [FTL] old failure of an earlier instance\n"
        "--- natsctl starting n1 at 2026-01-01T00:01:00Z\n"
        "[2] [INF] Starting nats-server\n"
        "[2] [ERR] Error trying to connect to route: connection refused\n"
        "[2] [FTL] Error listening on port: 127.0.0.1:4222, \"address already in use\"\n"
    )
    words = last_words(log, 1)
    assert words.startswith("exited with status 1")
    assert "address already in use" in words and "old failure" not in words and "route" not in words


def test_last_words_of_a_killed_instance_name_the_signal(tmp_path: Path):
    log = tmp_path / "nats.log"
    log.write_text("--- natsctl starting n1 at x\n[2] [INF] Server is ready\n")
    assert last_words(log, -9) == "killed by SIGKILL"
    assert "Server is ready" in last_words(log, None)
    assert last_words(tmp_path / "missing.log", 2) == "exited with status 2"


# ------------------------------------------------------------------------------------------------
# Node configs, as the supervisor renders them
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def three_nodes(operator_setup):
    from broker_gateway.nodes import node_add

    return [node_add(name=f"n{i}", ports={"client_port": 14220 + i, "cluster_port": 16220 + i,
                                          "monitoring_port": 18220 + i, "leafnode_port": 17420 + i})
            for i in (1, 2, 3)]


def test_node_config_routes_to_peers_with_jetstream_monitoring_leafnodes(three_nodes, tmp_path, settings):
    from broker_gateway.nodes import node_config_build

    settings.FLEET_LAME_DUCK_DURATION = "45s"
    driver = LocalProcessDriver(tmp_path / "fleet")
    node = three_nodes[1]
    text = node_config_build(node=node, dirs=driver.data_dirs(node.name))
    assert 'server_name: "n2"' in text and "port: 14222" in text
    assert 'http: "127.0.0.1:18222"' in text
    # Every node of the region, itself included (nats-server drops a route to itself; clustered JetStream needs
    # a configured route, which a region of one node in a supercluster has only this way).
    assert 'routes: ["nats://127.0.0.1:16221", "nats://127.0.0.1:16222", "nats://127.0.0.1:16223"]' in text
    assert 'gateway: {\n  name: "us-east"\n' in text and "gateways:" not in text  # listening, no other region yet
    assert 'listen: "127.0.0.1:16222"' in text and 'listen: "127.0.0.1:17422"' in text
    assert f'store_dir: {json.dumps(str((tmp_path / "fleet" / "n2" / "jetstream").resolve()))}' in text
    assert 'lame_duck_duration: "45s"' in text
    assert "type: full" in text and f'interval: "{settings.NATS_RESOLVER_INTERVAL}"' in text
    # No seed of any kind: an nkey seed is "S" + its type letter + 56 base32 characters. (Checking for "SO"
    # alone failed now and then: the base64url of a JWT may contain those two letters.)
    assert "resolver_preload" in text and not re.search(r"\bS[OACUN][A-Z2-7]{56}\b", text)
    spec = NodeSpec(name=node.name, config=text, host=node.host, client_port=node.client_port,
                    monitoring_port=node.monitoring_port)
    assert driver.check_config(spec) is None  # nats-server -t accepts it


def test_node_config_of_a_supercluster_lists_every_other_regions_gateways(three_nodes, tmp_path):
    from broker_gateway.nodes import node_add, node_config_build

    west = node_add(name="w1", region="eu-west", ports={"client_port": 14231, "cluster_port": 16231,
                                                        "monitoring_port": 18231, "leafnode_port": 17431,
                                                        "gateway_port": 17231})
    driver = LocalProcessDriver(tmp_path / "fleet")
    east_text = node_config_build(node=three_nodes[0], dirs=driver.data_dirs("n1"))
    west_text = node_config_build(node=west, dirs=driver.data_dirs("w1"))
    east_gw = [n.gateway_url for n in three_nodes]
    assert '{name: "eu-west", urls: ["nats://127.0.0.1:17231"]}' in east_text
    assert f'{{name: "us-east", urls: [{", ".join(json.dumps(u) for u in east_gw)}]}}' in west_text
    # A region of one node still has a cluster block (named after it) routing to itself, for clustered JetStream.
    assert ('cluster: {\n  name: "eu-west"\n  listen: "127.0.0.1:16231"\n  routes: ["nats://127.0.0.1:16231"]'
            in west_text)
    for name, text in (("n1", east_text), ("w1", west_text)):
        spec = NodeSpec(name=name, config=text, host="127.0.0.1", client_port=1, monitoring_port=2)
        assert driver.check_config(spec) is None  # nats-server -t accepts both


def test_a_lone_node_runs_standalone(operator_setup, tmp_path):
    from broker_gateway.nodes import node_add, node_config_build

    node = node_add(name="solo")
    text = node_config_build(node=node, dirs=LocalProcessDriver(tmp_path / "fleet").data_dirs("solo"))
    assert "cluster:" not in text and "gateway:" not in text


def test_extra_config_is_appended_and_a_bad_one_gets_the_servers_own_error(three_nodes, tmp_path):
    from broker_gateway.nodes import node_config_build

    driver = LocalProcessDriver(tmp_path / "fleet")
    node = three_nodes[0]
    node.extra_config = "max_connections: 1000"
    good = node_config_build(node=node, dirs=driver.data_dirs(node.name))
    assert good.rstrip().endswith("max_connections: 1000")
    spec = NodeSpec(name=node.name, config=good, host=node.host, client_port=1, monitoring_port=2)
    assert driver.check_config(spec) is None
    node.extra_config = "max_connections: {{ nope"
    bad = node_config_build(node=node, dirs=driver.data_dirs(node.name))
    error = driver.check_config(NodeSpec(name=node.name, config=bad, host=node.host, client_port=1, monitoring_port=2))
    expected = subprocess.run([nats_server_bin(), "-t", "-c", str(tmp_path / "fleet" / "n1" / "nats.conf")],
                              capture_output=True, text=True, check=False)
    assert error and error == (expected.stderr or expected.stdout).strip()


# ------------------------------------------------------------------------------------------------
# What the reconciler considers behind
# ------------------------------------------------------------------------------------------------


def test_accounts_behind_are_those_some_healthy_node_has_not_acknowledged(three_nodes, team):
    from django.utils import timezone

    from accounts_service.models import Account
    from accounts_service.services import account_create, account_update
    from broker_gateway.models import BrokerNode, NodeClaim
    from broker_gateway.selectors import accounts_behind_ids, healthy_nodes

    BrokerNode.objects.filter(name__in=["n1", "n2"]).update(observed_state="healthy", last_healthy_at=timezone.now())
    nodes = healthy_nodes()
    assert [n.name for n in nodes] == ["n1", "n2"]  # n3 is not healthy: a push need not reach it
    a, b = account_create(actor=PLATFORM, team=team, name="a"), account_create(actor=PLATFORM, team=team, name="b")
    now = timezone.now()
    for node in nodes:
        NodeClaim.objects.create(account=a, node=node, jti=a.jwt_jti, iat=a.jwt_iat, updated_at=now)
    NodeClaim.objects.create(account=b, node=nodes[0], jti=b.jwt_jti, iat=b.jwt_iat, updated_at=now)
    system = Account.objects.get(is_system=True)
    assert set(accounts_behind_ids(nodes)) == {b.pk, system.pk}
    account_update(actor=PLATFORM, account=a, limits={"conn": 5})  # a newer version: acknowledged by nobody yet
    assert a.pk in accounts_behind_ids(nodes)
    # A heartbeat older than FLEET_HEALTH_STALE_SECONDS means the supervisor stopped confirming the node.
    BrokerNode.objects.filter(name="n2").update(last_healthy_at=now - timezone.timedelta(minutes=5))
    assert [n.name for n in healthy_nodes()] == ["n1"]


def test_gateway_links_read_from_gatewayz():
    from broker_gateway.selectors import gateway_links

    gatewayz = {"name": "us-east", "outbound_gateways": {
        "eu-west": {"configured": True, "connection": {"ip": "127.0.0.1", "port": 7223, "rtt": "1ms"}}},
        "inbound_gateways": {"eu-west": [{"configured": False, "connection": {}}]}}
    links = gateway_links(gatewayz, ["ap-south", "eu-west", "us-east"], "us-east")
    assert links == [
        {"region": "ap-south", "state": "down", "url": "", "rtt": "", "inbound": 0},
        {"region": "eu-west", "state": "up", "url": "127.0.0.1:7223", "rtt": "1ms", "inbound": 1},
    ]
    assert [link["state"] for link in gateway_links(None, ["eu-west", "us-east"], "us-east")] == ["unknown"]
    assert gateway_links({}, ["us-east"], "us-east") == []  # one region: no link to show


def test_leafnode_urls_list_every_region_first_region_first(operator_setup):
    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import node_add
    from broker_gateway.selectors import leafnode_urls_public

    node_add(name="b-1", region="eu-west")
    node_add(name="a-1", region="us-east")
    node_add(name="a-0", region="eu-west")
    urls = leafnode_urls_public()
    names = {n.leafnode_url: n.name for n in BrokerNode.objects.all()}
    assert [names[u] for u in urls] == ["a-0", "b-1", "a-1"] and all(u.startswith("nats-leaf://") for u in urls)


@pytest.mark.django_db(transaction=True)  # the records are written by another thread, on its own connection
def test_nodes_starting_together_have_their_stores_written_side_by_side_and_recorded(operator_setup, team, tmp_path):
    """A region coming back: every node's store is written and its config checked (``nats-server -t``, once) on a
    pool thread of its own in the same tick, the starts stay on the supervisor's thread, and what was written is
    recorded as held (NodeClaim)."""
    import threading

    from accounts_service.services import account_create
    from broker_gateway.fleet.driver import NodeStatus
    from broker_gateway.fleet.supervisor import Policy, Supervisor
    from broker_gateway.models import NodeClaim
    from broker_gateway.nodes import node_add

    account = account_create(actor=PLATFORM, team=team, name="orders")
    nodes = [node_add(name=f"w{i}", region="eu-west") for i in (1, 2, 3)]

    class Driver(LocalProcessDriver):
        primed: dict[str, str] = {}
        checked: list[tuple[str, str]] = []
        started: dict[str, str] = {}

        def prime(self, name, jwts):
            assert jwts[account.public_key] == account.jwt
            self.primed[name] = threading.current_thread().name
            return True

        def check_config(self, spec):
            self.checked.append((spec.name, threading.current_thread().name))
            return super().check_config(spec)  # the real `nats-server -t` of the config the node starts with

        def start(self, spec):
            self.started[spec.name] = threading.current_thread().name
            return NodeStatus(running=True, pid=1)

        def status(self, name):
            return NodeStatus(running=name in self.started, pid=1 if name in self.started else None)

    driver = Driver(tmp_path / "fleet")
    sup = Supervisor(driver, policy=Policy())
    sup.tick()
    sup._recorder.shutdown(wait=True)  # the records are written off the supervisor's thread
    assert set(driver.primed) == {"w1", "w2", "w3"} and all(t.startswith("prime") for t in driver.primed.values())
    assert sorted(name for name, _ in driver.checked) == ["w1", "w2", "w3"]  # once each: _start took it as done
    assert all(thread.startswith("prime") for _, thread in driver.checked)
    assert set(driver.started.values()) == {threading.current_thread().name}
    held = set(NodeClaim.objects.filter(account=account, jti=account.jwt_jti).values_list("node__name", flat=True))
    assert held == {n.name for n in nodes}
