"""The control plane's system-account connection to the fleet: its NATS user, and this process's gateway."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from accounts_service.models import NatsUser
from accounts_service.services import account_home_region_set, service_user_ensure, system_account_ensure
from broker_gateway.gateway import Gateway, GatewayUnavailable
from broker_gateway.nodes import regions_list
from broker_gateway.selectors import healthy_nodes, running_node_urls
from core.errors import NotFound
from core.regions import REGION_PATTERN
from operators import services as op_services

CONTROL_PLANE_USER = "control-plane"
# The control plane's own system-account user may only talk on the claims subjects it needs.
# ROUTEZ and GATEWAYZ (read only): how many servers a claims request sent to one given server will be answered by.
CONTROL_PLANE_PUB = ["$SYS.REQ.CLAIMS.>", "$SYS.REQ.ACCOUNT.*.CLAIMS.>", "$SYS.REQ.SERVER.*.ROUTEZ",
                     "$SYS.REQ.SERVER.*.GATEWAYZ"]
CONTROL_PLANE_SUB = ["_INBOX.>"]


# ------------------------------------------------------------------------------------------------
# The control plane's system-account connection
# ------------------------------------------------------------------------------------------------


def control_plane_user_ensure() -> NatsUser:
    """The system-account user the control plane connects as to push and look up JWTs."""
    return service_user_ensure(account=system_account_ensure(), name=CONTROL_PLANE_USER, pub_allow=CONTROL_PLANE_PUB,
                               sub_allow=CONTROL_PLANE_SUB)


def gateway_open(urls: Sequence[str], *, name: str = "natsctl-gateway") -> Gateway:
    """A new system-account connection to ``urls`` (the caller closes it)."""
    user = control_plane_user_ensure()
    return Gateway(urls, user_jwt=user.jwt, sign_nonce=op_services.nonce_signer_get(user_seed=user.seed), name=name)


_gateway: Gateway | None = None
_gateway_lock = threading.Lock()


def gateway_get() -> Gateway:
    """This process's long-lived connection to the fleet (opened on first use, reopened if it closed).

    nats-py learns the other cluster members from the server it connects to and reconnects on its
    own; a connection that gave up, or that is reconnecting with none of the nodes healthy now among the
    servers it knows (another region's), is replaced with one to the nodes the database lists now.
    """
    global _gateway
    with _gateway_lock:
        healthy = None
        if _gateway is not None and _gateway.is_usable:
            if _gateway.is_connected:
                return _gateway
            # Reconnecting. nats-py only ever learns the client URLs of the cluster it reached, so a connection
            # opened while one region alone was healthy retries that region forever once all of it is down
            # (a whole region killed): replace it when no node healthy now is among the servers it knows.
            healthy = [n.client_url for n in healthy_nodes()]
            if not healthy or _gateway.knows_any(healthy):
                return _gateway
        if _gateway is not None:
            _gateway.close()
            _gateway = None
        urls = (healthy if healthy is not None else [n.client_url for n in healthy_nodes()]) or running_node_urls()
        if not urls:
            raise GatewayUnavailable("the fleet has no running node")
        _gateway = gateway_open(urls)
        return _gateway


def gateway_reset() -> None:
    """Close this process's connection (tests, and after a fork)."""
    global _gateway
    with _gateway_lock:
        if _gateway is not None:
            _gateway.close()
        _gateway = None


# ------------------------------------------------------------------------------------------------
# Tenants' home region
# ------------------------------------------------------------------------------------------------


def home_region_set(*, account, actor, region: str):
    """Pick the account's home region (one of the fleet's regions; ``""``: automatic). The connect list puts it
    first."""
    if region and isinstance(region, str) and REGION_PATTERN.fullmatch(region) and region not in regions_list():
        raise NotFound(f"no region {region} (regions: {', '.join(regions_list()) or 'none'})",
                       code="region_not_found", extra={"field": "region"})
    return account_home_region_set(account=account, actor=actor, region=region)
