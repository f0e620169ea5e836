"""The Kubernetes driver for a fleet of several regions: one StatefulSet each (the chart's ``nats.regions``), in one
namespace. Each call goes to the single-StatefulSet driver (kubernetes.py) whose StatefulSet the node is a pod of."""

from __future__ import annotations

import re
from dataclasses import dataclass

from broker_gateway.fleet.driver import DataDirs, Health, NodeSpec, NodeStatus
from broker_gateway.fleet.kube_api import KubernetesError
from broker_gateway.fleet.kubernetes import DiscoveredNode, KubernetesDriver
from broker_gateway.topology import region_check
from core.errors import ErrorKind


def statefulsets_parse(text: str) -> list[tuple[str, str]]:
    """``K8S_STATEFULSETS``, ``"us-east=natsctl-nats-us-east,eu-west=natsctl-nats-eu-west"``, as
    ``[(region, statefulset), ...]`` in the order given. Empty: ``[]`` (one StatefulSet, ``K8S_STATEFULSET``)."""
    out: list[tuple[str, str]] = []
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        region, sep, statefulset = (x.strip() for x in part.partition("="))
        if not sep or not statefulset:
            raise ValueError(f"K8S_STATEFULSETS part {part!r} is not REGION=STATEFULSET")
        region_check(region)
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", statefulset):
            raise ValueError(f"K8S_STATEFULSETS: {statefulset!r} is not a StatefulSet name")
        if any(r == region for r, _ in out) or any(s == statefulset for _, s in out):
            raise ValueError(f"K8S_STATEFULSETS names region {region} or StatefulSet {statefulset} twice")
        out.append((region, statefulset))
    return out


@dataclass
class RegionalKubernetesDriver:
    """Nodes as the pods of several StatefulSets, one per region, in one namespace. Each call goes to the driver
    whose StatefulSet the node name is a pod of (``<statefulset>-<ordinal>``: pods of two StatefulSets never
    share a name, since an ordinal is digits only); a name that is none of theirs is refused as by one driver."""

    drivers: dict[str, KubernetesDriver]  # by region, in the order given

    def __post_init__(self) -> None:
        if not self.drivers:
            raise ValueError("RegionalKubernetesDriver needs at least one region")
        for region, driver in self.drivers.items():
            driver.region = region

    @classmethod
    def from_settings(cls, statefulsets: list[tuple[str, str]]) -> RegionalKubernetesDriver:
        first = KubernetesDriver.from_settings(statefulset=statefulsets[0][1], region=statefulsets[0][0])
        drivers = {statefulsets[0][0]: first}
        for region, statefulset in statefulsets[1:]:
            drivers[region] = KubernetesDriver.from_settings(statefulset=statefulset, region=region, api=first.api)
        return cls(drivers)

    @property
    def namespace(self) -> str:
        return self._first.namespace

    @property
    def _first(self) -> KubernetesDriver:
        return next(iter(self.drivers.values()))

    def driver_for(self, name: str) -> KubernetesDriver | None:
        return next((d for d in self.drivers.values() if d.ordinal(name) is not None), None)

    def region_of(self, name: str) -> str | None:
        driver = self.driver_for(name)
        return driver.region if driver is not None else None

    def _or_first(self, name: str) -> KubernetesDriver:
        # A name no StatefulSet has: the first driver answers (it refuses, or does nothing, as for a lone one).
        return self.driver_for(name) or self._first

    def data_dirs(self, name: str) -> DataDirs:
        return self._or_first(name).data_dirs(name)

    def check_config(self, spec: NodeSpec) -> str | None:
        driver = self.driver_for(spec.name)
        if driver is None:
            names = ", ".join(f"{d.statefulset}-<ordinal> ({r})" for r, d in self.drivers.items())
            return (f"node {spec.name} is not a pod of any region's StatefulSet: the kubernetes driver runs nodes "
                    f"named {names} (remove it; running pods are discovered)")
        return driver.check_config(spec)

    def prime(self, name: str, jwts: dict[str, str]) -> bool:
        """Nothing, as for one StatefulSet."""
        return False

    def start(self, spec: NodeSpec) -> NodeStatus:
        driver = self.driver_for(spec.name)
        if driver is None:
            raise KubernetesError(f"node {spec.name} is not a pod of any region's StatefulSet "
                                  f"({', '.join(d.statefulset for d in self.drivers.values())})",
                                  kind=ErrorKind.INVALID)
        return driver.start(spec)

    def status(self, name: str) -> NodeStatus:
        return self._or_first(name).status(name)

    def probe(self, spec: NodeSpec) -> Health:
        return self._or_first(spec.name).probe(spec)

    def stop(self, name: str, *, graceful: bool) -> None:
        self._or_first(name).stop(name, graceful=graceful)

    def kill(self, name: str) -> None:
        self._or_first(name).kill(name)

    def forget(self, name: str) -> None:
        self._or_first(name).forget(name)

    def close(self, grace: float) -> None:
        for driver in self.drivers.values():
            driver.close(grace)

    def discover(self) -> list[DiscoveredNode]:
        """Every region's pods, region by region in the order given, each with its region."""
        return [node for driver in self.drivers.values() for node in driver.discover()]


def driver_from_settings() -> KubernetesDriver | RegionalKubernetesDriver:
    """``K8S_STATEFULSETS`` set: one StatefulSet per region; else the one ``K8S_STATEFULSET``."""
    from django.conf import settings

    statefulsets = statefulsets_parse(getattr(settings, "K8S_STATEFULSETS", ""))
    if statefulsets:
        return RegionalKubernetesDriver.from_settings(statefulsets)
    return KubernetesDriver.from_settings()
