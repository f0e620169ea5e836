"""The supervisor with the Kubernetes driver, end to end without a cluster: a fake API server whose "kubelet"
runs each pod's container as a real nats-server (tests/k8s_fake.py). Scaling up from zero, pushes reaching
every pod, a container crash restarted by the kubelet and counted by the supervisor, a scale-down."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from accounts_service.rights import PLATFORM
from broker_gateway.fleet.driver import NodeSpec
from broker_gateway.fleet.kube_api import ApiConfig, KubeClient
from broker_gateway.fleet.kubernetes import KubernetesDriver
from tests.fleet import FAST
from tests.k8s_fake import FakeKube, ProcessKubelet
from tests.natsproc import free_port
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STS = "natsctl-nats"
P0, P1, P2 = (f"{STS}-{i}" for i in range(3))


def test_supervisor_runs_a_statefulset_of_real_nats_servers(operator_setup, team, tmp_path: Path):
    from accounts_service.services import account_create
    from broker_gateway.fleet.local import LocalProcessDriver
    from broker_gateway.fleet.node_sync import NodeSyncer
    from broker_gateway.fleet.supervisor import Policy, Supervisor
    from broker_gateway.models import BrokerNode
    from broker_gateway.nodes import node_add, node_config_build, node_desired_set
    from broker_gateway.propagation import fleet_reconcile
    from broker_gateway.selectors import account_propagation
    from broker_gateway.services import gateway_reset

    # Every pod on loopback, so each node gets its own ports (in a cluster each pod has its own address).
    nodes = [node_add(name=f"{STS}-{i}", ports={key: free_port() for key in
                                                ("client_port", "cluster_port", "monitoring_port", "leafnode_port")})
             for i in range(3)]
    pods = LocalProcessDriver(tmp_path / "pods")
    configmap = {n.name: NodeSpec(name=n.name, config=node_config_build(node=n, dirs=pods.data_dirs(n.name)),
                                  host=n.host, client_port=n.client_port, monitoring_port=n.monitoring_port)
                 for n in nodes}
    kubelet = ProcessKubelet(pods, configmap)
    with FakeKube(replicas=0, kubelet=kubelet) as kube:
        token = tmp_path / "token"
        token.write_text(kube.token)
        driver = KubernetesDriver(KubeClient(ApiConfig(url=kube.url, namespace=kube.namespace, token_file=str(token))),
                                  statefulset=STS, cache_seconds=0.05)
        syncer = NodeSyncer()
        sup = Supervisor(driver, policy=Policy(**FAST), on_healthy=syncer)
        sup.start_background(interval=0.05)
        try:
            wait_for(lambda: BrokerNode.objects.filter(observed_state="healthy").count() == 3, timeout=30,
                     what="three healthy pods")
            assert kube.replicas == 3  # each start scaled the StatefulSet up to its ordinal
            versions = set(BrokerNode.objects.values_list("version", flat=True))
            assert len(versions) == 1 and versions != {""}  # read from /varz at the pod IP
            assert all(n.server_id.startswith("N") for n in BrokerNode.objects.all())

            account = account_create(actor=PLATFORM, team=team, name="orders")  # pushed on commit (eager task)
            status = account_propagation(account=account)
            if not status["in_sync"]:
                fleet_reconcile()  # a reply later than NATS_PUSH_TIMEOUT on a loaded machine
                status = account_propagation(account=account)
            assert status["live_on"] == 3 and status["in_sync"], status

            # The container of pod 1 dies; the kubelet restarts it; the supervisor counts the restart.
            old_server = BrokerNode.objects.get(name=P1).server_id
            os.kill(kubelet.pid(P1), signal.SIGKILL)
            wait_for(lambda: BrokerNode.objects.filter(name=P1, observed_state="healthy", restarts=1)
                     .exclude(server_id=old_server).exists(), timeout=30, what=f"{P1} restarted")
            assert kube.pod(P1).restarts == 1
            assert kube.pod(P1).last_state["terminated"]["exitCode"] == 137  # 128 + SIGKILL, as a kubelet says

            # The top node stopped: scaled away, its server terminated, the others untouched.
            node_desired_set(node=BrokerNode.objects.get(name=P2), desired="stopped")
            wait_for(lambda: BrokerNode.objects.filter(name=P2, observed_state="stopped").exists(), timeout=30,
                     what=f"{P2} stopped")
            assert kube.replicas == 2 and P2 not in kube.pods and not pods.status(P2).running
            assert BrokerNode.objects.filter(observed_state="healthy").count() == 2
        finally:
            sup.stop_background(timeout=30)
            syncer.close()
            gateway_reset()
        assert kube.replicas == 2 and len(kube.pods) == 2  # the StatefulSet outlives the control plane
        assert kube.schema_errors == [] and kube.unexpected == [] and kubelet.errors == []
        assert {p.split(" ")[0] for p in kube.paths()} <= {"GET", "PATCH", "DELETE"}
