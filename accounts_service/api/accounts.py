"""REST API v1: a team's NATS accounts (list, create, read, change, delete, current JWT)."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service import services
from accounts_service.api.base import AccountScopedApi
from accounts_service.api.utils import (
    NAME_PATTERN,
    TEXT_RENDERERS,
    AcceptHeaderNegotiation,
    StrictBooleanField,
    StrictCharField,
    StrictInputSerializer,
    StrictIntegerField,
    name_field,
    paginated,
    paginated_response,
    plain_text_response,
)
from accounts_service.models import LIMIT_FIELDS, LIMIT_HELP, Account
from accounts_service.models.tenancy import token_team_id
from accounts_service.plans import FREE_PLAN
from accounts_service.selectors import team_for_user_get
from accounts_service.validation import MAX_DESCRIPTION, MAX_LIMIT

# ------------------------------------------------------------------------------------------------
# Accounts
# ------------------------------------------------------------------------------------------------


class AccountOutputSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Account"

    public_key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    team = serializers.IntegerField(source="team_id")
    plan = serializers.CharField(help_text="the plan bounding the limits; empty for an operator-managed account")
    limits = serializers.SerializerMethodField()
    version = serializers.IntegerField()
    jwt_iat = serializers.IntegerField()
    jwt_jti = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_limits(self, account: Account) -> dict[str, int | bool]:
        limits: dict[str, int | bool] = {field: getattr(account, field) for field in LIMIT_FIELDS}
        limits["wildcard_exports"] = account.wildcard_exports
        return limits


def _description_field() -> StrictCharField:
    return StrictCharField(pattern=NAME_PATTERN, required=False, allow_blank=True, max_length=MAX_DESCRIPTION)


def _limit(field: str) -> StrictIntegerField:
    return StrictIntegerField(required=False, min_value=-1, max_value=MAX_LIMIT, help_text=LIMIT_HELP[field])


class _AccountLimitsInput(StrictInputSerializer):
    """The account's limits (models.LIMIT_FIELDS); only the ones given change."""

    class Meta:
        ref_name = "AccountLimitsInput"

    conn = _limit("conn")
    subs = _limit("subs")
    data = _limit("data")
    payload = _limit("payload")
    imports = _limit("imports")
    exports = _limit("exports")
    leaf = _limit("leaf")
    mem_storage = _limit("mem_storage")
    disk_storage = _limit("disk_storage")
    streams = _limit("streams")
    consumer = _limit("consumer")
    wildcard_exports = StrictBooleanField(required=False)


assert set(_AccountLimitsInput().fields) == {*LIMIT_FIELDS, "wildcard_exports"}


def _plan_field() -> StrictCharField:
    return StrictCharField(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$", required=False, allow_null=True, max_length=32,
                           help_text="a plan's name (see the plans page); default free on creation")


class AccountListCreateApi(APIView):
    """``GET/POST /api/v1/accounts/``: the caller's teams' accounts; a new one (default: the personal team)."""

    class InputSerializer(StrictInputSerializer):
        name = name_field()
        description = _description_field()
        team = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)
        plan = _plan_field()
        limits = _AccountLimitsInput(required=False)

        class Meta:
            ref_name = "AccountCreateInput"

    OutputSerializer = AccountOutputSerializer
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS  # also tells the OpenAPI schema the list is paged

    @extend_schema(operation_id="v1_accounts_list", responses=paginated(OutputSerializer, "PaginatedAccountList"))
    def get(self, request: Request) -> Response:
        accounts = Account.objects.for_user(request.user).order_by("created_at", "pk")
        return paginated_response(queryset=accounts, serializer_class=self.OutputSerializer, request=request,
                                  view=self)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        team_id = data.get("team")
        if team_id is None:  # a team-restricted token creates in its team, not the personal one
            team_id = token_team_id(request.user)
        team = (services.team_personal_ensure(user=request.user) if team_id is None
                else team_for_user_get(user=request.user, team_id=team_id))
        account = services.account_create(
            team=team, name=data["name"], description=data.get("description", ""), limits=data.get("limits"),
            plan=data.get("plan") or FREE_PLAN, actor=request.user,
        )
        return Response(self.OutputSerializer(account).data, status=status.HTTP_201_CREATED)


class AccountDetailApi(AccountScopedApi):
    """``GET/PATCH/DELETE /api/v1/accounts/{account_pk}/``: one account, by its public nkey."""

    class InputSerializer(StrictInputSerializer):
        name = name_field(required=False)
        description = _description_field()
        plan = _plan_field()
        limits = _AccountLimitsInput(required=False)

        class Meta:
            ref_name = "AccountUpdateInput"

    OutputSerializer = AccountOutputSerializer
    owner_methods = frozenset({"DELETE"})  # (a plan change in a PATCH: the service asks for an owner)

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, account_pk: str) -> Response:
        account = self.account
        return Response(self.OutputSerializer(account).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request: Request, account_pk: str) -> Response:
        account = self.account
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        plan = data.pop("plan", None)
        with transaction.atomic():  # a plan change and the other fields land together or not at all
            if plan:  # owners only; the limits that follow are checked against the new plan
                account = services.account_plan_set(account=account, plan=plan, actor=request.user)
            if data or not plan:
                account = services.account_update(account=account, actor=request.user, **data)
        return Response(self.OutputSerializer(account).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, account_pk: str) -> Response:
        account = self.account
        services.account_delete(account=account, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccountJwtApi(AccountScopedApi):
    """``GET /api/v1/accounts/{account_pk}/jwt``: the current account JWT, as ``text/plain``."""

    renderer_classes = TEXT_RENDERERS
    content_negotiation_class = AcceptHeaderNegotiation

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request, account_pk: str) -> HttpResponse:
        account = self.account
        return plain_text_response(account.jwt)
