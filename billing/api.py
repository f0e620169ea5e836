"""REST API v1: an account's usage (``GET /api/v1/accounts/{account_pk}/usage``), the document ngs.usage answers."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts_service.selectors import account_for_user_get
from billing.selectors import WINDOWS, account_usage, window_parse
from operators.errors import ApplicationError


class _MsgsBytes(serializers.Serializer):
    msgs = serializers.IntegerField()
    bytes = serializers.IntegerField()


class _Connections(serializers.Serializer):
    current = serializers.IntegerField()
    peak = serializers.IntegerField()


class _Quota(serializers.Serializer):
    data_bytes = serializers.IntegerField(help_text="the plan's monthly data allowance; -1 unlimited")
    used_bytes = serializers.IntegerField(help_text="sent plus received bytes this calendar month (UTC)")


class _JetStream(serializers.Serializer):
    storage_bytes = serializers.IntegerField(help_text="JetStream bytes stored now, every replica counted")
    gib_hours = serializers.FloatField(help_text="JetStream storage over the window, in GiB-hours")


class AccountUsageApi(APIView):
    """``GET /api/v1/accounts/{account_pk}/usage?window=24h``: the account's own usage, as ``ngs.usage`` answers."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Usage"

        account = serializers.CharField()
        window = serializers.ChoiceField(choices=list(WINDOWS))
        start = serializers.CharField()
        end = serializers.CharField()
        sent = _MsgsBytes()
        received = _MsgsBytes()
        connections = _Connections()
        plan = serializers.CharField(allow_blank=True)
        quota = _Quota()
        jetstream = _JetStream()

    @extend_schema(responses=OutputSerializer, parameters=[
        OpenApiParameter("window", str, enum=list(WINDOWS), required=False, description="default 24h"),
    ])
    def get(self, request: Request, account_pk: str) -> Response:
        account = account_for_user_get(user=request.user, public_key=account_pk)
        try:
            window = window_parse(request.query_params.get("window"))
        except ValueError as exc:
            raise ApplicationError(str(exc), extra={"field": "window"}) from None
        return Response(account_usage(account_public_key=account.public_key, plan_name=account.plan, window=window))
