"""Helpers shared by the REST API views: strict input, pagination, plain-text documents."""

from __future__ import annotations

import json
import re

from django.core.validators import RegexValidator
from django.db import transaction
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema_field, inline_serializer
from rest_framework import renderers, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts_service.validation import NAME_PATTERN
from operators.subjects import MAX_SUBJECT_LENGTH

# ------------------------------------------------------------------------------------------------
# Input fields that accept exactly what the OpenAPI schema says (schemathesis checks both directions)
# ------------------------------------------------------------------------------------------------

# JSON Schema patterns are ECMA-262 (``$`` is the end of the string), so the server matches them in full
# rather than with ``re.search``, whose ``$`` also matches before a final newline.
_TOKEN = r"(?:[^\x00-\x20\x7f.*>]+|\*)"
# operators.subjects.validate_subject as a pattern: tokens split by ".", "*" a whole token, ">" only last.
SUBJECT_PATTERN = rf"^(?:{_TOKEN}\.)*(?:{_TOKEN}|>)$"
ACCOUNT_KEY_PATTERN = r"^A[A-Z2-7]{55}$"
USER_KEY_PATTERN = r"^U[A-Z2-7]{55}$"
# RFC 3339 date-time (OpenAPI's ``format: date-time``), which DRF's ISO 8601 parser is wider than.
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})")


class FullMatchValidator(RegexValidator):
    """A RegexValidator that matches the whole value; drf-spectacular documents it as the field's pattern."""

    def __call__(self, value) -> None:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise serializers.ValidationError(f"does not match {self.regex.pattern}", code="invalid")


class StrictCharField(serializers.CharField):
    """A string, not a number made into one; kept as sent (a stripped value would no longer match the
    pattern the client was shown). ``pattern`` is matched in full."""

    def __init__(self, *, pattern: str | None = None, **kwargs) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        if pattern is not None:
            self.validators.append(FullMatchValidator(pattern))

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer: not a string, not a boolean (JSON Schema counts ``2.0`` as an integer, so it is 2)."""

    def to_internal_value(self, data):
        if isinstance(data, float) and data.is_integer():
            data = int(data)
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false``, not ``"yes"`` or ``1``."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictDateTimeField(serializers.DateTimeField):
    """An RFC 3339 date-time with its offset, as the schema's ``format: date-time`` says."""

    def to_internal_value(self, value):
        value = value.upper() if isinstance(value, str) else value  # RFC 3339 allows "t" and "z"
        if not isinstance(value, str) or _RFC3339.fullmatch(value) is None:
            self.fail("invalid", format="RFC 3339, e.g. 2030-01-31T12:00:00Z")
        return super().to_internal_value(value)


# With allow_blank, DRF returns "" before the validators run, and drf-spectacular documents it as a second
# branch (maxLength 0), so the patterns never match the empty string.


def name_field(**kwargs) -> StrictCharField:
    kwargs.setdefault("max_length", 64)
    return StrictCharField(pattern=NAME_PATTERN, **kwargs)


@extend_schema_field({"type": "string", "pattern": SUBJECT_PATTERN, "maxLength": MAX_SUBJECT_LENGTH})
class SubjectField(StrictCharField):
    """A NATS subject. The services check its syntax (operators.subjects.validate_subject, whose errors say
    what is wrong and name the service's field); SUBJECT_PATTERN documents the same rule."""


def subject_field(**kwargs) -> SubjectField:
    return SubjectField(max_length=MAX_SUBJECT_LENGTH, **kwargs)


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that refuses unknown keys, so a misspelt field is a 400 rather than silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):  # (the schema says so too: additionalProperties false, see api/schema.py)
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["unknown field"] for key in unknown})
        return super().to_internal_value(data)


def paginated_response(*, queryset, serializer_class, request: Request, view: APIView) -> Response:
    """The view's paginator (LimitOffsetPagination by default) over ``queryset``, rendered with ``serializer_class``."""
    paginator_class = getattr(view, "pagination_class", None) or api_settings.DEFAULT_PAGINATION_CLASS
    paginator = paginator_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


class _NoFormatOverride:
    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name: str):
        return getattr(api_settings, name)


class AcceptHeaderNegotiation(DefaultContentNegotiation):
    """The ``Accept`` header alone picks the renderer: DRF's ``?format=`` override is not part of the API (and
    would otherwise show up in the OpenAPI schema as a query parameter)."""

    settings = _NoFormatOverride()


class PlainTextRenderer(renderers.BaseRenderer):
    """Lets a client send ``Accept: text/plain`` to the text routes without a 406; errors stay JSON text."""

    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        return (data if isinstance(data, str) else json.dumps(data)).encode(self.charset)


# JSON first, so an error on a text route answers ``*/*`` in the one JSON error shape.
TEXT_RENDERERS = [renderers.JSONRenderer, PlainTextRenderer]


def plain_text_response(text: str, *, status: int = 200, headers: dict[str, str] | None = None) -> HttpResponse:
    # A JWT or a .creds file is a text document, not a JSON value, so DRF's renderers are bypassed on purpose.
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8", headers=headers or {})


class ServiceTransactionsMixin:
    """Opts an API view out of ``ATOMIC_REQUESTS``: its services open their own (short) transactions.

    For views whose writes all happen inside one ``@transaction.atomic`` service call (or a single insert), so a
    failure leaves nothing half-written either way. On SQLite every transaction is ``BEGIN IMMEDIATE`` and takes
    the database's one write lock, which the request-wide transaction would hold through authentication,
    parsing, lookups and rendering; the reads here run outside it (WAL readers never wait), and the lock is held
    only while the service writes. https://docs.djangoproject.com/en/5.2/topics/db/transactions/#tying-transactions-to-http-requests
    """

    request_transaction = False  # (read by the exception handler: no request transaction to roll back)

    @classmethod
    def as_view(cls, **initkwargs):
        return transaction.non_atomic_requests(super().as_view(**initkwargs))


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """LimitOffsetPagination that refuses a bad ``limit``/``offset`` with a 400 instead of ignoring it."""

    max_limit = 1000
    max_offset = 2**53  # SQLite's OFFSET is a signed 64-bit integer; beyond this a list is empty anyway

    def _non_negative(self, request: Request, key: str, default: int | None, maximum: int) -> int | None:
        raw = request.query_params.get(key)
        if raw is None:
            return default
        try:
            value = int(raw) if raw.isascii() and raw.isdigit() else -1
        except ValueError:
            value = -1
        if not 0 <= value <= maximum:
            raise serializers.ValidationError({key: [f"must be an integer from 0 to {maximum}"]})
        return value

    def get_offset(self, request: Request) -> int:
        return self._non_negative(request, self.offset_query_param, 0, self.max_offset)

    def get_limit(self, request: Request) -> int | None:
        limit = (self._non_negative(request, self.limit_query_param, self.default_limit, self.max_offset)
                 or self.default_limit)
        return min(limit, self.max_limit) if limit else limit

    def get_schema_operation_parameters(self, view) -> list[dict]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"].update(minimum=0, maximum=self.max_offset)
        return parameters


def paginated(serializer_class, name: str):
    """The OpenAPI shape of a paginated list of ``serializer_class`` (for ``extend_schema(responses=...)``)."""
    return inline_serializer(name=name, fields={
        "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True), "results": serializer_class(many=True)})
