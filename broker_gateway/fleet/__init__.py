"""The broker fleet: a driver interface, the local process driver, and the supervisor."""

from __future__ import annotations

from django.conf import settings

from broker_gateway.fleet.driver import FleetDriver


def driver_get() -> FleetDriver:
    """The fleet driver chosen by the FLEET_DRIVER setting (``local`` is the only one so far)."""
    if settings.FLEET_DRIVER == "local":
        from broker_gateway.fleet.local import LocalProcessDriver

        return LocalProcessDriver(settings.FLEET_DIR, binary=settings.NATS_SERVER_BIN)
    raise ValueError(f"unknown FLEET_DRIVER {settings.FLEET_DRIVER!r} (known: local)")
