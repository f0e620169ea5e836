"""REST API v1 of billing: an account's usage (the document ngs.usage answers), the plans, the teams' invoices."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service.api.base import AccountScopedApi
from accounts_service.api.utils import paginated, paginated_response
from accounts_service.models import Team
from billing.bills import currency
from billing.invoices import invoice_document
from billing.models import Invoice, InvoiceLine, Plan
from billing.selectors import WINDOWS, account_usage, window_parse
from core.errors import ApplicationError, NotFound


class _MsgsBytes(serializers.Serializer):
    msgs = serializers.IntegerField()
    bytes = serializers.IntegerField()


class _Connections(serializers.Serializer):
    current = serializers.IntegerField()
    peak = serializers.IntegerField()
    leafnodes = serializers.IntegerField(help_text="leafnode connections now (the tenant's own nats-servers)")


class _Quota(serializers.Serializer):
    data_bytes = serializers.IntegerField(help_text="the plan's monthly data allowance; -1 unlimited")
    used_bytes = serializers.IntegerField(help_text="sent plus received bytes this calendar month (UTC)")


class _JetStream(serializers.Serializer):
    storage_bytes = serializers.IntegerField(help_text="JetStream bytes stored now, every replica counted")
    gib_hours = serializers.FloatField(help_text="JetStream storage over the window, in GiB-hours")


class _Bill(serializers.Serializer):
    to_date = serializers.IntegerField(help_text="this calendar month (UTC) so far, in minor units (cents) of "
                                                 "currency")
    estimate = serializers.IntegerField(help_text="the month's bill if the plan held now stays and usage goes on "
                                                  "at the month's rate so far, in minor units (cents)")
    currency = serializers.CharField(help_text="ISO 4217")


class AccountUsageApi(AccountScopedApi):
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
        bill = _Bill()

    @extend_schema(responses=OutputSerializer, parameters=[
        OpenApiParameter("window", str, enum=list(WINDOWS), required=False, description="default 24h"),
    ])
    def get(self, request: Request, account_pk: str) -> Response:
        account = self.account
        try:
            window = window_parse(request.query_params.get("window"))
        except ValueError as exc:
            raise ApplicationError(str(exc), extra={"field": "window"}) from None
        return Response(account_usage(account_public_key=account.public_key, plan_name=account.plan, window=window,
                                      team_id=account.team_id))


# ------------------------------------------------------------------------------------------------
# Plans and invoices
# ------------------------------------------------------------------------------------------------


class PlanListApi(APIView):
    """``GET /api/v1/plans/``: every plan, cheapest first: its limits, its data allowance and its price."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "Plan"

        name = serializers.CharField()
        title = serializers.CharField()
        limits = serializers.SerializerMethodField()
        accounts_per_team = serializers.IntegerField(help_text="-1 unlimited")
        data_bytes = serializers.IntegerField(help_text="monthly data allowance, sent plus received; -1 unlimited")
        currency = serializers.SerializerMethodField(help_text="ISO 4217: every price is in its minor unit (cents)")
        base_price_cents = serializers.IntegerField(help_text="per calendar month, prorated by the seconds held")
        overage_cents_per_gib = serializers.IntegerField(help_text="data past the allowance, per GiB; 0: no overage, "
                                                                   "the account is suspended at 100%")
        connection_hours = serializers.IntegerField(help_text="connection-hours included per month; -1 unlimited")
        connection_cents_per_1000_hours = serializers.IntegerField(help_text="connection-hours past the allowance, "
                                                                             "per 1,000; 0: not billed")
        storage_gib_hours = serializers.IntegerField(help_text="JetStream GiB-hours (every replica) included per "
                                                               "month; -1 unlimited")
        storage_cents_per_1000_gib_hours = serializers.IntegerField(help_text="JetStream GiB-hours past the "
                                                                              "allowance, per 1,000; 0: not billed")

        def get_currency(self, plan: Plan) -> str:
            return currency()

        def get_limits(self, plan: Plan) -> dict[str, int]:
            return plan.account_limits()

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_plans_list", responses=paginated(OutputSerializer, "PaginatedPlanList"))
    def get(self, request: Request) -> Response:
        return paginated_response(queryset=Plan.objects.all(), serializer_class=self.OutputSerializer,
                                  request=request, view=self)


class LineSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=InvoiceLine.Kind.choices)
    description = serializers.CharField()
    plan = serializers.CharField()
    start = serializers.CharField(help_text="when the account started holding the plan within the period")
    end = serializers.CharField(help_text="when it stopped, or the period's end (now, for the month to date)")
    measure_unit = serializers.CharField(help_text="the unit of measured, included and billed: second (base), byte "
                                                   "(data), connection-second, byte-second (storage)")
    measured = serializers.IntegerField(help_text="exact: seconds held, or what was used in the time held")
    included = serializers.IntegerField(help_text="the plan's allowance prorated to the time held; -1 unlimited")
    billed = serializers.IntegerField(help_text="what was priced: measured past included (base: seconds held)")
    quantity = serializers.CharField(help_text="billed in quantity_unit, to 6 decimals (decimal string)")
    quantity_unit = serializers.CharField(help_text="months, GiB, connection-hours or GiB-hours")
    unit_cents = serializers.IntegerField(help_text="the price of one unit")
    unit = serializers.CharField(help_text="month, GiB, 1,000 connection-hours or 1,000 GiB-hours")
    amount_cents = serializers.IntegerField(help_text="rounded once, half up, from the exact figures")


class _InvoiceLine(LineSerializer):
    position = serializers.IntegerField()
    account = serializers.CharField()
    account_name = serializers.CharField()


class PeriodSerializer(serializers.Serializer):
    start = serializers.CharField()
    end = serializers.CharField()


class _TeamRef(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class _Payment(serializers.Serializer):
    provider = serializers.CharField(allow_blank=True)
    reference = serializers.CharField(allow_blank=True)


class InvoiceDocumentSerializer(serializers.Serializer):
    class Meta:
        ref_name = "Invoice"

    number = serializers.CharField()
    team = _TeamRef()
    period = PeriodSerializer()
    currency = serializers.CharField()
    total_cents = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Invoice.Status.choices)
    issued_at = serializers.CharField()
    paid_at = serializers.CharField(allow_null=True)
    payment = _Payment()
    lines = _InvoiceLine(many=True)


class InvoiceListApi(APIView):
    """``GET /api/v1/invoices/``: the invoices of the caller's teams, newest period first."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "InvoiceSummary"

        number = serializers.CharField()
        team = serializers.IntegerField(source="team_id")
        period_start = serializers.DateTimeField()
        period_end = serializers.DateTimeField()
        currency = serializers.CharField()
        total_cents = serializers.IntegerField()
        status = serializers.ChoiceField(choices=Invoice.Status.choices)

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_invoices_list", responses=paginated(OutputSerializer, "PaginatedInvoiceList"))
    def get(self, request: Request) -> Response:
        invoices = Invoice.objects.filter(team__in=Team.objects.for_user(request.user)).order_by("-period_start",
                                                                                                  "pk")
        return paginated_response(queryset=invoices, serializer_class=self.OutputSerializer, request=request,
                                  view=self)


class InvoiceDetailApi(APIView):
    """``GET /api/v1/invoices/{number}``: one invoice with its line items (the JSON download)."""

    @extend_schema(responses=InvoiceDocumentSerializer)
    def get(self, request: Request, number: str) -> Response:
        invoice = (Invoice.objects.filter(team__in=Team.objects.for_user(request.user), number=number)
                   .select_related("team").first())
        if invoice is None:
            raise NotFound(f"no invoice {number}")
        return Response(invoice_document(invoice))
