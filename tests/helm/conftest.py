"""The Helm chart (helm/natsctl), rendered and linted by a real Helm engine (Helm v4 embedded in the
helm-python-sdk wheel: offline, no cluster, no helm binary) and validated against the Kubernetes schemas
(kubernetes-validate). Without those dev dependencies these tests are skipped, loudly."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

helm = pytest.importorskip(
    "helm_python",
    reason="HELM CHART NOT TESTED: the helm-python-sdk wheel (Helm v4 engine) is not installed; "
    "install the dev dependencies (pip install -e '.[dev]')",
)
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate",
    reason="HELM CHART NOT TESTED: kubernetes-validate is not installed; install the dev dependencies",
)
yaml = pytest.importorskip("yaml", reason="HELM CHART NOT TESTED: PyYAML (a kubernetes-validate dependency) is missing")

from operators import claims, nkeys  # noqa: E402
from operators.nkeys import KeyType  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "natsctl"
PRODUCTION_VALUES = ROOT / "helm" / "examples" / "production-values.yaml"
RELEASE = "natsctl"
NAMESPACE = "natsctl-prod"
# An nkey seed: "S", its type letter, 56 base32 characters (checked by decoding, not by the pattern alone).
SEED_RE = re.compile(r"S[OACUN][A-Z2-7]{56}")


def seeds_in(text: str) -> list[str]:
    found = []
    for m in re.finditer(r"(?=(S[OACUN][A-Z2-7]{56}))", text):
        try:
            nkeys.from_seed(m.group(1))
        except nkeys.NKeyError:
            continue
        found.append(m.group(1))
    return found


# ------------------------------------------------------------------------------------------------
# The operator's public material, as `manage.py config chart-values` writes it
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorMaterial:
    operator: nkeys.KeyPair
    signing_key: nkeys.KeyPair
    system: nkeys.KeyPair
    operator_jwt: str
    system_jwt: str

    @property
    def values(self) -> dict[str, Any]:
        return {"nats": {"operator": {"jwt": self.operator_jwt, "systemAccount": self.system.public_key,
                                      "systemAccountJwt": self.system_jwt}}}


def _operator_material() -> OperatorMaterial:
    op, sk, sys_ = (nkeys.generate(KeyType.OPERATOR), nkeys.generate(KeyType.OPERATOR),
                    nkeys.generate(KeyType.ACCOUNT))
    operator_jwt = claims.encode(
        claims.OPERATOR, subject=op.public_key, name="helm-test-op", signer=op,
        nats=claims.operator_nats(signing_keys=[sk.public_key], system_account=sys_.public_key,
                                  strict_signing_key_usage=True),
    )
    system_jwt = claims.encode(
        claims.ACCOUNT, subject=sys_.public_key, name="SYS", signer=sk,
        nats=claims.account_nats(limits=claims.AccountLimits(), exports=[
            claims.Export("$SYS.REQ.ACCOUNT.*.*", type="service", account_token_position=4)]),
    )
    return OperatorMaterial(op, sk, sys_, operator_jwt, system_jwt)


OPERATOR = _operator_material()


@pytest.fixture(scope="session")
def operator_material() -> OperatorMaterial:
    return OPERATOR


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------


def deep_merge(base: dict, *overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for override in overrides:
        for key, value in override.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def production_values() -> dict[str, Any]:
    return yaml.safe_load(PRODUCTION_VALUES.read_text())


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Rendered:
    """A release as Helm renders it: every manifest by template, and the objects in them."""

    files: dict[str, str]
    release: str = RELEASE

    def __post_init__(self) -> None:
        self._objects = []
        for name, text in sorted(self.files.items()):
            if name.endswith((".yaml", ".yml")):
                self._objects += [d for d in yaml.load_all(text, Loader=_Loader) if d]

    @property
    def notes(self) -> str:
        return self.files.get(f"{CHART.name}/templates/NOTES.txt", "")

    def objects(self) -> list[dict[str, Any]]:
        """Fresh copies: a test may change what it gets."""
        return copy.deepcopy(self._objects)

    def text(self) -> str:
        return "\n".join(self.files.values())

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self._objects if o["kind"] == kind and o["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} found in {self.names()}"
        return copy.deepcopy(found[0])

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for o in self._objects if o["kind"] == kind]

    def names(self) -> list[str]:
        return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in self._objects)

    def nats_conf(self, configmap: str | None = None) -> str:
        """The one region's nats.conf, or the one in ConfigMap ``configmap`` (a region's ``<statefulset>-config``)."""
        if configmap is not None:
            return self.get("ConfigMap", configmap)["data"]["nats.conf"]
        (found,) = [o for o in self._objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith(
            "-nats-config")]
        return found["data"]["nats.conf"]

    def nats_confs(self) -> dict[str, str]:
        """Every region's nats.conf by its StatefulSet's name."""
        return {o["metadata"]["name"].removesuffix("-config"): o["data"]["nats.conf"] for o in self._objects
                if o["kind"] == "ConfigMap" and "nats.conf" in o.get("data", {})}


@pytest.fixture(scope="session")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart):
    def _render(values: dict[str, Any] | None = None, *, namespace: str = NAMESPACE, upgrade: bool = False,
                name: str = RELEASE) -> Rendered:
        return Rendered(chart.render(values or {}, name=name, namespace=namespace, is_install=not upgrade,
                                     is_upgrade=upgrade), release=name)
    return _render


def containers(obj: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(obj)
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "Pod":
        return obj["spec"]
    return obj["spec"]["template"]["spec"]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
