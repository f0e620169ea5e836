"""The Kubernetes fleet driver against a fake API server (tests/k8s_fake.py): the requests it makes, the bodies it
sends and the objects it reads, all checked against the Kubernetes OpenAPI schemas; then the real supervisor's
tick loop driving it. There is no cluster here: nothing in this file talks to a real API server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from broker_gateway.fleet.driver import NodeSpec
from broker_gateway.fleet.kube_api import ApiConfig, KubeClient, KubernetesError, label_selector, termination_words
from broker_gateway.fleet.kubernetes import KubernetesDriver
from core.errors import ApplicationError
from core.http import status_for
from tests.k8s_fake import SCHEMA_VERSIONS, AutoKubelet, FakeKube, schema_errors
from tests.natsproc import free_port, nats_server_bin

STS = "natsctl-nats"
P0, P1, P2 = (f"{STS}-{i}" for i in range(3))


def make_driver(kube: FakeKube, **kwargs) -> KubernetesDriver:
    token = Path(kube._tmp.name) / "token"
    token.write_text(kube.token + "\n")
    config = ApiConfig(url=kube.url, namespace=kube.namespace, token_file=str(token), ca_file=kube.ca_file)
    # Nothing listens on the monitoring port: /varz is refused at once (the probe tests use a real server).
    ports = {"client_port": 4222, "cluster_port": 6222, "monitoring_port": free_port(), "leafnode_port": 7422}
    return KubernetesDriver(KubeClient(config), statefulset=STS, cache_seconds=0, ports=ports, **kwargs)


def spec(name: str, *, config: str = "", monitoring_port: int = 8222) -> NodeSpec:
    return NodeSpec(name=name, config=config, host=f"{name}.natsctl-nats-headless.natsctl.svc", client_port=4222,
                    monitoring_port=monitoring_port)


@pytest.fixture
def kube():
    with FakeKube(replicas=0) as server:
        yield server
    # Whatever a test did: every body the driver sent and every object the fake served matched the schemas,
    # and the driver asked for nothing the fake does not serve.
    assert server.schema_errors == []
    assert server.unexpected == []


@pytest.fixture
def three(kube):
    """Three running, ready pods."""
    kube.replicas = 3
    kube._reconcile()
    for name in (P0, P1, P2):
        kube.run(name)
    return kube


# ------------------------------------------------------------------------------------------------
# The schemas themselves, and the fake's objects
# ------------------------------------------------------------------------------------------------


def test_schema_check_is_kubernetes_validate_and_has_teeth(three):
    """Our cached validator gives kubernetes_validate.validate()'s verdict, and it catches a misspelt field or a
    wrong type in each kind the driver reads or writes."""
    pod = three.pod_json(three.pod(P0))
    for obj in (three.statefulset_json(), three.scale_json(), pod, three.pod_list_json({})):
        for version in SCHEMA_VERSIONS:
            assert kubernetes_validate.validate(obj, version, strict=True) == version
        assert schema_errors(obj) == []
    bad_pod = json.loads(json.dumps(pod))
    bad_pod["status"]["podIp"] = bad_pod["status"].pop("podIP")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad_pod, SCHEMA_VERSIONS[-1], strict=True)
    assert any("podIp" in e for e in schema_errors(bad_pod))
    assert schema_errors({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriod": 0})
    assert schema_errors({"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": "3"}})
    assert schema_errors({"apiVersion": "v1", "kind": "Status", "code": "404"})


# ------------------------------------------------------------------------------------------------
# Selection by setting, and configuration
# ------------------------------------------------------------------------------------------------


def test_driver_is_chosen_by_setting_local_by_default(settings, kube, tmp_path, monkeypatch):
    from broker_gateway.fleet import driver_get
    from broker_gateway.fleet.local import LocalProcessDriver

    monkeypatch.delenv("FLEET_DRIVER", raising=False)
    import environ

    assert environ.Env()("FLEET_DRIVER", default="local") == "local"  # the settings' default, as settings read it
    settings.FLEET_DRIVER = "local"
    assert isinstance(driver_get(), LocalProcessDriver)

    token = tmp_path / "token"
    token.write_text(kube.token)
    settings.FLEET_DRIVER = "kubernetes"
    settings.K8S_API_URL, settings.K8S_TOKEN_FILE, settings.K8S_NAMESPACE = kube.url, str(token), kube.namespace
    settings.K8S_STATEFULSET = STS
    driver = driver_get()
    assert isinstance(driver, KubernetesDriver)
    assert driver.namespace == "natsctl" and driver.dirs.resolver == settings.K8S_RESOLVER_DIR
    assert driver.ports == settings.FLEET_BASE_PORTS
    assert driver.discover() == []  # it reaches the (fake) API server with that token

    settings.FLEET_DRIVER = "nomad"
    with pytest.raises(ValueError, match=r"unknown FLEET_DRIVER 'nomad' \(known: kubernetes, local\)"):
        driver_get()


def test_in_cluster_config_from_the_service_account_over_tls(tmp_path):
    with FakeKube(replicas=1, tls=True, namespace="nats-prod") as kube:
        kube.run(P0)
        sa = tmp_path / "serviceaccount"
        sa.mkdir()
        (sa / "token").write_text(kube.token)
        (sa / "ca.crt").write_text(Path(kube.ca_file).read_text())
        (sa / "namespace").write_text("nats-prod\n")
        port = kube.url.rsplit(":", 1)[1]
        config = ApiConfig.resolve(environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port},
                                   sa_dir=sa)
        assert config.url == f"https://127.0.0.1:{port}" and config.namespace == "nats-prod"
        driver = KubernetesDriver(KubeClient(config), statefulset=STS)
        assert [n.name for n in driver.discover()] == [P0]

        # The kubelet rotates the token: the next request reads the new one.
        kube.token = "rotated"
        (sa / "token").write_text("rotated")
        assert driver.status(P0).running

        # A CA that did not sign the server's certificate: refused, as an application error.
        other = tmp_path / "other-ca"
        other.mkdir()
        from tests.k8s_fake import _self_signed

        (sa / "ca.crt").write_text(_self_signed(other)[0].read_text())
        strict = KubernetesDriver(KubeClient(ApiConfig.resolve(
            environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port}, sa_dir=sa)),
            statefulset=STS, cache_seconds=0)
        with pytest.raises(KubernetesError, match="CERTIFICATE_VERIFY_FAILED"):
            strict.discover()
        assert kube.schema_errors == [] and kube.unexpected == []

    with pytest.raises(KubernetesError, match=r"outside a pod.*K8S_API_URL"):
        ApiConfig.resolve(environ={}, sa_dir=tmp_path / "none")
    with pytest.raises(KubernetesError, match="K8S_NAMESPACE"):
        ApiConfig.resolve(url="http://127.0.0.1:1", environ={}, sa_dir=tmp_path / "none")
    v6 = ApiConfig.resolve(environ={"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"},
                           namespace="x", sa_dir=tmp_path / "none")
    assert v6.url == "https://[fd00::1]:443"


def test_names_map_to_ordinals(kube):
    driver = make_driver(kube)
    assert [driver.ordinal(n) for n in (P0, P2, f"{STS}-12")] == [0, 2, 12]
    for foreign in ("node-1", f"{STS}-01", f"{STS}-1x", f"{STS}--1", f"x{STS}-1", STS):
        assert driver.ordinal(foreign) is None


def test_label_selector_from_a_statefulset_selector():
    assert label_selector({"matchLabels": {"b": "2", "a": "1"}}) == "a=1,b=2"
    assert label_selector({"matchLabels": {"app": "nats"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["x", "y"]}, {"key": "old", "operator": "DoesNotExist"},
        {"key": "zone", "operator": "NotIn", "values": ["z"]}, {"key": "team", "operator": "Exists"}]}) == (
        "app=nats,tier in (x,y),!old,zone notin (z),team")
    with pytest.raises(KubernetesError, match="empty selector"):
        label_selector({})


# ------------------------------------------------------------------------------------------------
# Scale: start, stop, forget
# ------------------------------------------------------------------------------------------------


def test_start_scales_up_to_the_ordinal_and_never_down(kube):
    kube.replicas = 1
    kube._reconcile()
    kube.run(P0)
    driver = make_driver(kube)
    assert driver.start(spec(P2)).running
    patches = [r for r in kube.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == [f"/apis/apps/v1/namespaces/natsctl/statefulsets/{STS}/scale"]
    assert patches[0].content_type == "application/merge-patch+json"
    assert patches[0].body["spec"] == {"replicas": 3} and patches[0].body["kind"] == "Scale"
    assert patches[0].body["metadata"]["resourceVersion"]  # guarded by the version it decided on
    assert kube.replicas == 3 and set(kube.pods) == {P0, P1, P2}  # ordinal 1 comes up with it
    assert driver.status(P2).running  # created, its container not yet started

    kube.requests.clear()
    assert driver.start(spec(P1)).running and driver.start(spec(P0)).running
    assert kube.paths("PATCH") == [] and kube.replicas == 3


def test_a_concurrent_scale_is_retried_on_the_new_version(kube):
    driver = make_driver(kube)
    kube.conflicts = 1
    driver.start(spec(P0))
    assert [r.code for r in kube.requests if r.method == "PATCH"] == [409, 200] and kube.replicas == 1
    kube.conflicts = 5
    with pytest.raises(KubernetesError) as caught:
        driver.start(spec(P2))
    assert status_for(caught.value) == 409 and "Conflict" in caught.value.message


def test_stop_scales_the_highest_ordinal_away_and_refuses_a_lower_one(three):
    driver = make_driver(three)
    with pytest.raises(KubernetesError) as refused:
        driver.stop(P1, graceful=True)
    assert status_for(refused.value) == 409 and isinstance(refused.value, ApplicationError)
    assert f"cannot stop {P1}" in refused.value.message and P2 in refused.value.message
    assert three.paths("PATCH") == [] and three.replicas == 3

    assert driver.status(P2).running
    driver.stop(P2, graceful=True)
    assert three.replicas == 2 and three.pod(P2).deleting  # its grace period (and preStop lame duck) applies
    assert driver.status(P2).running  # terminating: still serving its clients
    three.finish_deletion(P2)
    assert not driver.status(P2).running and P2 not in three.pods

    driver.stop(P1, graceful=True)  # the highest now
    assert three.replicas == 1
    three.requests.clear()
    driver.stop(P2, graceful=True)  # already outside the StatefulSet: nothing to do
    assert three.paths("PATCH") == []


def test_ungraceful_stop_also_deletes_the_pod_at_once(three):
    driver = make_driver(three)
    driver.stop(P2, graceful=False)
    assert three.replicas == 2 and P2 not in three.pods
    assert three.bodies("DELETE")[-1]["gracePeriodSeconds"] == 0


def test_forget_scales_down_the_highest_and_refuses_below(three):
    driver = make_driver(three)
    with pytest.raises(KubernetesError, match=f"cannot remove {P0}: .*{P1}, {P2} are above it"):
        driver.forget(P0)
    driver.forget(P2)
    assert three.replicas == 2
    driver.forget("node-1")  # not one of ours: nothing to do
    assert three.replicas == 2


# ------------------------------------------------------------------------------------------------
# Instances: status across crashes, restarts and replacements
# ------------------------------------------------------------------------------------------------


def test_status_counts_container_runs(three):
    driver = make_driver(three)
    assert driver.status(P0).running  # first sight of a running pod: adopted

    three.crash(P0, exit_code=1, message="[FTL] Error listening on port: 0.0.0.0:4222")
    ended = driver.status(P0)
    assert not ended.running and ended.exit_code == 1
    assert ended.error.startswith("exited with status 1: Error\n[FTL] Error listening")
    assert not driver.status(P0).running  # still ended, until the supervisor starts it again

    assert driver.start(spec(P0)).running  # the kubelet restarts it after its back-off: that run is ours
    assert driver.status(P0).running
    three.restart(P0)
    assert driver.status(P0).running

    three.crash(P0, exit_code=137, reason="OOMKilled")
    three.restart(P0)  # the kubelet restarted it before the supervisor looked
    ended = driver.status(P0)
    assert not ended.running and ended.exit_code == 137
    assert ended.error == "exited with status 137 (killed by SIGKILL): OOMKilled"
    driver.start(spec(P0))
    assert driver.status(P0).running and three.paths("PATCH") == []


def test_kill_deletes_that_pod_now_and_the_replacement_is_a_new_instance(three):
    driver = make_driver(three)
    driver.status(P1)
    old_uid = three.pod(P1).uid
    driver.kill(P1)
    assert three.bodies("DELETE") == [{"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                       "preconditions": {"uid": old_uid}}]
    assert three.pod(P1).uid != old_uid  # the StatefulSet recreated it
    ended = driver.status(P1)
    assert not ended.running and "recreated" in ended.error

    driver.start(spec(P1))
    assert driver.status(P1).running  # the new pod, still creating its container
    three.run(P1)
    assert driver.status(P1).running

    # A stale uid (the pod was replaced meanwhile) deletes nothing and is no error.
    driver._delete_pod(P1, grace=0, uid=old_uid)
    assert three.requests[-1].code == 409 and three.pod(P1).phase == "Running"
    three.requests.clear()
    driver.kill(f"{STS}-7")  # no such pod: nothing to delete
    assert three.paths("DELETE") == []


def test_a_pod_being_replaced_is_waited_for(three):
    """Started while its old pod terminates: the old pod is not adopted, the controller's new one is."""
    driver = make_driver(three)
    driver.stop(P2, graceful=True)
    assert three.pod(P2).deleting
    driver.start(spec(P2))  # scaled back up while the old pod still terminates
    assert three.replicas == 3 and driver.status(P2).running
    old = three.pod(P2).uid
    three.finish_deletion(P2)  # gone; the controller creates a new one
    assert three.pod(P2).uid != old and driver.status(P2).running
    three.run(P2)
    assert driver.status(P2).running and driver._instances[P2].uid == three.pod(P2).uid


# ------------------------------------------------------------------------------------------------
# Health
# ------------------------------------------------------------------------------------------------


def test_probe_is_pod_readiness(three):
    driver = make_driver(three)
    three.set_ready(P0, False)
    health = driver.probe(spec(P0))
    assert not health.healthy and "not ready" in health.detail and "ContainersNotReady" in health.detail
    three.set_ready(P0, True)
    health = driver.probe(spec(P0, monitoring_port=driver.ports["monitoring_port"]))
    assert health.healthy and health.server_id == ""  # /varz unreachable: readiness alone decides
    three.crash(P1)
    assert "CrashLoopBackOff" in driver.probe(spec(P1)).detail
    assert "does not exist" in driver.probe(spec(f"{STS}-5")).detail
    driver.stop(P2, graceful=True)
    assert "terminating" in driver.probe(spec(P2)).detail


def test_probe_reads_server_id_and_version_from_varz_of_a_real_server(three, nats_server):
    import urllib.request

    driver = make_driver(three)
    health = driver.probe(spec(P0, monitoring_port=nats_server.http_port))
    with urllib.request.urlopen(f"http://127.0.0.1:{nats_server.http_port}/varz", timeout=5) as response:
        varz = json.loads(response.read())
    assert health.healthy and health.server_id == varz["server_id"] and health.version == varz["version"]
    assert driver.probe(spec(P0, monitoring_port=nats_server.http_port)).server_id == varz["server_id"]


# ------------------------------------------------------------------------------------------------
# Config check, prime, close, discovery, API failures
# ------------------------------------------------------------------------------------------------


def test_check_config_runs_nats_server_on_the_rendered_config(kube, operator_setup):
    from broker_gateway.nodes import node_add, node_config_build

    driver = make_driver(kube)
    ports = {"client_port": 4222, "cluster_port": 6222, "monitoring_port": 8222, "leafnode_port": 7422}
    nodes = [node_add(name=f"{STS}-{i}", host=f"{STS}-{i}.natsctl-nats-headless.natsctl.svc", ports=ports)
             for i in range(2)]
    text = node_config_build(node=nodes[0], dirs=driver.data_dirs(nodes[0].name))
    assert 'dir: "/data/resolver"' in text and 'store_dir: "/data/jetstream"' in text
    assert (f'routes: ["nats://{STS}-0.natsctl-nats-headless.natsctl.svc:6222", '
            f'"nats://{STS}-1.natsctl-nats-headless.natsctl.svc:6222"]') in text  # itself too, as the chart
    assert driver.check_config(spec(nodes[0].name, config=text)) is None
    assert not Path("/data/resolver").exists()  # checked in a scratch directory, not at the pod's paths

    nodes[0].extra_config = "max_connections: {{ nope"
    bad = node_config_build(node=nodes[0], dirs=driver.data_dirs(nodes[0].name))
    error = driver.check_config(spec(nodes[0].name, config=bad))
    assert error and "Parse error" in error and "natsctl-check-" not in error
    reference = Path(kube._tmp.name) / "nats.conf"
    reference.write_text(bad)
    expected = subprocess.run([nats_server_bin(), "-t", "-c", str(reference)], capture_output=True, text=True,
                              check=False)
    assert error == (expected.stderr or expected.stdout).strip().replace(str(reference), "nats.conf")

    foreign = driver.check_config(spec("node-1", config=text))
    assert foreign.startswith(f"node node-1 is not a pod of StatefulSet {STS}")
    assert kube.requests == []  # none of that needed the API server


def test_prime_and_close_leave_the_cluster_alone(three):
    driver = make_driver(three)
    driver.status(P0)
    three.requests.clear()
    driver.prime(P0, {"A" * 56: "eyJ..."})
    driver.close(10.0)
    assert three.requests == [] and three.replicas == 3 and len(three.pods) == 3


def test_discover_lists_the_statefulsets_pods_as_nodes(three):
    driver = make_driver(three)
    driver.stop(P2, graceful=True)  # terminating: not a node to register
    found = driver.discover()
    assert [(n.name, n.ordinal, n.ready) for n in found] == [(P0, 0, True), (P1, 1, True)]
    assert found[0].host == f"{P0}.natsctl-nats-headless.natsctl.svc" and found[0].ports["client_port"] == 4222
    lists = [r for r in three.requests if r.path == "/api/v1/namespaces/natsctl/pods"]
    assert lists[-1].query["labelSelector"] == [
        "app.kubernetes.io/component=nats,app.kubernetes.io/instance=natsctl,app.kubernetes.io/name=nats"]
    assert {p.split(" ")[1] for p in three.paths("GET")} <= {
        f"/apis/apps/v1/namespaces/natsctl/statefulsets/{STS}",
        f"/apis/apps/v1/namespaces/natsctl/statefulsets/{STS}/scale",
        "/api/v1/namespaces/natsctl/pods"}


def test_api_failures_are_application_errors(three, tmp_path):
    driver = make_driver(three)
    three.outage = True
    with pytest.raises(KubernetesError) as caught:
        driver.status(P0)
    assert status_for(caught.value) == 503 and "503 ServiceUnavailable" in caught.value.message
    three.outage = False
    wrong = tmp_path / "wrong-token"
    wrong.write_text("nope")
    intruder = KubernetesDriver(KubeClient(ApiConfig(url=three.url, namespace="natsctl", token_file=str(wrong))),
                                statefulset=STS)
    with pytest.raises(KubernetesError, match="401 Unauthorized"):
        intruder.discover()
    gone = KubernetesDriver(KubeClient(ApiConfig(url=f"http://127.0.0.1:{free_port()}", namespace="natsctl",
                                                 timeout=1.0)), statefulset=STS)
    with pytest.raises(KubernetesError, match="refused"):
        gone.status(P0)


def test_termination_words():
    assert termination_words(None) == ""
    assert termination_words({"exitCode": 143, "reason": "Error"}) == (
        "exited with status 143 (killed by SIGTERM): Error")
    assert termination_words({"exitCode": 0, "reason": "Completed", "message": " bye \n"}) == (
        "exited with status 0: Completed\nbye")


# ------------------------------------------------------------------------------------------------
# The real supervisor driving the Kubernetes driver
# ------------------------------------------------------------------------------------------------


FAST = {"start_timeout": 10.0, "liveness_timeout": 60.0, "max_failures": 3, "backoff_base": 0.0,
        "backoff_max": 0.0, "stable_after": 5.0, "stop_grace": 5.0, "lame_duck": 30.0, "heartbeat": 1.0,
        "discover_every": 0.0}


def nodes():
    from broker_gateway.models import BrokerNode

    return {n.name: n for n in BrokerNode.objects.all()}


def ticks(sup, n: int = 1) -> None:
    for _ in range(n):
        sup.tick()


def test_the_supervisor_discovers_scales_and_restarts_pods(operator_setup, caplog):
    from broker_gateway.fleet.supervisor import Policy, Supervisor
    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import node_add, node_desired_set, node_remove

    with FakeKube(replicas=3, kubelet=AutoKubelet()) as kube:
        driver = make_driver(kube)
        healthy_calls = []
        sup = Supervisor(driver, policy=Policy(**FAST), on_healthy=healthy_calls.append)
        node_add(name="node-1")  # what `fleet run` makes on an empty fleet with FLEET_NODES > 0
        ticks(sup, 3)
        rows = nodes()
        assert set(rows) == {P0, P1, P2, "node-1"}
        assert rows[P1].host == f"{P1}.natsctl-nats-headless.natsctl.svc" and rows[P1].client_port == 4222
        assert all(rows[n].observed_state == "healthy" for n in (P0, P1, P2))
        assert sorted(n.name for n in healthy_calls) == [P0, P1, P2]  # each gets its full sync
        assert rows["node-1"].observed_state == "failed"
        assert rows["node-1"].last_error.startswith(f"node node-1 is not a pod of StatefulSet {STS}")
        assert kube.paths("PATCH") == []  # adopted as they were

        # A crash: the supervisor sees the run end, starts it again (the kubelet's next run), counts a restart.
        kube.crash(P1, message="[FTL] out of file descriptors")
        ticks(sup)
        row = BrokerNode.objects.get(name=P1)
        assert row.observed_state == "unhealthy" and "out of file descriptors" in row.last_error
        ticks(sup)
        kube.restart(P1)
        ticks(sup, 2)
        row.refresh_from_db()
        assert row.observed_state == "healthy" and row.restarts == 1

        # Stopping a middle node is refused (recorded, logged once) until the one above it stops too.
        node_desired_set(node=rows[P1], desired="stopped")
        ticks(sup, 3)
        row.refresh_from_db()
        assert row.observed_state == "healthy" and f"cannot stop {P1}" in row.last_error
        assert sum(f"cannot stop {P1}" in r.getMessage() for r in caplog.records) == 1
        node_desired_set(node=rows[P2], desired="stopped")
        ticks(sup, 4)
        assert kube.replicas == 1
        assert {n: r.observed_state for n, r in nodes().items() if n != "node-1"} == {
            P0: "healthy", P1: "stopped", P2: "stopped"}

        # Started again: each scales the StatefulSet up to its own ordinal.
        for name in (P1, P2):
            node_desired_set(node=BrokerNode.objects.get(name=name), desired="running")
        ticks(sup, 4)
        assert kube.replicas == 3 and all(r.observed_state == "healthy" for n, r in nodes().items() if n != "node-1")

        # A pod killed for being unhealthy too long comes back as a new instance: a restart.
        old = kube.pod(P0).uid
        driver.kill(P0)
        ticks(sup, 4)
        row = BrokerNode.objects.get(name=P0)
        assert kube.pod(P0).uid != old and row.observed_state == "healthy" and row.restarts == 1

        # Removing the top node: scaled away, gone, forgotten; discovery does not bring it back.
        node_remove(node=BrokerNode.objects.get(name=P2))
        node_remove(node=BrokerNode.objects.get(name="node-1"))
        ticks(sup, 4)
        assert kube.replicas == 2 and P2 not in sup.runtime and set(nodes()) == {P0, P1}

        # Removing a lower one waits (refused, logged once, not rediscovered) until the one above it goes too.
        node_remove(node=BrokerNode.objects.get(name=P0))
        ticks(sup, 3)
        assert kube.replicas == 2 and P0 in sup.runtime and set(nodes()) == {P1}
        assert sum(f"cannot stop {P0}" in r.getMessage() for r in caplog.records) == 1
        node_remove(node=BrokerNode.objects.get(name=P1))
        ticks(sup, 4)
        assert kube.replicas == 0 and sup.runtime == {} and nodes() == {}

        node_add(name=P0, host="elsewhere", ports={"client_port": 1, "cluster_port": 2, "monitoring_port": 3,
                                                   "leafnode_port": 4})
        ticks(sup, 3)
        assert kube.replicas == 1 and nodes()[P0].observed_state == "healthy"  # `fleet add` of an ordinal starts it
        sup.shutdown()  # the control plane stops; the StatefulSet stays as it is
        assert kube.replicas == 1 and len(kube.pods) == 1
        assert kube.schema_errors == [] and kube.unexpected == []


# ------------------------------------------------------------------------------------------------
# Regions: one StatefulSet each (K8S_STATEFULSETS), behind one RegionalKubernetesDriver
# ------------------------------------------------------------------------------------------------

US, EU = "natsctl-nats-us-east", "natsctl-nats-eu-west"


def regional(*kubes: tuple[str, FakeKube], **kwargs):
    from broker_gateway.fleet.kubernetes_regions import RegionalKubernetesDriver

    drivers = {}
    for region, kube in kubes:
        token = Path(kube._tmp.name) / "token"
        token.write_text(kube.token + "\n")
        config = ApiConfig(url=kube.url, namespace=kube.namespace, token_file=str(token))
        ports = {"client_port": 4222, "cluster_port": 6222, "monitoring_port": free_port(), "leafnode_port": 7422,
                 "gateway_port": 7222}
        drivers[region] = KubernetesDriver(KubeClient(config), statefulset=kube.statefulset, cache_seconds=0,
                                           ports=ports, **kwargs)
    return RegionalKubernetesDriver(drivers)


@pytest.fixture
def two_regions():
    """us-east with three ready pods and eu-west with one (two StatefulSets; one fake API server each)."""
    with (FakeKube(statefulset=US, service=f"{US}-headless", replicas=3) as us,
          FakeKube(statefulset=EU, service=f"{EU}-headless", replicas=1) as eu):
        for i in range(3):
            us.run(f"{US}-{i}")
        eu.run(f"{EU}-0")
        yield us, eu
        for kube in (us, eu):
            assert kube.schema_errors == [] and kube.unexpected == []


def test_statefulsets_setting_is_parsed_and_checked():
    from broker_gateway.fleet.kubernetes_regions import statefulsets_parse

    assert statefulsets_parse("") == [] and statefulsets_parse(" , ") == []
    assert statefulsets_parse(f"us-east={US}, eu-west={EU}") == [("us-east", US), ("eu-west", EU)]
    for bad, words in ((f"us-east{US}", "REGION=STATEFULSET"), (f"US={US}", "not a region name"),
                       ("us-east=Nats_X", "not a StatefulSet name"), (f"a={US},b={US}", "twice"),
                       (f"a={US},a={EU}", "twice"), ("a=", "REGION=STATEFULSET")):
        with pytest.raises(ValueError, match=words):
            statefulsets_parse(bad)


def test_driver_per_region_is_chosen_by_setting(settings, two_regions, tmp_path):
    from broker_gateway.fleet import driver_get
    from broker_gateway.fleet.kubernetes_regions import RegionalKubernetesDriver

    us, _ = two_regions
    token = tmp_path / "token"
    token.write_text(us.token)
    settings.FLEET_DRIVER = "kubernetes"
    settings.K8S_API_URL, settings.K8S_TOKEN_FILE, settings.K8S_NAMESPACE = us.url, str(token), us.namespace
    settings.K8S_STATEFULSETS = f"us-east={US},eu-west={EU}"
    driver = driver_get()
    assert isinstance(driver, RegionalKubernetesDriver)
    assert {r: d.statefulset for r, d in driver.drivers.items()} == {"us-east": US, "eu-west": EU}
    assert {d.region for d in driver.drivers.values()} == {"us-east", "eu-west"}
    assert len({id(d.api) for d in driver.drivers.values()}) == 1  # one API server, one client
    assert driver.namespace == "natsctl" and driver.drivers["eu-west"].ports == settings.FLEET_BASE_PORTS
    assert [n.name for n in driver.drivers["us-east"].discover()] == [f"{US}-{i}" for i in range(3)]
    settings.K8S_STATEFULSETS = ""
    assert isinstance(driver_get(), KubernetesDriver)  # without regions: the one K8S_STATEFULSET


def test_discovery_covers_every_region_with_its_region(two_regions):
    driver = regional(("us-east", two_regions[0]), ("eu-west", two_regions[1]))
    found = driver.discover()
    assert [(n.name, n.region, n.ordinal) for n in found] == [
        (f"{US}-0", "us-east", 0), (f"{US}-1", "us-east", 1), (f"{US}-2", "us-east", 2), (f"{EU}-0", "eu-west", 0)]
    assert found[3].host == f"{EU}-0.{EU}-headless.natsctl.svc" and found[3].ports["gateway_port"] == 7222
    assert driver.region_of(f"{EU}-0") == "eu-west" and driver.region_of("node-1") is None
    # A region's name that is a prefix of another's StatefulSet does not capture its pods.
    assert driver.drivers["us-east"].ordinal(f"{US}-2") == 2 and driver.drivers["us-east"].ordinal(f"{EU}-0") is None


def test_each_call_goes_to_its_regions_statefulset(two_regions):
    us, eu = two_regions
    driver = regional(("us-east", us), ("eu-west", eu))
    assert driver.status(f"{EU}-0").running and driver.status(f"{US}-1").running
    assert driver.probe(spec(f"{EU}-0")).healthy
    # eu-west grows by one: only its StatefulSet is scaled
    driver.start(spec(f"{EU}-1"))
    assert eu.replicas == 2 and us.replicas == 3 and us.paths("PATCH") == []
    # the top of us-east stops: only us-east scales down; below the top is refused, as with one StatefulSet
    driver.stop(f"{US}-2", graceful=True)
    assert us.replicas == 2 and eu.replicas == 2
    with pytest.raises(KubernetesError, match=f"cannot stop {US}-0"):
        driver.stop(f"{US}-0", graceful=True)
    old = eu.pod(f"{EU}-0").uid
    driver.kill(f"{EU}-0")
    assert eu.pod(f"{EU}-0").uid != old  # deleted at once, recreated by eu-west's StatefulSet
    assert any(p.startswith(f"DELETE /api/v1/namespaces/natsctl/pods/{EU}-0") for p in eu.paths())
    driver.forget(f"{EU}-1")
    assert eu.replicas == 1
    assert driver.data_dirs(f"{EU}-0").resolver == "/data/resolver"
    # a name of no region's StatefulSet: refused, and nothing asked of either API server
    us.requests.clear(), eu.requests.clear()
    assert driver.check_config(spec("node-1")).startswith("node node-1 is not a pod of any region's StatefulSet")
    with pytest.raises(KubernetesError, match="not a pod of any region's StatefulSet"):
        driver.start(spec("node-1"))
    assert not driver.status("node-1").running
    driver.stop("node-1", graceful=False)
    driver.prime(f"{US}-0", {})
    driver.close(1.0)
    assert us.requests == [] and eu.requests == []


def test_the_supervisor_registers_each_regions_pods_in_their_region(operator_setup, two_regions):
    from broker_gateway.fleet.supervisor import Policy, Supervisor
    from broker_gateway.nodes import node_config_build

    us, eu = two_regions
    driver = regional(("us-east", us), ("eu-west", eu))
    sup = Supervisor(driver, policy=Policy(**FAST))
    ticks(sup, 3)
    rows = nodes()
    assert {n: (r.region, r.gateway_port) for n, r in rows.items()} == {
        f"{US}-0": ("us-east", 7222), f"{US}-1": ("us-east", 7222), f"{US}-2": ("us-east", 7222),
        f"{EU}-0": ("eu-west", 7222)}
    assert all(r.observed_state == "healthy" for r in rows.values()), {n: r.last_error for n, r in rows.items()}
    # the config the control plane renders (and checks) for a pod: its region's cluster, gateways to the other
    text = node_config_build(node=rows[f"{EU}-0"], dirs=driver.data_dirs(f"{EU}-0"))
    assert 'name: "eu-west"' in text and f"nats://{US}-0.{US}-headless.natsctl.svc:7222" in text
    sup.shutdown()
