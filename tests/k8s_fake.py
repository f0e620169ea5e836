"""A small fake Kubernetes API server for the Kubernetes fleet driver's tests (there is no cluster here).

It serves only what the driver uses: the StatefulSet, its scale subresource (GET, merge PATCH), pods by label
selector, one pod (GET, DELETE). Behind it, a StatefulSet controller keeps pods ``<sts>-0..replicas-1`` and a
"kubelet" moves them along: by hand (``ManualKubelet``: the test calls ``run``/``crash``/...), on every request
(``AutoKubelet``), or with a real nats-server process per pod (``ProcessKubelet``).

Every request body is validated against the Kubernetes OpenAPI schemas of ``SCHEMA_VERSIONS`` (strict: no
unknown field) before it is applied, and so is every object served; ``kube.schema_errors`` collects both.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import json
import re
import ssl
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import kubernetes_validate
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

# The oldest Kubernetes the chart supports and the newest the schema package knows.
SCHEMA_VERSIONS = ("1.29", kv_utils.major_minor(kubernetes_validate.latest_version()))

# (apiVersion, kind) -> schema file of kubernetes-validate's local-strict set. kubernetes_validate.validate()
# finds the first four by itself; meta/v1 kinds (Status, DeleteOptions) have apiVersion "v1" in the wire
# format but their files are named "-meta-v1", which its lookup does not produce, hence this table.
SCHEMA_FILES = {
    ("autoscaling/v1", "Scale"): "scale-autoscaling-v1",
    ("apps/v1", "StatefulSet"): "statefulset-apps-v1",
    ("v1", "Pod"): "pod-v1",
    ("v1", "PodList"): "podlist-v1",
    ("v1", "Status"): "status-meta-v1",
    ("v1", "DeleteOptions"): "deleteoptions-meta-v1",
}


@functools.cache
def _validator(schema_file: str, version: str) -> jsonschema.protocols.Validator:
    """The validator kubernetes_validate.validate(strict=True) builds, built once (it reads 1.2 MB per call)."""
    full = [v for v in kv_utils.all_versions() if kv_utils.major_minor(v) == version][-1]
    folder = f"kubernetes-json-schema/v{full}-local-strict"
    schema = kv_utils.schema_contents(f"{folder}/{schema_file}.json", version)
    definitions = kv_utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_errors(obj: dict[str, Any], *, versions: tuple[str, ...] = SCHEMA_VERSIONS) -> list[str]:
    """Every way ``obj`` breaks its Kubernetes schema (by its apiVersion and kind), for each version."""
    schema_file = SCHEMA_FILES.get((obj.get("apiVersion"), obj.get("kind")))
    if schema_file is None:
        return [f"no schema for apiVersion={obj.get('apiVersion')!r} kind={obj.get('kind')!r}"]
    return [f"{obj['kind']} (k8s {version}) {'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for version in versions for e in _validator(schema_file, version).iter_errors(obj)]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------------
# State: one StatefulSet and its pods
# ------------------------------------------------------------------------------------------------


@dataclass
class FakePod:
    name: str
    ordinal: int
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    created: str = field(default_factory=_now)
    phase: str = "Pending"
    ready: bool = False
    state: dict[str, Any] = field(default_factory=lambda: {"waiting": {"reason": "ContainerCreating"}})
    last_state: dict[str, Any] = field(default_factory=dict)
    restarts: int = 0
    ip: str = ""
    deleting: str | None = None
    grace: int | None = None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any
    code: int = 0


class FakeKube:
    """The API server, the StatefulSet controller and a kubelet; a context manager serving on 127.0.0.1."""

    def __init__(self, *, namespace: str = "natsctl", statefulset: str = "natsctl-nats",
                 service: str = "natsctl-nats-headless", replicas: int = 0, token: str = "test-token",
                 kubelet: Any = None, tls: bool = False, pod_ip: str = "127.0.0.1") -> None:
        self.namespace, self.statefulset, self.service, self.token = namespace, statefulset, service, token
        self.replicas = replicas
        self.labels = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": "natsctl",
                       "app.kubernetes.io/component": "nats"}
        self.sts_uid = str(uuid.uuid4())
        self.pod_ip = pod_ip
        self.pods: dict[str, FakePod] = {}
        self.requests: list[Request] = []
        self.schema_errors: list[str] = []
        self.unexpected: list[str] = []
        self.conflicts = 0  # answer this many scale PATCHes with 409 Conflict (someone else scaled first)
        self.outage = False  # answer everything with 503
        self.lock = threading.RLock()
        self._rv = itertools.count(1000)
        self.resource_version = next(self._rv)
        self.kubelet = kubelet or ManualKubelet()
        self.tls = tls
        self._tmp = tempfile.TemporaryDirectory(prefix="fake-kube-")
        self.ca_file = ""
        self._reconcile()

    # -- serving ----------------------------------------------------------------------------------

    def __enter__(self) -> FakeKube:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        if self.tls:
            cert, key = _self_signed(Path(self._tmp.name))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.ca_file = str(cert)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        start = getattr(self.kubelet, "start", None)
        if start is not None:
            start(self)
        return self

    def __exit__(self, *exc: object) -> None:
        stop = getattr(self.kubelet, "stop", None)
        if stop is not None:
            stop()
        self.server.shutdown()
        self.server.server_close()
        self._tmp.cleanup()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    # -- the controller ---------------------------------------------------------------------------

    def bump(self) -> str:
        self.resource_version = next(self._rv)
        return str(self.resource_version)

    def _reconcile(self) -> None:
        """The StatefulSet controller: pods for every ordinal below replicas, none above (graceful delete)."""
        with self.lock:
            for ordinal in range(self.replicas):
                name = f"{self.statefulset}-{ordinal}"
                if name not in self.pods:
                    self.pods[name] = FakePod(name=name, ordinal=ordinal)
                    self.bump()
            for pod in self.pods.values():
                if pod.ordinal >= self.replicas and pod.deleting is None:
                    pod.deleting, pod.grace = _now(), 30
                    self.bump()

    def pod(self, name: str) -> FakePod:
        return self.pods[name]

    # -- kubelet steps (tests and kubelets call these) ---------------------------------------------

    def run(self, name: str, *, ready: bool = True) -> None:
        with self.lock:
            pod = self.pods[name]
            pod.phase, pod.ip, pod.ready = "Running", self.pod_ip, ready
            pod.state = {"running": {"startedAt": _now()}}
            self.bump()

    def set_ready(self, name: str, ready: bool) -> None:
        with self.lock:
            self.pods[name].ready = ready
            self.bump()

    def crash(self, name: str, *, exit_code: int = 1, message: str = "", reason: str = "Error") -> None:
        """The container ended; the kubelet waits (CrashLoopBackOff) before ``restart``."""
        with self.lock:
            pod = self.pods[name]
            started = (pod.state.get("running") or {}).get("startedAt", pod.created)
            terminated = {"exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": _now()}
            if message:
                terminated["message"] = message
            pod.last_state = {"terminated": terminated}
            pod.state = {"waiting": {"reason": "CrashLoopBackOff",
                                     "message": f"back-off 10s restarting failed container={name}"}}
            pod.ready = False
            self.bump()

    def restart(self, name: str, *, ready: bool = True) -> None:
        with self.lock:
            pod = self.pods[name]
            pod.restarts += 1
            pod.state, pod.ready = {"running": {"startedAt": _now()}}, ready
            self.bump()

    def finish_deletion(self, name: str) -> None:
        with self.lock:
            self.pods.pop(name, None)
            self.bump()
            self._reconcile()

    # -- objects ----------------------------------------------------------------------------------

    def _container_spec(self) -> dict[str, Any]:
        return {"name": "nats", "image": "nats:2.11.6-alpine",
                "ports": [{"name": "nats", "containerPort": 4222}, {"name": "cluster", "containerPort": 6222},
                          {"name": "monitor", "containerPort": 8222}, {"name": "leafnodes", "containerPort": 7422}],
                "readinessProbe": {"httpGet": {"path": "/healthz?js-enabled-only=true", "port": "monitor"}},
                "terminationMessagePolicy": "FallbackToLogsOnError"}

    def statefulset_json(self) -> dict[str, Any]:
        live = [p for p in self.pods.values() if p.deleting is None]
        return {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": self.statefulset, "namespace": self.namespace, "uid": self.sts_uid,
                         "resourceVersion": str(self.resource_version), "generation": 1, "labels": self.labels,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"replicas": self.replicas, "serviceName": self.service, "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": self.labels},
                     "template": {"metadata": {"labels": self.labels},
                                  "spec": {"containers": [self._container_spec()]}},
                     "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Delete"}},
            "status": {"observedGeneration": 1, "replicas": len(live), "readyReplicas": sum(p.ready for p in live),
                       "currentReplicas": len(live), "updatedReplicas": len(live),
                       "availableReplicas": sum(p.ready for p in live)},
        }

    def scale_json(self) -> dict[str, Any]:
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": self.statefulset, "namespace": self.namespace, "uid": self.sts_uid,
                             "resourceVersion": str(self.resource_version),
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"replicas": self.replicas},
                "status": {"replicas": len([p for p in self.pods.values() if p.deleting is None]),
                           "selector": ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))}}

    def pod_json(self, pod: FakePod, *, item: bool = False) -> dict[str, Any]:
        conditions = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": pod.created},
            {"type": "Ready", "status": "True" if pod.ready else "False", "lastTransitionTime": pod.created}
            | ({} if pod.ready else {"reason": "ContainersNotReady",
                                     "message": "containers with unready status: [nats]"}),
        ]
        metadata: dict[str, Any] = {
            "name": pod.name, "namespace": self.namespace, "uid": pod.uid,
            "resourceVersion": str(self.resource_version),
            "creationTimestamp": pod.created, "generateName": f"{self.statefulset}-",
            "labels": self.labels | {"apps.kubernetes.io/pod-index": str(pod.ordinal),
                                     "statefulset.kubernetes.io/pod-name": pod.name},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": self.statefulset,
                                 "uid": self.sts_uid, "controller": True, "blockOwnerDeletion": True}]}
        if pod.deleting:
            metadata["deletionTimestamp"], metadata["deletionGracePeriodSeconds"] = pod.deleting, pod.grace
        status: dict[str, Any] = {
            "phase": pod.phase, "conditions": conditions,
            "containerStatuses": [{"name": "nats", "image": "nats:2.11.6-alpine", "imageID": "", "ready": pod.ready,
                                   "restartCount": pod.restarts, "started": "running" in pod.state,
                                   "state": pod.state, "lastState": pod.last_state}]}
        if pod.ip:
            status["podIP"], status["podIPs"] = pod.ip, [{"ip": pod.ip}]
        obj = {"metadata": metadata, "spec": {"hostname": pod.name, "subdomain": self.service,
                                              "containers": [self._container_spec()]}, "status": status}
        return obj if item else {"apiVersion": "v1", "kind": "Pod", **obj}

    def pod_list_json(self, selector: dict[str, str]) -> dict[str, Any]:
        items = [self.pod_json(p, item=True) for _, p in sorted(self.pods.items())
                 if all(self.labels.get(k) == v for k, v in selector.items())]
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": str(self.resource_version)},
                "items": items}

    @staticmethod
    def status_json(code: int, reason: str, message: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "message": message,
                "reason": reason, "code": code}

    # -- requests ---------------------------------------------------------------------------------

    def paths(self, method: str | None = None) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests if method is None or r.method == method]

    def bodies(self, method: str) -> list[Any]:
        return [r.body for r in self.requests if r.method == method]

    def handle(self, method: str, url: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        content_type = headers.get("Content-Type", "")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record = Request(method=method, path=parts.path, query=query, content_type=content_type, body=body)
        with self.lock:
            self.requests.append(record)
            sync = getattr(self.kubelet, "on_request", None)
            if sync is not None:
                sync(self)
            code, obj = self._route(method, parts.path, query, headers, content_type, body)
            record.code = code
            errors = schema_errors(obj)
            if errors:
                self.schema_errors += [f"response to {method} {parts.path}: {e}" for e in errors]
            return code, obj

    def _route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, content_type: str,
               body: Any) -> tuple[int, dict[str, Any]]:
        if self.outage:
            return 503, self.status_json(503, "ServiceUnavailable",
                                         "the server is currently unable to handle the request")
        if headers.get("Authorization", "") != f"Bearer {self.token}":
            return 401, self.status_json(401, "Unauthorized", "Unauthorized")
        ns = re.escape(self.namespace)
        sts = f"/apis/apps/v1/namespaces/{ns}/statefulsets/{re.escape(self.statefulset)}"
        if re.fullmatch(sts, path) and method == "GET":
            return 200, self.statefulset_json()
        if re.fullmatch(sts + "/scale", path):
            if method == "GET":
                return 200, self.scale_json()
            if method == "PATCH":
                return self._patch_scale(content_type, body)
        if re.fullmatch(f"/api/v1/namespaces/{ns}/pods", path) and method == "GET":
            selector = {}
            for term in filter(None, (query.get("labelSelector") or [""])[0].split(",")):
                match = re.fullmatch(r"([\w./-]+)==?([\w.-]*)", term)
                if not match:
                    return 400, self.status_json(400, "BadRequest", f"unsupported selector term {term!r}")
                selector[match.group(1)] = match.group(2)
            return 200, self.pod_list_json(selector)
        match = re.fullmatch(f"/api/v1/namespaces/{ns}/pods/([a-z0-9.-]+)", path)
        if match and method in ("GET", "DELETE"):
            pod = self.pods.get(match.group(1))
            if pod is None:
                return 404, self.status_json(404, "NotFound", f'pods "{match.group(1)}" not found')
            if method == "GET":
                return 200, self.pod_json(pod)
            return self._delete_pod(pod, body)
        self.unexpected.append(f"{method} {path}")
        return 404, self.status_json(404, "NotFound", "the server could not find the requested resource")

    def _invalid(self, what: str, body: Any) -> tuple[int, dict[str, Any]] | None:
        errors = schema_errors(body) if isinstance(body, dict) else [f"{what}: not a JSON object"]
        if errors:
            self.schema_errors += [f"request {what}: {e}" for e in errors]
            return 422, self.status_json(422, "Invalid", "; ".join(errors)[:500])
        return None

    def _patch_scale(self, content_type: str, body: Any) -> tuple[int, dict[str, Any]]:
        if content_type != "application/merge-patch+json":
            return 415, self.status_json(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                                                                      f"format - accepted media types include: "
                                                                      f"application/merge-patch+json ({content_type})")
        invalid = self._invalid("Scale patch", body)
        if invalid:
            return invalid
        wanted_rv = (body.get("metadata") or {}).get("resourceVersion")
        if self.conflicts > 0 or (wanted_rv is not None and wanted_rv != str(self.resource_version)):
            self.conflicts = max(self.conflicts - 1, 0)
            self.bump()  # someone else's change
            return 409, self.status_json(409, "Conflict", "Operation cannot be fulfilled on statefulsets.apps "
                                                          f'"{self.statefulset}": the object has been modified; please '
                                                          "apply your changes to the latest version and try again")
        replicas = (body.get("spec") or {}).get("replicas")
        if replicas is not None:
            self.replicas = replicas
            self.bump()
            self._reconcile()
        return 200, self.scale_json()

    def _delete_pod(self, pod: FakePod, body: Any) -> tuple[int, dict[str, Any]]:
        if body is not None:
            invalid = self._invalid("DeleteOptions", body)
            if invalid:
                return invalid
        options = body or {}
        wanted_uid = (options.get("preconditions") or {}).get("uid")
        if wanted_uid is not None and wanted_uid != pod.uid:
            return 409, self.status_json(409, "Conflict", f"Precondition failed: UID in precondition: {wanted_uid}, "
                                                          f"UID in object meta: {pod.uid}")
        grace = options.get("gracePeriodSeconds", 30)
        self.bump()
        if grace == 0:  # immediate: the object goes now (the kubelet kills the container afterwards)
            answer = self.pod_json(pod)
            self.pods.pop(pod.name)
            self._reconcile()
            return 200, answer
        if pod.deleting is None:
            pod.deleting, pod.grace = _now(), grace
        return 200, self.pod_json(pod)


def _handler(kube: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code, obj = kube.handle(self.command, self.path, self.headers, raw)
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_DELETE = do_PUT = do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA, like a cluster's ca.crt for the test)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "apiserver.crt", folder / "apiserver.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


# ------------------------------------------------------------------------------------------------
# Kubelets
# ------------------------------------------------------------------------------------------------


class ManualKubelet:
    """Pods move only when the test says so (``kube.run``, ``kube.crash``, ``kube.finish_deletion``...)."""


class AutoKubelet:
    """At every request: new pods run and are ready, gracefully deleted pods are gone (one request later)."""

    def on_request(self, kube: FakeKube) -> None:
        for name, pod in list(kube.pods.items()):
            if pod.deleting is not None:
                kube.finish_deletion(name)
        for name, pod in list(kube.pods.items()):
            if pod.phase == "Pending":
                kube.run(name)


class ProcessKubelet:
    """Each pod's container is a real nats-server (the local driver runs it), on the pod's config from
    ``specs`` (what the chart's ConfigMap would hold). It restarts a container that ends (restartPolicy
    Always), marks pods ready by nats-server's /healthz, and stops a deleted pod's server (SIGTERM; SIGKILL
    for gracePeriodSeconds=0). It works from its own long-lived thread: the local driver's children die with
    the thread that started them."""

    def __init__(self, driver: Any, specs: dict[str, Any], *, interval: float = 0.05) -> None:
        self.local, self.specs, self.interval = driver, specs, interval
        self.uids: dict[str, str] = {}  # pod name -> uid whose container runs now
        self.errors: list[str] = []
        self._stop = threading.Event()

    def start(self, kube: FakeKube) -> None:
        self.kube = kube
        self._thread = threading.Thread(target=self._loop, name="fake-kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.local.close(2.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as exc:  # the test asserts there were none
                self.errors.append(repr(exc))
            self._stop.wait(self.interval)

    def sync(self) -> None:
        kube = self.kube
        with kube.lock:
            pods = {name: (pod.uid, pod.deleting, pod.grace) for name, pod in kube.pods.items()}
        for name, uid in list(self.uids.items()):  # force-deleted or replaced pods: kill their containers
            if pods.get(name, (None,))[0] != uid:
                self.local.kill(name)
                del self.uids[name]
        for name, (uid, deleting, grace) in pods.items():
            if deleting is not None:
                if name in self.uids and self.local.status(name).running:
                    self.local.stop(name, graceful=False)  # SIGTERM (the chart's preStop would lame-duck first)
                    continue
                self.uids.pop(name, None)
                kube.finish_deletion(name)
                continue
            if name not in self.uids:
                self.local.start(self.specs[name])
                self.uids[name] = uid
                kube.run(name, ready=False)
                continue
            status = self.local.status(name)
            if not status.running:
                code = status.exit_code if status.exit_code is None or status.exit_code >= 0 else 128 - status.exit_code
                kube.crash(name, exit_code=code if code is not None else 1, message=status.error)
                self.local.start(self.specs[name])
                kube.restart(name, ready=False)
                continue
            ready = self.local.probe(self.specs[name]).healthy
            if ready != kube.pods[name].ready:
                kube.set_ready(name, ready)

    def pid(self, name: str) -> int:
        return self.local._instances[name].proc.pid
