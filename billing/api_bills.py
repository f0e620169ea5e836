"""REST API v1: the month to date and the estimate of an account and of a team, with their lines (docs/BILLING.md)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts_service.api.base import AccountScopedApi, TeamScopedApi
from billing.api import LineSerializer, PeriodSerializer
from billing.bills import account_bill_document, team_bill_document


class _AccountMonth(serializers.Serializer):
    account = serializers.CharField()
    name = serializers.CharField()
    plan = serializers.CharField(help_text="the plan held last this month")
    to_date = serializers.IntegerField(help_text="cents: the lines to date, summed")
    estimate = serializers.IntegerField(help_text="cents: the estimate's lines, summed")
    lines = LineSerializer(many=True, help_text="to date: each plan for the seconds held so far; the plan held "
                                                "now grants its allowances to the period's end")
    estimate_lines = LineSerializer(many=True, help_text="the plan held now kept to the period's end, usage carried "
                                                         "on at the month's rate so far")


class _Month(serializers.Serializer):
    period = PeriodSerializer()
    at = serializers.CharField(help_text="the moment the figures are for (whole seconds, UTC)")
    currency = serializers.CharField(help_text="ISO 4217; amounts are integers of its minor unit (cents)")
    to_date = serializers.IntegerField()
    estimate = serializers.IntegerField()
    accounts = _AccountMonth(many=True)


class AccountBillApi(AccountScopedApi):
    """``GET /api/v1/accounts/{account_pk}/bill``: the account's month to date and estimate, line by line."""

    account_fields = ("public_key",)

    class OutputSerializer(_Month):
        class Meta:
            ref_name = "AccountBill"

        account = serializers.CharField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, account_pk: str) -> Response:
        return Response(account_bill_document(account=self.account))


class TeamBillApi(TeamScopedApi):
    """``GET /api/v1/teams/{team_id}/bill``: the team's month to date and estimate, per account held this month
    (deleted ones too: the invoice bills them); the team's figures are the sums of its accounts'."""

    class OutputSerializer(_Month):
        class Meta:
            ref_name = "TeamBill"

        team = serializers.IntegerField()

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, team_id: int) -> Response:
        return Response(team_bill_document(team_id=self.team.pk))
