"""Staff web pages of the fleet."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from broker_gateway.selectors import account_propagation, accounts_out_of_sync, fleet_overview

# The supervisor confirms health every 5 s, so refreshing faster shows nothing new.
REFRESH_SECONDS = 5


@staff_member_required
def fleet_nodes(request: HttpRequest) -> HttpResponse:
    """Every node with its state, and the accounts some healthy node does not hold at their latest version."""
    behind = [{"account": a, "status": account_propagation(account=a)} for a in accounts_out_of_sync()]
    response = render(request, "fleet/nodes.html", {"nodes": fleet_overview(), "behind": behind,
                                                    "refresh_seconds": REFRESH_SECONDS})
    # The Refresh header reloads the page without a <meta> in base.html's <head>; browsers treat it like
    # <meta http-equiv="refresh">: https://html.spec.whatwg.org/multipage/document-lifecycle.html#the-refresh-header
    response["Refresh"] = str(REFRESH_SECONDS)
    return response
