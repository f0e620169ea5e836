"""REST API v1 of the fleet: an account's propagation status (tenants) and the node list (staff)."""

from __future__ import annotations

from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service.models import Account
from broker_gateway.selectors import account_propagation, fleet_overview
from operators.errors import NotFound


def _account_for_user_get(*, user, public_key: str) -> Account:
    # Tenant scoping goes through for_user only: another team's account and an unknown key give the
    # same 404, so the API never confirms that a key exists elsewhere.
    account = Account.objects.for_user(user).filter(public_key=public_key).first()
    if account is None:
        raise NotFound(f"no account {public_key}", extra={"account": public_key})
    return account


class AccountStatusApi(APIView):
    """``GET /api/v1/accounts/{account_pk}/status``: the desired JWT against what each running node holds."""

    def get(self, request: Request, account_pk: str) -> Response:
        account = _account_for_user_get(user=request.user, public_key=account_pk)
        # account_propagation already returns JSON-ready primitives; no OutputSerializer needed.
        return Response(account_propagation(account=account))


class FleetNodeListApi(APIView):
    """``GET /api/v1/fleet/nodes/`` (staff): every node with its health, versions and accounts in sync."""

    permission_classes = [permissions.IsAdminUser]
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    def get(self, request: Request) -> Response:
        rows = fleet_overview()
        if self.pagination_class is None:
            return Response(rows)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(page)
