"""Staff web pages of the fleet."""

from __future__ import annotations

import redis
from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from broker_gateway.models import BrokerNode
from broker_gateway.selectors import accounts_out_of_sync, accounts_propagation, fleet_overview, healthy_nodes

# The supervisor confirms health every 5 s, so refreshing faster shows nothing new.
REFRESH_SECONDS = 5


@staff_member_required
def fleet_nodes(request: HttpRequest) -> HttpResponse:
    """Every node with its state, and the accounts some healthy node does not hold at their latest version."""
    accounts, behind_total = accounts_out_of_sync()
    behind = [{"account": a, "status": s} for a, s in zip(accounts, accounts_propagation(accounts=accounts),
                                                             strict=True)]
    response = render(request, "fleet/nodes.html", {"nodes": fleet_overview(), "behind": behind,
                                                    "behind_total": behind_total,
                                                    "refresh_seconds": REFRESH_SECONDS})
    # The Refresh header reloads the page without a <meta> in base.html's <head>; browsers treat it like
    # <meta http-equiv="refresh">: https://html.spec.whatwg.org/multipage/document-lifecycle.html#the-refresh-header
    response["Refresh"] = str(REFRESH_SECONDS)
    return response


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers, Redis (the Celery broker) answers, and at least one node is healthy."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the message says which
        checks["database"] = f"error: {exc}"
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    try:
        running = BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).count()
        healthy = len(healthy_nodes())
        checks["fleet"] = f"{healthy}/{running} nodes healthy" if healthy else f"error: 0/{running} nodes healthy"
    except Exception as exc:
        checks["fleet"] = f"error: {exc}"
    ready = all(not v.startswith("error") for v in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
