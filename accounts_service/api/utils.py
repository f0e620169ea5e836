"""Helpers shared by the REST API views: strict input, pagination, plain-text documents."""

from __future__ import annotations

import json

from django.http import HttpResponse
from rest_framework import renderers, serializers
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
