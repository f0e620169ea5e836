"""Just enough of the Kubernetes REST API for the fleet driver: where the API server is, JSON requests over urllib
with the service account's bearer token and the cluster CA, and reading the pod objects it returns.

No client library: in-cluster config from the service account
(https://kubernetes.io/docs/tasks/run-application/access-api-from-pod/), or settings K8S_*.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ErrorKind, Unavailable

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
MERGE_PATCH = "application/merge-patch+json"


class KubernetesError(Unavailable):
    """The API server could not be reached or refused a request, or the StatefulSet cannot do what was asked."""


class KubernetesApiError(KubernetesError):
    """The API server answered with an error status (its ``Status`` object's reason and message kept)."""

    def __init__(self, method: str, path: str, code: int, status: dict[str, Any]) -> None:
        self.http_status = code
        self.reason = status.get("reason", "") if isinstance(status, dict) else ""
        message = status.get("message", "") if isinstance(status, dict) else ""
        super().__init__(f"kubernetes API {method} {path}: {code} {self.reason} {message}".rstrip(),
                         extra={"code": code, "reason": self.reason},
                         code="kubernetes_conflict" if code == 409 else "kubernetes_unavailable",
                         kind=ErrorKind.CONFLICT if code == 409 else None)


# ------------------------------------------------------------------------------------------------
# The API server
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiConfig:
    """Where the API server is and how to authenticate to it."""

    url: str
    namespace: str
    token_file: str = ""
    ca_file: str = ""
    timeout: float = 5.0

    @classmethod
    def resolve(cls, *, url: str = "", namespace: str = "", token_file: str = "", ca_file: str = "",
                timeout: float = 5.0, environ: Mapping[str, str] = os.environ,
                sa_dir: Path = SERVICE_ACCOUNT_DIR) -> ApiConfig:
        """Explicit values first; else the pod's own: KUBERNETES_SERVICE_HOST/PORT and the service account's
        token, CA and namespace files."""
        if not url:
            host = environ.get("KUBERNETES_SERVICE_HOST", "")
            if not host:
                raise KubernetesError("FLEET_DRIVER=kubernetes outside a pod (no KUBERNETES_SERVICE_HOST): set "
                                      "K8S_API_URL (and K8S_TOKEN_FILE, K8S_NAMESPACE)")
            host = f"[{host}]" if ":" in host else host
            url = f"https://{host}:{environ.get('KUBERNETES_SERVICE_PORT', '443')}"
        sa_dir = Path(sa_dir)
        if not token_file and (sa_dir / "token").exists():
            token_file = str(sa_dir / "token")
        if not ca_file and (sa_dir / "ca.crt").exists():
            ca_file = str(sa_dir / "ca.crt")
        if not namespace:
            with contextlib.suppress(OSError):
                namespace = (sa_dir / "namespace").read_text().strip()
        if not namespace:
            raise KubernetesError("no Kubernetes namespace: set K8S_NAMESPACE (no service account namespace file)")
        return cls(url=url.rstrip("/"), namespace=namespace, token_file=token_file, ca_file=ca_file, timeout=timeout)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw[:200].decode("utf-8", "replace")}


class KubeClient:
    """Just enough of the Kubernetes REST API: JSON requests over urllib, bearer token, cluster CA."""

    def __init__(self, config: ApiConfig) -> None:
        self.config = config
        # No environment proxy: the API server is a cluster address (client-go would honour HTTPS_PROXY, but
        # a control plane pod with an egress proxy must not send its service account token through it).
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
        if config.url.startswith("https:"):
            context = ssl.create_default_context(cafile=config.ca_file or None)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def _token(self) -> str:
        # Read at every request: bound service account tokens are rotated by the kubelet.
        if not self.config.token_file:
            return ""
        try:
            return Path(self.config.token_file).read_text().strip()
        except OSError as exc:
            raise KubernetesError(f"cannot read the Kubernetes token {self.config.token_file}: {exc}") from exc

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None,
                content_type: str = "application/json") -> dict[str, Any]:
        url = self.config.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 (http/https)
        try:
            with self._opener.open(request, timeout=self.config.timeout) as response:
                return _json(response.read())
        except urllib.error.HTTPError as exc:
            raise KubernetesApiError(method, path, exc.code, _json(exc.read())) from None
        except (OSError, ValueError) as exc:  # refused, timed out, TLS, DNS
            raise KubernetesError(f"kubernetes API {method} {path}: {exc}") from exc


def label_selector(selector: dict[str, Any]) -> str:
    """A LabelSelector object as the ``labelSelector`` query string
    (https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors)."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], ",".join(expr.get("values") or [])
        parts.append({"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                      "DoesNotExist": f"!{key}"}[op])
    if not parts:
        raise KubernetesError("the StatefulSet has an empty selector")
    return ",".join(parts)


# ------------------------------------------------------------------------------------------------
# Reading pods
# ------------------------------------------------------------------------------------------------


def pod_terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def pod_uid(pod: dict[str, Any]) -> str:
    return pod["metadata"]["uid"]


def pod_condition(pod: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in pod.get("status", {}).get("conditions") or [] if c.get("type") == kind), {})


def pod_ready(pod: dict[str, Any]) -> bool:
    return pod_condition(pod, "Ready").get("status") == "True"


def termination_words(terminated: dict[str, Any] | None) -> str:
    """A container termination (ContainerStateTerminated) as the supervisor's ``error``: status, signal,
    reason, then the termination message (the log tail, with terminationMessagePolicy FallbackToLogsOnError)."""
    if not terminated:
        return ""
    code = terminated.get("exitCode")
    words = f"exited with status {code}"
    if isinstance(code, int) and 128 < code < 128 + 65:
        with contextlib.suppress(ValueError):
            words += f" (killed by {signal.Signals(code - 128).name})"
    if terminated.get("reason"):
        words += f": {terminated['reason']}"
    if terminated.get("message"):
        words += "\n" + terminated["message"].strip()
    return words[-2000:]
