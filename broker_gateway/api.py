"""REST API v1 of the fleet: an account's propagation status (tenants) and the node list (staff)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service.api.base import AccountScopedApi
from accounts_service.api.utils import paginated, paginated_response
from broker_gateway.selectors import account_propagation, client_urls_public, fleet_overview


class _NodeHeldSerializer(serializers.Serializer):
    node = serializers.CharField()
    state = serializers.CharField()
    healthy = serializers.BooleanField()
    held_jti = serializers.CharField(allow_null=True)
    held_iat = serializers.IntegerField(allow_null=True)
    held_at = serializers.DateTimeField(allow_null=True)
    in_sync = serializers.BooleanField()


class _DesiredSerializer(serializers.Serializer):
    jti = serializers.CharField()
    iat = serializers.IntegerField()
    version = serializers.IntegerField()


class _GatewayLinkSerializer(serializers.Serializer):
    region = serializers.CharField()
    state = serializers.ChoiceField(choices=["up", "down", "unknown"])
    url = serializers.CharField(allow_blank=True)
    rtt = serializers.CharField(allow_blank=True)
    inbound = serializers.IntegerField(help_text="inbound gateway connections from that region's servers")


class AccountStatusApi(AccountScopedApi):
    """``GET /api/v1/accounts/{account_pk}/status``: the desired JWT against what each running node holds."""

    class OutputSerializer(serializers.Serializer):
        account = serializers.CharField()
        desired = _DesiredSerializer()
        nodes = _NodeHeldSerializer(many=True)
        live_on = serializers.IntegerField()
        healthy_nodes = serializers.IntegerField()
        in_sync = serializers.BooleanField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, account_pk: str) -> Response:
        account = self.account
        # account_propagation already returns JSON-ready primitives; no OutputSerializer needed.
        return Response(account_propagation(account=account))


class FleetNodeListApi(APIView):
    """``GET /api/v1/fleet/nodes/`` (staff): every node with its health, versions and accounts in sync."""

    permission_classes = [permissions.IsAdminUser]
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    class OutputSerializer(serializers.Serializer):
        name = serializers.CharField()
        region = serializers.CharField()
        desired_state = serializers.CharField()
        state = serializers.CharField()
        pid = serializers.IntegerField(allow_null=True)
        client_url = serializers.CharField()
        monitoring_url = serializers.CharField()
        cluster_url = serializers.CharField()
        gateway_url = serializers.CharField()
        leafnode_port = serializers.IntegerField()
        server_id = serializers.CharField(allow_blank=True)
        version = serializers.CharField(allow_blank=True)
        restarts = serializers.IntegerField()
        consecutive_failures = serializers.IntegerField()
        last_error = serializers.CharField(allow_blank=True)
        last_healthy_at = serializers.DateTimeField(allow_null=True)
        synced_at = serializers.DateTimeField(allow_null=True)
        accounts_in_sync = serializers.IntegerField()
        accounts_total = serializers.IntegerField()
        connections = serializers.IntegerField(allow_null=True, help_text="current client connections, from the "
                                               "node's /varz; null when it did not answer within 0.5 s")
        gateways = _GatewayLinkSerializer(many=True, help_text="the node's link to each other region, from its "
                                          "/gatewayz")

    @extend_schema(operation_id="v1_fleet_nodes_list", responses=paginated(OutputSerializer, "PaginatedNodeList"),
                   parameters=[OpenApiParameter("limit", int, required=False),
                               OpenApiParameter("offset", int, required=False)])
    def get(self, request: Request) -> Response:
        return paginated_response(queryset=fleet_overview(connections=True, gateways=True),
                                  serializer_class=self.OutputSerializer, request=request, view=self)


class ConnectApi(APIView):
    """``GET /api/v1/connect``: every running node's client URL (a client given all of them fails over)."""

    class OutputSerializer(serializers.Serializer):
        servers = serializers.ListField(child=serializers.CharField())

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer({"servers": client_urls_public()}).data)
