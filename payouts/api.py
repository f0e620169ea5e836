"""REST API v1 of payouts: anyone's own payout lines (as a node operator's member, or a publisher team's), and for
staff the whole statements, running one, and the node operators (register, members, nodes)."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service.api.utils import (
    NAME_PATTERN,
    StrictCharField,
    StrictInputSerializer,
    paginated,
    paginated_response,
)
from broker_gateway.models import NodeOperator
from broker_gateway.node_operators import (
    node_operator_assign,
    operator_create,
    operator_get,
    operator_member_add,
    operator_member_remove,
)
from broker_gateway.selectors import node_get
from core.errors import NotFound
from payouts.documents import line_document, statement_csv, statement_document
from payouts.models import PayoutLine, PayoutStatement
from payouts.selectors import lines_for_user, period_parse, statement_get
from payouts.services import payout_run

PERIOD_PATTERN = r"^[0-9]{4}-[0-9]{2}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,39}$"


class LineSerializer(serializers.Serializer):
    class Meta:
        ref_name = "PayoutLine"

    period = serializers.CharField(help_text="YYYY-MM")
    currency = serializers.CharField()
    position = serializers.IntegerField()
    bucket = serializers.ChoiceField(choices=PayoutLine.Bucket.choices)
    payee = serializers.CharField()
    operator = serializers.CharField(allow_null=True, help_text="the node operator's slug (operator lines)")
    team = serializers.IntegerField(allow_null=True, help_text="the publisher team's id (publisher lines)")
    basis_quantity = serializers.IntegerField(help_text="bytes carried, or messages other teams took")
    basis_unit = serializers.ChoiceField(choices=PayoutLine.Unit.choices, allow_blank=True)
    cents = serializers.IntegerField()


class OperatorSerializer(serializers.Serializer):
    class Meta:
        ref_name = "NodeOperator"

    slug = serializers.CharField()
    name = serializers.CharField()
    is_platform = serializers.BooleanField()
    contact_email = serializers.CharField(allow_blank=True)
    nodes = serializers.SerializerMethodField()
    members = serializers.SerializerMethodField()

    def get_nodes(self, operator: NodeOperator) -> list[str]:
        return sorted(operator.nodes.values_list("name", flat=True))

    def get_members(self, operator: NodeOperator) -> list[str]:
        return sorted(operator.members.values_list("username", flat=True))


class PayoutLineListApi(APIView):
    """``GET /api/v1/payouts/``: the lines paying someone you speak for: node operators you are a member of (bytes
    their nodes carried) and your teams (as publishers: messages other teams took through your exports). Nobody
    else's lines, whoever asks."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_payouts_list", responses=paginated(LineSerializer, "PaginatedPayoutLineList"))
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(lines_for_user(request.user).select_related("operator"), request, self)
        return paginator.get_paginated_response([line_document(line) for line in page])


class MyOperatorListApi(APIView):
    """``GET /api/v1/payouts/operators/``: the node operators you are a member of, with their nodes (what the
    Payouts page shows above their lines). Nobody else's."""

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_payouts_operators_list",
                   responses=paginated(OperatorSerializer, "PaginatedMyNodeOperatorList"))
    def get(self, request: Request) -> Response:
        return paginated_response(queryset=NodeOperator.objects.filter(members=request.user).order_by("name")
                                  if request.user.is_authenticated else NodeOperator.objects.none(),
                                  serializer_class=OperatorSerializer, request=request, view=self)


# ------------------------------------------------------------------------------------------------
# Staff: whole statements
# ------------------------------------------------------------------------------------------------


class _Buckets(serializers.Serializer):
    operator = serializers.IntegerField()
    publisher = serializers.IntegerField()
    community = serializers.IntegerField()


class _Basis(serializers.Serializer):
    operator_bytes = serializers.IntegerField()
    publisher_messages = serializers.IntegerField()


class _Collected(serializers.Serializer):
    number = serializers.CharField()
    team = serializers.IntegerField()
    period_start = serializers.CharField()
    paid_at = serializers.CharField(allow_null=True)
    cents = serializers.IntegerField()


class StatementSerializer(serializers.Serializer):
    class Meta:
        ref_name = "PayoutStatement"

    period = serializers.CharField()
    start = serializers.CharField()
    end = serializers.CharField()
    currency = serializers.CharField()
    collected_cents = serializers.IntegerField()
    buckets = _Buckets()
    basis = _Basis()
    publishers_unused = serializers.BooleanField()
    created_at = serializers.CharField()
    created_by = serializers.CharField(allow_blank=True)
    lines = LineSerializer(many=True)
    invoices = _Collected(many=True)


class StatementListApi(APIView):
    """``GET /api/v1/payouts/statements/`` (staff): every statement, newest first. ``POST {"period": "2026-11"}``
    writes a closed period's statement (409 when it is not closed, already paid out, nothing was collected or no
    operator's node carried traffic; nothing is written then)."""

    permission_classes = [permissions.IsAdminUser]
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    class InputSerializer(StrictInputSerializer):
        period = StrictCharField(pattern=PERIOD_PATTERN, help_text="YYYY-MM")

    @extend_schema(operation_id="v1_payout_statements_list",
                   responses=paginated(StatementSerializer, "PaginatedPayoutStatementList"))
    def get(self, request: Request) -> Response:
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(PayoutStatement.objects.all(), request, self)
        return paginator.get_paginated_response([statement_document(s) for s in page])

    @extend_schema(request=InputSerializer, responses={201: StatementSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        statement = payout_run(period=serializer.validated_data["period"], actor=request.user)
        return Response(statement_document(statement), status=status.HTTP_201_CREATED)


def _statement(period: str) -> PayoutStatement:
    statement = statement_get(start=period_parse(period))
    if statement is None:
        raise NotFound(f"period {period} is not paid out", code="payout_not_found")
    return statement


class StatementDetailApi(APIView):
    """``GET /api/v1/payouts/statements/{period}`` (staff): the whole statement (the JSON download)."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses=StatementSerializer)
    def get(self, request: Request, period: str) -> Response:
        return Response(statement_document(_statement(period)))


class StatementCsvApi(APIView):
    """``GET /api/v1/payouts/statements/{period}/csv`` (staff): the whole statement as CSV, amounts in cents."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request: Request, period: str) -> HttpResponse:
        statement = _statement(period)
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="payouts-{statement.period}.csv"'
        return response


# ------------------------------------------------------------------------------------------------
# Staff: node operators
# ------------------------------------------------------------------------------------------------


class OperatorListApi(APIView):
    """``GET/POST /api/v1/node-operators/`` (staff): the organisations that run nodes; register one."""

    permission_classes = [permissions.IsAdminUser]
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    class InputSerializer(StrictInputSerializer):
        slug = StrictCharField(pattern=SLUG_PATTERN, max_length=40)
        name = StrictCharField(max_length=100, pattern=NAME_PATTERN)
        contact_email = serializers.EmailField(required=False, allow_blank=True)

    @extend_schema(operation_id="v1_node_operators_list",
                   responses=paginated(OperatorSerializer, "PaginatedNodeOperatorList"))
    def get(self, request: Request) -> Response:
        return paginated_response(queryset=NodeOperator.objects.all(), serializer_class=OperatorSerializer,
                                  request=request, view=self)

    @extend_schema(request=InputSerializer, responses={201: OperatorSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operator = operator_create(actor=request.user, **serializer.validated_data)
        return Response(OperatorSerializer(operator).data, status=status.HTTP_201_CREATED)


class OperatorMemberListApi(APIView):
    """``POST /api/v1/node-operators/{slug}/members/`` (staff) ``{"username"}``: a person who sees the operator's
    nodes and payout lines."""

    permission_classes = [permissions.IsAdminUser]

    class InputSerializer(StrictInputSerializer):
        username = StrictCharField(max_length=150)

    @extend_schema(request=InputSerializer, responses={201: OperatorSerializer})
    def post(self, request: Request, slug: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operator = operator_member_add(operator=operator_get(slug=slug), actor=request.user,
                                       username=serializer.validated_data["username"])
        return Response(OperatorSerializer(operator).data, status=status.HTTP_201_CREATED)


class OperatorMemberDetailApi(APIView):
    """``DELETE /api/v1/node-operators/{slug}/members/{username}`` (staff)."""

    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, username: str) -> Response:
        operator_member_remove(operator=operator_get(slug=slug), username=username, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NodeOperatorAssignApi(APIView):
    """``PUT /api/v1/fleet/nodes/{name}/operator`` (staff) ``{"operator": "acme-ops"}``: that operator runs the
    node from this hour on."""

    permission_classes = [permissions.IsAdminUser]

    class InputSerializer(StrictInputSerializer):
        operator = StrictCharField(pattern=SLUG_PATTERN, max_length=40)

    @extend_schema(request=InputSerializer, responses=OperatorSerializer)
    def put(self, request: Request, name: str) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        operator = operator_get(slug=serializer.validated_data["operator"])
        node_operator_assign(node=node_get(name=name), operator=operator, actor=request.user)
        return Response(OperatorSerializer(operator).data)
