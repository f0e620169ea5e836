"""The Kubernetes driver: each node is a pod of the Helm chart's NATS StatefulSet, driven through the API server.

**Names and ordinals.** A node is the pod ``<statefulset>-<ordinal>``; the pod name is also the node's nats
``server_name``, by which push replies are matched to nodes. A StatefulSet only adds or removes its highest
ordinal (https://kubernetes.io/docs/concepts/workloads/controllers/statefulset/#scaling), so:

- ``start`` of ordinal k scales ``replicas`` up to at least k+1 (any missing ordinal below k comes up too);
  it never scales down.
- ``stop`` and ``forget`` of the highest ordinal scale down by one: the pod gets its SIGTERM and grace period
  (the chart's preStop hook puts nats-server in lame duck mode). Below the highest ordinal both are refused
  with an ApplicationError that names the pods above it; the supervisor records it as the node's last error
  and asks again every tick, so stopping several top nodes at once completes from the top down. Nothing else
  is honest: deleting a middle pod only makes the StatefulSet recreate it.
- ``kill`` deletes the pod with gracePeriodSeconds=0 (only the instance seen, by uid precondition); the
  StatefulSet recreates it, which the supervisor counts as a restart, as with a killed local process.

**Instances.** An instance is one run of the nats container: (pod uid, restartCount). A replaced pod, a
container the kubelet restarted, or one that terminated is an ended instance, reported until the next
``start``, so the supervisor's failure count, backoff and ``max_failures`` work as with local processes. The
pod's last termination (exit code, reason, termination message) is the ``error``.

**Health** is the pod's Ready condition (the chart's readinessProbe is nats-server's
``/healthz?js-enabled-only=true``); server id and version come from ``/varz`` at the pod IP.

**What it cannot do.** It cannot write into a pod's resolver store, so ``prime`` does nothing (the full sync
after the start covers it). Pods run the chart's ConfigMap, not the config the control plane renders:
``check_config`` still checks that rendered config with the local ``nats-server -t`` (paths mapped to a
scratch directory), so a node with a broken extra config fails instead of starting, but a node's
``extra_config`` and ports are not applied to the pod. ``close`` leaves the StatefulSet alone: it outlives
the control plane. A removed node's volumes go with the StatefulSet's
``persistentVolumeClaimRetentionPolicy.whenScaled`` (the chart sets ``Delete``), not with ``forget``.

**Regions.** A supercluster chart has one StatefulSet per region (``K8S_STATEFULSETS``:
``region=statefulset,...``): ``RegionalKubernetesDriver`` holds one driver per StatefulSet, sends each call to the
one whose pods the node name names, and discovers every region's pods with their region.

The API server is spoken to through fleet/kube_api.py (urllib, no client library).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker_gateway.fleet.driver import DataDirs, Health, NodeSpec, NodeStatus
from broker_gateway.fleet.kube_api import (
    MERGE_PATCH,
    ApiConfig,
    KubeClient,
    KubernetesApiError,
    KubernetesError,
    label_selector,
    pod_condition,
    pod_ready,
    pod_terminating,
    pod_uid,
    termination_words,
)
from broker_gateway.fleet.local import nats_server_bin
from core.errors import ErrorKind

DEFAULT_PORTS = {"client_port": 4222, "cluster_port": 6222, "monitoring_port": 8222, "leafnode_port": 7422,
                 "gateway_port": 7222}
DEFAULT_HOST = "{pod}.{service}.{namespace}.svc"  # the pod's DNS name under the StatefulSet's headless service


@dataclass(frozen=True)
class DiscoveredNode:
    """A pod of the StatefulSet, as a node to register: its name, DNS host and ports."""

    name: str
    ordinal: int
    host: str
    ports: dict[str, int]
    ready: bool
    region: str | None = None  # None: the fleet's default region (a chart without regions)


@dataclass
class _Instance:
    """The container run the supervisor believes it started."""

    uid: str | None  # None: started, waiting for the pod the StatefulSet controller is about to create
    restarts: int = 0
    awaiting_restart: bool = False  # started while the container was down: the kubelet's next run is ours


@dataclass(frozen=True)
class _View:
    replicas: int
    service: str
    pods: dict[str, dict[str, Any]]
    at: float


@dataclass
class KubernetesDriver:
    """Nodes as the pods ``<statefulset>-<ordinal>`` of one StatefulSet in one namespace."""

    api: KubeClient
    statefulset: str
    container: str = "nats"
    binary: str = ""
    dirs: DataDirs = field(default_factory=lambda: DataDirs(resolver="/data/resolver", jetstream="/data/jetstream"))
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    host_template: str = DEFAULT_HOST
    cache_seconds: float = 1.0  # one tick probes every node: read the StatefulSet and its pods once for all
    probe_timeout: float = 0.5
    region: str | None = None  # the region its pods are registered in (None: the fleet's default)

    def __post_init__(self) -> None:
        self.binary = nats_server_bin(self.binary)
        self._name = re.compile(re.escape(self.statefulset) + r"-(0|[1-9][0-9]{0,5})")
        self._instances: dict[str, _Instance] = {}
        self._varz: dict[str, tuple[tuple[str, int], dict[str, Any]]] = {}  # by pod: (uid, restarts), /varz
        self._view_cache: _View | None = None
        self._lock = threading.RLock()
        self._http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # pod IPs never via a proxy

    @classmethod
    def from_settings(cls, *, statefulset: str | None = None, region: str | None = None,
                      api: KubeClient | None = None) -> KubernetesDriver:
        from django.conf import settings

        if api is None:
            api = KubeClient(ApiConfig.resolve(url=settings.K8S_API_URL, namespace=settings.K8S_NAMESPACE,
                                               token_file=settings.K8S_TOKEN_FILE, ca_file=settings.K8S_CA_FILE,
                                               timeout=settings.K8S_API_TIMEOUT))
        ports = dict(settings.FLEET_BASE_PORTS)  # every pod has its own address: the base ports, unshifted
        return cls(api, statefulset=statefulset or settings.K8S_STATEFULSET, container=settings.K8S_CONTAINER,
                   binary=settings.NATS_SERVER_BIN, ports=ports, host_template=settings.K8S_NODE_HOST,
                   dirs=DataDirs(resolver=settings.K8S_RESOLVER_DIR, jetstream=settings.K8S_JETSTREAM_DIR),
                   region=region)

    # -- names and the API ------------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        return self.api.config.namespace

    def ordinal(self, name: str) -> int | None:
        """The StatefulSet ordinal a node name stands for, or None for a name that is not one of its pods."""
        match = self._name.fullmatch(name)
        return int(match.group(1)) if match else None

    def _sts_path(self, sub: str = "") -> str:
        return (f"/apis/apps/v1/namespaces/{urllib.parse.quote(self.namespace)}/statefulsets/"
                f"{urllib.parse.quote(self.statefulset)}{sub}")

    def _pods_path(self, pod: str = "") -> str:
        path = f"/api/v1/namespaces/{urllib.parse.quote(self.namespace)}/pods"
        return f"{path}/{urllib.parse.quote(pod)}" if pod else path

    def _view(self, *, fresh: bool = False) -> _View:
        """The StatefulSet's replicas and headless service, and its pods by name (cached ``cache_seconds``)."""
        with self._lock:
            cached = self._view_cache
            if not fresh and cached is not None and time.monotonic() - cached.at < self.cache_seconds:
                return cached
            sts = self.api.request("GET", self._sts_path())
            spec = sts.get("spec") or {}
            pods = self.api.request("GET", self._pods_path(),
                                    query={"labelSelector": label_selector(spec.get("selector") or {})})
            by_name = {p["metadata"]["name"]: p for p in pods.get("items") or []
                       if self.ordinal(p["metadata"]["name"]) is not None}
            self._view_cache = _View(replicas=spec.get("replicas", 1), service=spec.get("serviceName", ""),
                                     pods=by_name, at=time.monotonic())
            return self._view_cache

    def _scale(self, decide: Callable[[int], int | None]) -> None:
        """Set ``replicas`` to ``decide(current)`` (None: leave it) through the scale subresource, guarded by
        the resourceVersion read (a concurrent change is a 409: read again and decide again)."""
        path = self._sts_path("/scale")
        for attempt in range(3):
            scale = self.api.request("GET", path)
            current = (scale.get("spec") or {}).get("replicas", 0)
            target = decide(current)
            if target is None or target == current:
                return
            body = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": self.statefulset, "namespace": self.namespace,
                                 "resourceVersion": scale["metadata"]["resourceVersion"]},
                    "spec": {"replicas": target}}
            try:
                self.api.request("PATCH", path, body=body, content_type=MERGE_PATCH)
            except KubernetesApiError as exc:
                if exc.http_status != 409 or attempt == 2:
                    raise
                continue
            finally:
                self._view_cache = None
            return

    def _delete_pod(self, name: str, *, grace: int, uid: str | None) -> None:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": grace}
        if uid:
            body["preconditions"] = {"uid": uid}  # that instance only, never a pod the controller just recreated
        try:
            self.api.request("DELETE", self._pods_path(name), body=body)
        except KubernetesApiError as exc:
            if exc.http_status not in (404, 409):  # already gone, or already replaced
                raise
        finally:
            self._view_cache = None

    def _refusal(self, name: str, ordinal: int, replicas: int, what: str) -> KubernetesError:
        above = [f"{self.statefulset}-{i}" for i in range(ordinal + 1, replicas)]
        shown = ", ".join(above[:5]) + (f" and {len(above) - 5} more" if len(above) > 5 else "")
        return KubernetesError(
            f"cannot {what} {name}: a StatefulSet removes only its highest ordinal, and {shown} "
            f"{'is' if len(above) == 1 else 'are'} above it (replicas={replicas}); stop or remove those first",
            extra={"node": name, "replicas": replicas, "above": above}, code="statefulset_order",
            kind=ErrorKind.CONFLICT)

    def _scale_down_from(self, name: str, ordinal: int, what: str) -> None:
        def decide(current: int) -> int | None:
            if current <= ordinal:
                return None  # not (or no longer) part of the StatefulSet
            if current > ordinal + 1:
                raise self._refusal(name, ordinal, current, what)
            return ordinal

        self._scale(decide)

    # -- the FleetDriver interface ----------------------------------------------------------------

    def data_dirs(self, name: str) -> DataDirs:
        return self.dirs  # the same mount paths in every pod, each on its own volume

    def check_config(self, spec: NodeSpec) -> str | None:
        if self.ordinal(spec.name) is None:
            return (f"node {spec.name} is not a pod of StatefulSet {self.statefulset}: the kubernetes driver runs "
                    f"nodes named {self.statefulset}-<ordinal> (remove it; running pods are discovered)")
        with tempfile.TemporaryDirectory(prefix="natsctl-check-") as scratch:
            text = spec.config
            for pod_path, sub in ((self.dirs.resolver, "jwt"), (self.dirs.jetstream, "jetstream")):
                local = Path(scratch) / sub
                local.mkdir()
                text = text.replace(json.dumps(pod_path), json.dumps(str(local)))
            path = Path(scratch) / "nats.conf"
            path.write_text(text)
            result = subprocess.run([self.binary, "-t", "-c", str(path)], capture_output=True, text=True,
                                    timeout=30, check=False)
        if result.returncode == 0:
            return None
        error = (result.stderr or result.stdout).strip().replace(str(path), "nats.conf")
        return error or f"nats-server -t exited with {result.returncode}"

    def prime(self, name: str, jwts: dict[str, str]) -> bool:
        """Nothing: the driver cannot write into a pod's resolver volume (and places nothing in pods)."""
        return False

    def start(self, spec: NodeSpec) -> NodeStatus:
        ordinal = self.ordinal(spec.name)
        if ordinal is None:
            raise KubernetesError(f"node {spec.name} is not a pod of StatefulSet {self.statefulset}",
                                  kind=ErrorKind.INVALID)
        view = self._view(fresh=True)
        pod = view.pods.get(spec.name)
        if ordinal >= view.replicas:
            self._scale(lambda current: max(current, ordinal + 1))
            pod = None
        if pod is None or pod_terminating(pod):
            self._instances[spec.name] = _Instance(uid=None)
        else:
            status = self._container(pod)
            self._instances[spec.name] = _Instance(uid=pod_uid(pod), restarts=status.get("restartCount", 0),
                                                   awaiting_restart=self._down(status))
        return NodeStatus(running=True)

    def status(self, name: str) -> NodeStatus:
        ordinal = self.ordinal(name)
        if ordinal is None:
            return NodeStatus(running=False)
        view = self._view()
        pod = view.pods.get(name)
        instance = self._instances.get(name)
        if instance is None or instance.uid is None:
            if pod is None or (pod_terminating(pod) and instance is not None):
                # Started and waiting for the controller's (new) pod, or never started and not there.
                return NodeStatus(running=instance is not None and ordinal < view.replicas)
            # First sight of this pod (e.g. the control plane restarted), or the pod we waited for: ours now.
            status = self._container(pod)
            instance = self._instances[name] = _Instance(uid=pod_uid(pod), restarts=status.get("restartCount", 0))
        if pod is None:
            return NodeStatus(running=False, error=f"pod {name} was deleted")
        if pod_uid(pod) != instance.uid:
            return NodeStatus(running=False, error=f"pod {name} was deleted and recreated by the StatefulSet")
        status = self._container(pod)
        restarts = status.get("restartCount", 0)
        if instance.awaiting_restart:
            if restarts == instance.restarts:
                return NodeStatus(running=True)  # the kubelet starts it again after its own back-off
            instance.restarts, instance.awaiting_restart = restarts, False
        last = (status.get("lastState") or {}).get("terminated")
        if restarts > instance.restarts:
            return NodeStatus(running=False, exit_code=(last or {}).get("exitCode"),
                              error=termination_words(last) or f"container {self.container} restarted")
        phase = pod.get("status", {}).get("phase", "")
        ended = (status.get("state") or {}).get("terminated")
        if ended or phase in ("Succeeded", "Failed"):
            ended = ended or last or {}
            return NodeStatus(running=False, exit_code=ended.get("exitCode"),
                              error=termination_words(ended) or f"pod {name} {phase}")
        if self._down(status):
            return NodeStatus(running=False, exit_code=(last or {}).get("exitCode"), error=termination_words(last))
        return NodeStatus(running=True)

    def probe(self, spec: NodeSpec) -> Health:
        if self.ordinal(spec.name) is None:
            return Health(healthy=False, detail=f"not a pod of StatefulSet {self.statefulset}")
        pod = self._view().pods.get(spec.name)
        if pod is None:
            return Health(healthy=False, detail=f"pod {spec.name} does not exist (yet)")
        if pod_terminating(pod):
            return Health(healthy=False, detail=f"pod {spec.name} is terminating")
        if not pod_ready(pod):
            ready = pod_condition(pod, "Ready")
            waiting = (self._container(pod).get("state") or {}).get("waiting") or {}
            words = [f"pod {spec.name} is not ready"]
            words += [w for w in (ready.get("reason"), ready.get("message"), waiting.get("reason"),
                                  waiting.get("message")) if w]
            return Health(healthy=False, detail=": ".join(words))
        varz = self._varz_get(pod, spec.monitoring_port)
        return Health(healthy=True, server_id=varz.get("server_id", ""), version=varz.get("version", ""))

    def stop(self, name: str, *, graceful: bool) -> None:
        """Scale the highest ordinal away (the pod's grace period and preStop lame duck apply); not graceful:
        also delete the pod at once. Refused below the highest ordinal."""
        ordinal = self.ordinal(name)
        if ordinal is None:
            return
        self._scale_down_from(name, ordinal, "stop")
        if not graceful:
            self.kill(name)

    def kill(self, name: str) -> None:
        if self.ordinal(name) is None:
            return
        pod = self._view(fresh=True).pods.get(name)
        if pod is not None:
            self._delete_pod(name, grace=0, uid=pod_uid(pod))

    def forget(self, name: str) -> None:
        """A removed node: scale it away if it is the highest ordinal (refused below it); its volumes follow the
        StatefulSet's persistentVolumeClaimRetentionPolicy."""
        ordinal = self.ordinal(name)
        if ordinal is not None:
            self._scale_down_from(name, ordinal, "remove")
        self._instances.pop(name, None)

    def close(self, grace: float) -> None:
        """Nothing on the cluster: the StatefulSet outlives the control plane."""
        self._instances.clear()

    def discover(self) -> list[DiscoveredNode]:
        """The StatefulSet's pods (not terminating, within ``replicas``) as nodes to register, lowest first."""
        view = self._view(fresh=True)
        found = []
        for name, pod in view.pods.items():
            ordinal = self.ordinal(name)
            if ordinal is None or ordinal >= view.replicas or pod_terminating(pod):
                continue
            host = self.host_template.format(pod=name, service=view.service, namespace=self.namespace,
                                             ordinal=ordinal)
            found.append(DiscoveredNode(name=name, ordinal=ordinal, host=host, ports=dict(self.ports),
                                        ready=pod_ready(pod), region=self.region))
        return sorted(found, key=lambda node: node.ordinal)

    # -- helpers ----------------------------------------------------------------------------------

    def _container(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The nats container's status (the first container's when none has that name)."""
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return next((s for s in statuses if s.get("name") == self.container), statuses[0] if statuses else {})

    @staticmethod
    def _down(status: dict[str, Any]) -> bool:
        """The container ran and is down now (terminated, or waiting to be restarted after a crash)."""
        state = status.get("state") or {}
        return bool(state.get("terminated")) or (
            bool(state.get("waiting")) and bool((status.get("lastState") or {}).get("terminated")))

    def _varz_get(self, pod: dict[str, Any], port: int) -> dict[str, Any]:
        """/varz of this container run, read once per run (its server id changes only with a restart)."""
        name, ip = pod["metadata"]["name"], pod.get("status", {}).get("podIP", "")
        run = (pod_uid(pod), self._container(pod).get("restartCount", 0))
        known = self._varz.get(name)
        if known is not None and known[0] == run:
            return known[1]
        if not ip:
            return {}
        host = f"[{ip}]" if ":" in ip else ip
        try:
            with self._http.open(f"http://{host}:{port}/varz", timeout=self.probe_timeout) as response:
                varz = json.loads(response.read() or b"{}")
        except (OSError, ValueError):  # readiness is the health; /varz only adds the id and version
            return {}
        self._varz[name] = (run, varz)
        return varz
