"""REST API v1 of the fleet: an account's propagation status and a user's leafnode config (tenants), the node list
(staff)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service.api.base import AccountScopedApi
from accounts_service.api.utils import (
    TEXT_RENDERERS,
    AcceptHeaderNegotiation,
    ServiceTransactionsMixin,
    StrictCharField,
    StrictInputSerializer,
    paginated,
    paginated_response,
    plain_text_response,
)
from accounts_service.selectors import account_for_user_get, user_get
from broker_gateway.connection_test import user_connection_test
from broker_gateway.diagnose import MAX_CREDS_BYTES, user_diagnose
from broker_gateway.leafconf import DEFAULT_LOCAL_PORT
from broker_gateway.leafnodes import LEAF_CONFIG_FILENAME, port_check, user_leafnode_config
from broker_gateway.selectors import account_propagation, connect_plan, fleet_overview
from broker_gateway.services import home_region_set


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


class UserLeafnodeApi(ServiceTransactionsMixin, AccountScopedApi):
    """``GET .../users/{user_pk}/leafnode?port=4222``: a nats-server config that joins the fleet as a leafnode
    with this user's creds, which it references as ``<user>.creds`` beside it (download those from ``.../creds``).
    Audited and never cached, like the creds."""

    renderer_classes = TEXT_RENDERERS
    content_negotiation_class = AcceptHeaderNegotiation
    account_fields = ("public_key", "leaf")

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR}, parameters=[
        OpenApiParameter("port", {"type": "integer", "minimum": 1, "maximum": 65535}, required=False,
                         description=f"the leaf's local client port, 1..65535 (default {DEFAULT_LOCAL_PORT})"),
    ])
    def get(self, request: Request, account_pk: str, user_pk: str) -> HttpResponse:
        user = user_get(account=self.account, public_key=user_pk)
        port = port_check(request.query_params.get("port", DEFAULT_LOCAL_PORT))
        issued = user_leafnode_config(user=user, actor=request.user, port=port)
        # Not a secret itself, but it names who acts as the user: never cached by browsers or proxies.
        return plain_text_response(issued.config, headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{LEAF_CONFIG_FILENAME}"',
        })


class _TestStepSerializer(serializers.Serializer):
    step = serializers.ChoiceField(choices=["connect", "subscribe", "publish", "round_trip", "connection"])
    subject = serializers.CharField(required=False)
    ok = serializers.BooleanField()
    detail = serializers.CharField(help_text="what happened, with the server's own text when it refused")


class UserConnectionTestApi(ServiceTransactionsMixin, AccountScopedApi):
    """``POST .../users/{user_pk}/test``: connect as the user from the control plane to the account's connect list
    (closest region first), subscribe and publish the connect examples' subjects (a round trip when it may do
    both), and say what the servers answered. Users whose seed we never saw are refused (409
    ``connection_test_seed_unknown``). Audited as ``user.connection_test``."""

    class OutputSerializer(serializers.Serializer):
        ok = serializers.BooleanField()
        connected = serializers.BooleanField()
        server = serializers.CharField(allow_null=True)
        server_name = serializers.CharField(allow_null=True)
        region = serializers.CharField(allow_null=True)
        rtt_ms = serializers.FloatField(allow_null=True)
        steps = _TestStepSerializer(many=True)
        error = serializers.CharField(allow_null=True, help_text="the first refusal, as the server worded it")
        subjects = serializers.DictField(child=serializers.CharField(allow_null=True))

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request: Request, account_pk: str, user_pk: str) -> Response:
        user = user_get(account=self.account, public_key=user_pk)
        return Response(self.OutputSerializer(user_connection_test(user=user, actor=request.user)).data)


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


class _RegionUrlsSerializer(serializers.Serializer):
    name = serializers.CharField()
    servers = serializers.ListField(child=serializers.CharField())


class ConnectApi(APIView):
    """``GET /api/v1/connect``: the URLs a client is given, the closest region's first, then the other regions'
    (a client given all of them connects to the first that answers and fails over to the rest), and each region's
    URLs by name.

    The closest region is ``?region=`` when given, else (with ``?account=`` naming one of the caller's accounts)
    the account's home region, else the region where the account has most connections now (as the metering ledger
    sees them), else the fleet's first region. ``chosen_by`` says which."""

    class OutputSerializer(serializers.Serializer):
        servers = serializers.ListField(child=serializers.CharField())
        region = serializers.CharField(allow_null=True, help_text="the region whose URLs come first")
        chosen_by = serializers.ChoiceField(choices=["query", "home_region", "connections", "default"])
        home_region = serializers.CharField(allow_blank=True, help_text="the account's home region ('' if none)")
        regions = _RegionUrlsSerializer(many=True, help_text="every running region's URLs, closest first")

    @extend_schema(responses=OutputSerializer, parameters=[
        OpenApiParameter("account", str, required=False, description="one of your accounts (public key)"),
        OpenApiParameter("region", str, required=False, description="put this region first"),
    ])
    def get(self, request: Request) -> Response:
        account = None
        if request.query_params.get("account"):
            account = account_for_user_get(user=request.user, public_key=request.query_params["account"])
        plan = connect_plan(account=account, region=request.query_params.get("region") or None)
        return Response(self.OutputSerializer(plan).data)


class AccountHomeRegionApi(AccountScopedApi):
    """``PUT /api/v1/accounts/{account_pk}/home-region``: the region the account's clients are sent to first
    (``{"region": ""}``: automatic, from where its connections are). Any member; audit-logged."""

    class InputSerializer(serializers.Serializer):
        region = serializers.RegexField(
            regex=r"^([a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?)?$", allow_blank=True, max_length=32,
            help_text="one of the fleet's regions; '' for automatic",
            error_messages={"invalid": "not a region name: 1-32 lowercase letters, digits or '-', starting and "
                                       "ending with a letter or digit (e.g. us-east)"})

    class OutputSerializer(serializers.Serializer):
        account = serializers.CharField()
        home_region = serializers.CharField(allow_blank=True)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def put(self, request: Request, account_pk: str) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        account = home_region_set(account=self.account, actor=request.user, region=data.validated_data["region"])
        return Response(self.OutputSerializer({"account": account.public_key,
                                               "home_region": account.home_region}).data)


class _CheckSerializer(serializers.Serializer):
    check = serializers.CharField(help_text="what was checked: creds, user_jwt, seed_pair, issuer, issuer_account, "
                                            "user_expiry, account_expiry, bearer, connection_type, revocation, "
                                            "src_times, suspension, conn_limit, leaf_limit, nodes, permission")
    ok = serializers.BooleanField()
    severity = serializers.ChoiceField(choices=["blocking", "warning", "info"])
    message = serializers.CharField(help_text="plain language, with what to do next")
    detail = serializers.DictField()


class _VerdictSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="false: the servers refuse this connection")
    cause = serializers.CharField(allow_null=True, help_text="the first blocking check (or the first warning)")
    message = serializers.CharField()


class DiagnoseApi(APIView):
    """``POST /api/v1/diagnose``: "why can't my client connect?". Every check the servers make on the connection of
    a user, given its ``.creds`` text or an ``account`` and ``user`` of your teams, and optionally whether it may
    ``pub`` or ``sub`` a ``subject`` with the rule that decides. Creds of another team's user get the same 404 as
    unknown ones. The seed is read to check that it pairs with the JWT and is never stored, logged or returned."""

    class InputSerializer(StrictInputSerializer):
        creds = StrictCharField(required=False, max_length=MAX_CREDS_BYTES,
                                help_text=f"the .creds text (at most {MAX_CREDS_BYTES} bytes)")
        account = StrictCharField(required=False, max_length=56, help_text="an account's public key (with user)")
        user = StrictCharField(required=False, max_length=56, help_text="a user's public key (with account)")
        subject = StrictCharField(required=False, max_length=512, help_text="a subject to check (with action)")
        action = serializers.ChoiceField(choices=["pub", "sub"], required=False)
        connection_type = serializers.ChoiceField(choices=["STANDARD", "WEBSOCKET", "LEAFNODE", "MQTT"],
                                                  required=False, default="STANDARD")

    class OutputSerializer(serializers.Serializer):
        account = serializers.CharField(allow_null=True)
        account_name = serializers.CharField(allow_null=True)
        user = serializers.CharField(allow_null=True)
        user_name = serializers.CharField(allow_null=True)
        verdict = _VerdictSerializer()
        checks = _CheckSerializer(many=True, help_text="blocking failures first, then warnings, then what passed")

    @extend_schema(operation_id="v1_diagnose", request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        result = user_diagnose(actor=request.user, creds=v.get("creds"), account=v.get("account"),
                               user=v.get("user"), subject=v.get("subject"), action=v.get("action"),
                               connection_type=v["connection_type"])
        return Response(self.OutputSerializer(result).data, headers={"Cache-Control": "no-store"})
