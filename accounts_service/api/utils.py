"""Helpers shared by the REST API views: strict input, pagination, plain-text documents."""

from __future__ import annotations

import json

from django.http import HttpResponse
from drf_spectacular.utils import inline_serializer
from rest_framework import renderers, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that refuses unknown keys, so a misspelt field is a 400 rather than silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
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


def plain_text_response(text: str, *, headers: dict[str, str] | None = None) -> HttpResponse:
    # A JWT or a .creds file is a text document, not a JSON value, so DRF's renderers are bypassed on purpose.
    return HttpResponse(text, content_type="text/plain; charset=utf-8", headers=headers or {})


class StrictLimitOffsetPagination(LimitOffsetPagination):
    """LimitOffsetPagination that refuses a bad ``limit``/``offset`` with a 400 instead of ignoring it."""

    max_limit = 1000

    def _non_negative(self, request: Request, key: str, default: int | None) -> int | None:
        raw = request.query_params.get(key)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            raise serializers.ValidationError({key: ["must be a non-negative integer"]})
        return value

    def get_offset(self, request: Request) -> int:
        return self._non_negative(request, self.offset_query_param, 0)

    def get_limit(self, request: Request) -> int | None:
        limit = self._non_negative(request, self.limit_query_param, self.default_limit) or self.default_limit
        return min(limit, self.max_limit) if limit else limit


def paginated(serializer_class, name: str):
    """The OpenAPI shape of a paginated list of ``serializer_class`` (for ``extend_schema(responses=...)``)."""
    return inline_serializer(name=name, fields={
        "count": serializers.IntegerField(), "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True), "results": serializer_class(many=True)})
