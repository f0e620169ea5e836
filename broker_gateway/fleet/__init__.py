"""The broker fleet: a driver interface, the local process and Kubernetes drivers, and the supervisor."""

from __future__ import annotations

from django.conf import settings

from broker_gateway.fleet.driver import FleetDriver

DRIVERS = ("kubernetes", "local")


def driver_get() -> FleetDriver:
    """The fleet driver chosen by the FLEET_DRIVER setting: ``local`` (the default: nats-server processes of
    this machine) or ``kubernetes`` (the pods of the chart's NATS StatefulSet, or one per region, settings K8S_*)."""
    if settings.FLEET_DRIVER == "local":
        from broker_gateway.fleet.local import LocalProcessDriver

        return LocalProcessDriver(settings.FLEET_DIR, binary=settings.NATS_SERVER_BIN)
    if settings.FLEET_DRIVER == "kubernetes":
        from broker_gateway.fleet.kubernetes_regions import driver_from_settings

        return driver_from_settings()
    raise ValueError(f"unknown FLEET_DRIVER {settings.FLEET_DRIVER!r} (known: {', '.join(DRIVERS)})")
