"""REST API v1 of the caller's own API tokens: list, create (shown once), revoke."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service import services
from accounts_service.api.utils import (
    StrictDateTimeField,
    StrictInputSerializer,
    StrictIntegerField,
    name_field,
    paginated,
    paginated_response,
)
from accounts_service.models import ApiToken
from accounts_service.selectors import api_token_get, api_token_list, team_for_user_get
from accounts_service.services.tokens import MAX_TOKEN_DAYS

TOKEN_PREFIX_PATTERN = r"^nct_[A-Za-z0-9_-]{6}$"


class TokenOutputSerializer(serializers.Serializer):
    prefix = serializers.CharField(help_text="the token's first characters: its id")
    name = serializers.CharField()
    scope = serializers.ChoiceField(choices=ApiToken.Scope.choices,
                                    help_text="read: GET and HEAD only; write: everything the person may do")
    team = serializers.IntegerField(source="team_id", allow_null=True,
                                    help_text="the one team whose objects the token reaches (null: every team)")
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class TokenListCreateApi(APIView):
    """``GET/POST /api/v1/tokens/``: the caller's own tokens; a new one is returned once (only its SHA-256 is
    kept)."""

    class InputSerializer(StrictInputSerializer):
        name = name_field()
        scope = serializers.ChoiceField(choices=ApiToken.Scope.choices, default=ApiToken.Scope.WRITE)
        team = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1,
                                  help_text="restrict the token to this team's objects (GET /api/v1/teams/ lists ids)")
        expires_at = StrictDateTimeField(required=False, allow_null=True, help_text="RFC 3339, in the future")
        expires_in_days = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_TOKEN_DAYS,
                                             help_text="instead of expires_at")

    class OutputSerializer(TokenOutputSerializer):
        token = serializers.CharField(help_text="shown this once: store it now")

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_tokens_list", responses=paginated(TokenOutputSerializer, "PaginatedTokenList"))
    def get(self, request: Request) -> Response:
        return paginated_response(queryset=api_token_list(user=request.user), serializer_class=TokenOutputSerializer,
                                  request=request, view=self)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        team_id = data.pop("team", None)
        team = team_for_user_get(user=request.user, team_id=team_id) if team_id is not None else None
        record, token = services.api_token_create(user=request.user, actor=request.user, team=team, **data)
        record.token = token
        response = Response(self.OutputSerializer(record).data, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class TokenDetailApi(APIView):
    """``GET/DELETE /api/v1/tokens/{prefix}/``: one of the caller's tokens; DELETE revokes it (idempotent; the row
    stays, revoked, in the list and the audit log)."""

    OutputSerializer = TokenOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, prefix: str) -> Response:
        return Response(self.OutputSerializer(api_token_get(user=request.user, prefix=prefix)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, prefix: str) -> Response:
        services.api_token_revoke(token=api_token_get(user=request.user, prefix=prefix), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
