"""REST API v1: the NATS users of an account (list, create, read, change, delete, creds, revoke)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from accounts_service import issuance_reads, services
from accounts_service.api import users_io
from accounts_service.api.base import AccountScopedApi
from accounts_service.api.utils import (
    TEXT_RENDERERS,
    USER_KEY_PATTERN,
    AcceptHeaderNegotiation,
    ServiceTransactionsMixin,
    StrictBooleanField,
    StrictCharField,
    StrictDateTimeField,
    StrictInputSerializer,
    StrictIntegerField,
    name_field,
    paginated,
    paginated_response,
    plain_text_response,
    subject_field,
)
from accounts_service.models import Account, NatsUser
from accounts_service.selectors import user_get
from accounts_service.validation import MAX_LIMIT, MAX_SUBJECTS

# ------------------------------------------------------------------------------------------------
# Serializers shared by the user routes
# ------------------------------------------------------------------------------------------------


def _subjects() -> serializers.ListField:
    # The pattern documents NATS subject syntax; the service checks it (and says what is wrong).
    return serializers.ListField(child=subject_field(), required=False, max_length=MAX_SUBJECTS)


class _SubjectsInput(StrictInputSerializer):
    allow = _subjects()
    deny = _subjects()


class _PermissionsInput(StrictInputSerializer):
    pub = _SubjectsInput(required=False)
    sub = _SubjectsInput(required=False)
    allow_responses = StrictBooleanField(required=False)


def _tags() -> serializers.ListField:
    # The service checks each tag (name or name:value) and folds it to lower case, as the JWT carries it.
    return serializers.ListField(child=StrictCharField(max_length=128), required=False, max_length=32,
                                 help_text="name:value strings in the user JWT, read by a scoped key's {{tag(name)}}")


def _limit() -> StrictIntegerField:
    return StrictIntegerField(required=False, min_value=-1, max_value=MAX_LIMIT, help_text="-1: unlimited")


class _UserLimitsInput(StrictInputSerializer):
    subs = _limit()
    data = _limit()
    payload = _limit()


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """The API's nested ``permissions`` / ``limits`` objects as the flat keyword arguments of the services."""
    out = {k: v for k, v in data.items() if k not in ("permissions", "limits")}
    permissions = data.get("permissions") or {}
    for direction in ("pub", "sub"):
        for kind in ("allow", "deny"):
            if kind in permissions.get(direction, {}):
                out[f"{direction}_{kind}"] = permissions[direction][kind]
    if "allow_responses" in permissions:
        out["allow_responses"] = permissions["allow_responses"]
    out.update(data.get("limits") or {})
    return out


class UserOutputSerializer(serializers.Serializer):
    """A user as the API shows it: never a seed, and not the user JWT (a bearer-token JWT is a credential)."""

    class Meta:
        ref_name = "NatsUser"

    public_key = serializers.CharField()
    name = serializers.CharField()
    account = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField()
    permissions = serializers.SerializerMethodField()
    limits = serializers.SerializerMethodField()
    bearer_token = serializers.BooleanField()
    tags = serializers.ListField(child=serializers.CharField())
    creds_available = serializers.SerializerMethodField()
    jwt_url = serializers.SerializerMethodField(help_text="where the user JWT is (a user created from your own "
                                                "public key has no .creds here: pair this JWT with your seed)")
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    jwt_iat = serializers.IntegerField()
    created_at = serializers.DateTimeField()

    def get_account(self, user: NatsUser) -> str:
        return user.account.public_key

    def get_role(self, user: NatsUser) -> str:
        return user.signing_key.role

    def get_permissions(self, user: NatsUser) -> dict[str, Any]:
        return {
            "pub": {"allow": user.pub_allow, "deny": user.pub_deny},
            "sub": {"allow": user.sub_allow, "deny": user.sub_deny},
            "allow_responses": user.allow_responses,
        }

    def get_limits(self, user: NatsUser) -> dict[str, int]:
        return {"subs": user.subs, "data": user.data, "payload": user.payload}

    def get_creds_available(self, user: NatsUser) -> bool:
        return user.seed_id is not None and user.revoked_at is None

    def get_jwt_url(self, user: NatsUser) -> str:
        return services.user_jwt_path(user=user)


# ------------------------------------------------------------------------------------------------
# Routes
# ------------------------------------------------------------------------------------------------


class UserListCreateApi(ServiceTransactionsMixin, AccountScopedApi):
    """``GET/POST /api/v1/accounts/{account_pk}/users/``: the account's users; a new one."""

    class InputSerializer(StrictInputSerializer):
        name = name_field()
        permissions = _PermissionsInput(required=False)
        limits = _UserLimitsInput(required=False)
        bearer_token = StrictBooleanField(required=False)
        expires_at = StrictDateTimeField(required=False, allow_null=True, help_text="in the future")
        tags = _tags()
        # Given: the caller keeps the seed, we sign only; the creds route then has nothing to offer.
        public_key = StrictCharField(pattern=USER_KEY_PATTERN, required=False, allow_blank=True,
                                     help_text="a user nkey whose seed you keep (its checksum must be valid)")
        role = name_field(required=False, allow_blank=True, help_text="a scoped signing key of the account")

        class Meta:
            ref_name = "UserCreateInput"

    OutputSerializer = UserOutputSerializer
    pagination_class = api_settings.DEFAULT_PAGINATION_CLASS  # also tells the OpenAPI schema the list is paged
    content_negotiation_class = AcceptHeaderNegotiation  # (the Accept header alone picks JSON or .creds)
    account_fields = ("public_key",)  # the hot path of .creds issuance: creating a user reads only these

    @extend_schema(operation_id="v1_accounts_users_list", responses=paginated(OutputSerializer, "PaginatedUserList"))
    def get(self, request: Request, account_pk: str) -> Response:
        account = self.account
        users = (
            NatsUser.objects.filter(account=account).select_related("account", "signing_key")
            .order_by("created_at", "pk")
        )
        return paginated_response(queryset=users, serializer_class=self.OutputSerializer, request=request, view=self)

    def get_renderers(self) -> list:
        # POST also answers ``Accept: text/plain`` with the new user's .creds (one round trip); the list stays JSON.
        if getattr(self, "request", None) is not None and self.request.method == "POST":
            return [renderer() for renderer in TEXT_RENDERERS]
        return super().get_renderers()

    @extend_schema(
        request=InputSerializer,
        responses={(201, "application/json"): OutputSerializer, (201, "text/plain"): OpenApiTypes.STR},
        description="A new user of the account. With `Accept: text/plain` the answer is the new user's `.creds` "
                    "file instead of its JSON (one round trip, as `nsc add user` then `nsc generate creds`; audited "
                    "as a creation and a creds download); its `Location` header is the user's URL.",
    )
    def post(self, request: Request, account_pk: str) -> Response | HttpResponse:
        data = users_io.create_input_fast(request.data)  # (well-formed input; otherwise the serializer decides)
        if data is None:
            serializer = self.InputSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        spec = _flatten(data)
        if request.accepted_renderer.media_type == "text/plain":
            user, text = services.user_create_with_creds(account=self.account, actor=request.user, via="api", **spec)
            return plain_text_response(text, status=status.HTTP_201_CREATED, headers={
                "Cache-Control": "no-store",  # the body holds a secret, as on the creds route
                "Content-Disposition": f'attachment; filename="{services.creds_filename(user.name)}"',
                "Location": f"{request.path}{user.public_key}/",
            })
        user = services.user_create(account=self.account, actor=request.user, **spec)
        return Response(users_io.user_representation(user), status=status.HTTP_201_CREATED)


class UserDetailApi(AccountScopedApi):
    """``GET/PATCH/DELETE .../users/{user_pk}/``: one user, by its public nkey, within the account."""

    class InputSerializer(StrictInputSerializer):
        name = name_field()
        permissions = _PermissionsInput()
        limits = _UserLimitsInput()
        bearer_token = StrictBooleanField()
        expires_at = StrictDateTimeField(allow_null=True, help_text="in the future")
        tags = _tags()

        class Meta:
            ref_name = "UserUpdateInput"

    OutputSerializer = UserOutputSerializer

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, account_pk: str, user_pk: str) -> Response:
        account = self.account
        return Response(self.OutputSerializer(user_get(account=account, public_key=user_pk)).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request: Request, account_pk: str, user_pk: str) -> Response:
        account = self.account
        user = user_get(account=account, public_key=user_pk)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(user=user, actor=request.user, **_flatten(serializer.validated_data))
        return Response(self.OutputSerializer(user).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, account_pk: str, user_pk: str) -> Response:
        account = self.account
        services.user_delete(user=user_get(account=account, public_key=user_pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserCredsApi(ServiceTransactionsMixin, AccountScopedApi):
    """``GET .../users/{user_pk}/creds``: the ``.creds`` file (user JWT + seed); 409 if we never had the seed."""

    renderer_classes = TEXT_RENDERERS
    content_negotiation_class = AcceptHeaderNegotiation

    def scope_resolve(self, request: Request, **kwargs: Any) -> tuple[Account, str]:
        # The hot path of .creds issuance: one scoped read (plain SQL) for the account, the user and the caller's
        # role, which also brings what the .creds are made of (fresh: read now), so the service reads nothing
        # again. Only a miss asks the selectors, so that an unknown account and an unknown user keep their own 404s.
        self.user = issuance_reads.creds_user_for_actor(actor=request.user, account_public_key=kwargs["account_pk"],
                                                        user_public_key=kwargs["user_pk"])
        self.user_fresh = self.user is not None
        if self.user is None:
            account, role = super().scope_resolve(request, **kwargs)
            self.user = user_get(account=account, public_key=kwargs["user_pk"])
            return account, role
        return self.user.account, self.user.actor_role

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request, account_pk: str, user_pk: str) -> HttpResponse:
        user = self.user
        text = services.user_creds_download(user=user, actor=request.user, fresh=self.user_fresh)
        # The body holds a secret: never cached by browsers or proxies.
        return plain_text_response(text, headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{services.creds_filename(user.name)}"',
        })


class UserJwtApi(ServiceTransactionsMixin, AccountScopedApi):
    """``GET .../users/{user_pk}/jwt``: the user's current JWT (``text/plain``), for every user, and the only way to
    a working ``.creds`` for a user created from your own public key. Audited and never cached, like the creds
    (a bearer-token user's JWT alone connects)."""

    renderer_classes = TEXT_RENDERERS
    content_negotiation_class = AcceptHeaderNegotiation
    template = False

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR})
    def get(self, request: Request, account_pk: str, user_pk: str) -> HttpResponse:
        user = user_get(account=self.account, public_key=user_pk)
        text = services.user_jwt_download(user=user, actor=request.user, template=self.template, via="api")
        pairing = services.user_creds_pairing(user=user)
        return plain_text_response(text, headers={
            "Cache-Control": "no-store",
            "Content-Disposition": f'attachment; filename="{pairing["template" if self.template else "jwt"]}"',
        })


class UserCredsTemplateApi(UserJwtApi):
    """``GET .../users/{user_pk}/creds-template``: the ``.creds`` layout with the user JWT filled in and the line
    ``PASTE-YOUR-USER-NKEY-SEED-HERE`` where your seed goes (the user's page in the console and ``manage.py user jwt
    --template`` show the one-line ``sed`` that completes it). Audited and never cached, like the JWT."""

    template = True


class UserRevokeApi(AccountScopedApi):
    """``POST .../users/{user_pk}/revoke``: revoke the user's key in the account JWT (idempotent)."""

    OutputSerializer = UserOutputSerializer

    @extend_schema(request=None, responses=OutputSerializer)
    def post(self, request: Request, account_pk: str, user_pk: str) -> Response:
        account = self.account
        user = user_get(account=account, public_key=user_pk)
        user = services.user_revoke(user=user, actor=request.user)
        return Response(self.OutputSerializer(user).data)
