"""Staff web pages of the fleet."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from broker_gateway.selectors import accounts_out_of_sync, accounts_propagation, fleet_overview

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
