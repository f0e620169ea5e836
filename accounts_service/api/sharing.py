"""REST API v1 of sharing: an account's exports, the activation tokens of its private exports, its imports."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts_service.api.base import AccountScopedApi
from accounts_service.api.utils import (
    ACCOUNT_KEY_PATTERN,
    NAME_PATTERN,
    StrictBooleanField,
    StrictCharField,
    StrictDateTimeField,
    StrictInputSerializer,
    StrictIntegerField,
    name_field,
    paginated,
    paginated_response,
    subject_field,
)
from accounts_service.models import Export, Import
from accounts_service.selectors import activation_get, activation_list, export_get, export_list, import_get, import_list
from accounts_service.services import (
    activation_create,
    activation_revoke,
    export_create,
    export_delete,
    import_create,
    import_delete,
    import_is_builtin,
)
from core.errors import ApplicationError

# ------------------------------------------------------------------------------------------------
# Exports
# ------------------------------------------------------------------------------------------------


class ExportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    subject = serializers.CharField()
    type = serializers.CharField()
    private = serializers.BooleanField(source="token_req")
    response_type = serializers.CharField()
    account_token_position = serializers.IntegerField()
    advertise = serializers.BooleanField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()


class ExportListCreateApi(AccountScopedApi):
    """``GET/POST /api/v1/accounts/{account_pk}/exports/``: the account's streams and services."""

    class InputSerializer(StrictInputSerializer):
        name = name_field()
        subject = subject_field(help_text="no wildcards unless the account's wildcard_exports limit allows them")
        type = serializers.ChoiceField(choices=Export.Type.choices)
        private = StrictBooleanField(default=False, help_text="importers need an activation token (not with an"
                                     " account_token_position: nats-server does not read the token there)")
        response_type = serializers.ChoiceField(choices=Export.ResponseType.choices,
                                                default=Export.ResponseType.SINGLETON,
                                                help_text="services only")
        # A subject has at most 256 tokens (512 characters); the position must name one of its "*" tokens.
        account_token_position = StrictIntegerField(
            min_value=0, max_value=256, default=0,
            help_text="the 1-based '*' token each importer fills with its own account key; nats-server then checks"
                      " only that key and never reads an activation: no activation expiry or revocation applies"
                      " (both are refused). To revoke importers one by one, export privately with no token position")
        advertise = StrictBooleanField(default=False)
        description = StrictCharField(pattern=NAME_PATTERN, max_length=200, allow_blank=True, default="")

    OutputSerializer = ExportOutputSerializer
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS  # also tells the OpenAPI schema the list is paged

    @extend_schema(operation_id="v1_accounts_exports_list",
                   responses=paginated(OutputSerializer, "PaginatedExportList"))
    def get(self, request: Request, account_pk: str) -> Response:
        account = self.account
        return paginated_response(queryset=export_list(account=account), serializer_class=self.OutputSerializer,
                                  request=request, view=self)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request, account_pk: str) -> Response:
        account = self.account
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = export_create(account=account, actor=request.user, **serializer.validated_data)
        return Response(self.OutputSerializer(export).data, status=status.HTTP_201_CREATED)


class ExportDetailApi(AccountScopedApi):
    """``GET/DELETE /api/v1/accounts/{account_pk}/exports/{id}/``; deleting drops every import of it."""

    OutputSerializer = ExportOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, account_pk: str, export_id: int) -> Response:
        account = self.account
        return Response(self.OutputSerializer(export_get(account=account, export_id=export_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, account_pk: str, export_id: int) -> Response:
        account = self.account
        export_delete(export=export_get(account=account, export_id=export_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ActivationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    target = serializers.CharField(source="target_public_key", help_text="the importing account's public key")
    subject = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class ActivationListCreateApi(AccountScopedApi):
    """``GET/POST /api/v1/accounts/{account_pk}/exports/{id}/activations/``: the activations of a private export
    (without their tokens), and a new activation token for one importer. The route is scoped by the exporting
    account, so only its own teams can list or mint them."""

    class InputSerializer(StrictInputSerializer):
        target = StrictCharField(pattern=ACCOUNT_KEY_PATTERN, help_text="the importing account's public key")
        subject = subject_field(required=False, allow_blank=True,
                                help_text="the export's subject (default) or a narrower one")
        expires_at = StrictDateTimeField(required=False, allow_null=True,
                                         help_text="RFC 3339, in the future; refused (400 activation_not_enforced)"
                                                   " on an export with an account_token_position, where nats-server"
                                                   " would not enforce it")

    class OutputSerializer(ActivationOutputSerializer):
        token = serializers.CharField(help_text="the activation JWT")

    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS

    @extend_schema(operation_id="v1_accounts_exports_activations_list",
                   responses=paginated(ActivationOutputSerializer, "PaginatedActivationList"))
    def get(self, request: Request, account_pk: str, export_id: int) -> Response:
        export = export_get(account=self.account, export_id=export_id)
        return paginated_response(queryset=activation_list(export=export), serializer_class=ActivationOutputSerializer,
                                  request=request, view=self)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request, account_pk: str, export_id: int) -> Response:
        account = self.account
        export = export_get(account=account, export_id=export_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        activation = activation_create(export=export, actor=request.user, target_public_key=data["target"],
                                       subject=data.get("subject") or None, expires_at=data.get("expires_at"))
        return Response(self.OutputSerializer(activation).data, status=status.HTTP_201_CREATED)


class ActivationDetailApi(AccountScopedApi):
    """``GET /api/v1/accounts/{account_pk}/exports/{id}/activations/{activation_id}/``: one activation."""

    OutputSerializer = ActivationOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, account_pk: str, export_id: int, activation_id: int) -> Response:
        export = export_get(account=self.account, export_id=export_id)
        return Response(self.OutputSerializer(activation_get(export=export, activation_id=activation_id)).data)


class ActivationRevokeApi(AccountScopedApi):
    """``POST .../exports/{id}/activations/{activation_id}/revoke``: the exporter's JWT lists the importer in the
    export's revocations and is pushed, so the servers stop delivering to the importer (idempotent). Refused (409
    activation_not_enforced) on an export with an account token position, where the servers never read it."""

    OutputSerializer = ActivationOutputSerializer

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request: Request, account_pk: str, export_id: int, activation_id: int) -> Response:
        export = export_get(account=self.account, export_id=export_id)
        activation = activation_revoke(activation=activation_get(export=export, activation_id=activation_id),
                                       actor=request.user)
        return Response(self.OutputSerializer(activation).data)


# ------------------------------------------------------------------------------------------------
# Imports
# ------------------------------------------------------------------------------------------------


class ImportOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    exporter = serializers.CharField(source="export.account.public_key")
    type = serializers.CharField(source="export.type")
    private = serializers.BooleanField(source="export.token_req")
    subject = serializers.CharField()
    local_subject = serializers.CharField()
    share = serializers.BooleanField()
    builtin = serializers.SerializerMethodField(help_text="the platform's ngs.usage import: it cannot be removed")
    created_at = serializers.DateTimeField()

    def get_builtin(self, imp: Import) -> bool:
        return import_is_builtin(imp)


class ImportListCreateApi(AccountScopedApi):
    """``GET/POST /api/v1/accounts/{account_pk}/imports/``: other accounts' exports brought into this one.
    The exporter may belong to any team: the service checks the export and, if private, the token."""

    class InputSerializer(StrictInputSerializer):
        exporter = StrictCharField(pattern=ACCOUNT_KEY_PATTERN, help_text="the exporting account's public key")
        subject = subject_field()
        local_subject = subject_field(required=False, allow_blank=True)
        token = StrictCharField(required=False, allow_blank=True,
                                help_text="activation JWT (private exports without an account token position)")
        name = name_field(required=False, allow_blank=True)
        share = StrictBooleanField(default=False)

    OutputSerializer = ImportOutputSerializer
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS  # also tells the OpenAPI schema the list is paged

    @extend_schema(operation_id="v1_accounts_imports_list",
                   responses=paginated(OutputSerializer, "PaginatedImportList"))
    def get(self, request: Request, account_pk: str) -> Response:
        account = self.account
        return paginated_response(queryset=import_list(account=account), serializer_class=self.OutputSerializer,
                                  request=request, view=self)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request: Request, account_pk: str) -> Response:
        account = self.account
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            imp = import_create(account=account, actor=request.user, exporter_public_key=data["exporter"],
                                subject=data["subject"],
                                local_subject=data.get("local_subject") or None, token=data.get("token") or None,
                                name=data.get("name") or None, share=data["share"])
        except ApplicationError as exc:
            # The service names the exporter field after the CLI's --from; the API's field is "exporter".
            if exc.extra.get("field") == "from":
                exc.extra["field"] = "exporter"
            raise
        return Response(self.OutputSerializer(imp).data, status=status.HTTP_201_CREATED)


class ImportDetailApi(AccountScopedApi):
    """``GET/DELETE /api/v1/accounts/{account_pk}/imports/{id}/``."""

    OutputSerializer = ImportOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, account_pk: str, import_id: int) -> Response:
        account = self.account
        return Response(self.OutputSerializer(import_get(account=account, import_id=import_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, account_pk: str, import_id: int) -> Response:
        account = self.account
        import_delete(imp=import_get(account=account, import_id=import_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
