"""The one error shape of the API: ``{"message": ..., "extra": {...}}``."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from operators.errors import ApplicationError


def _json_errors(context) -> None:
    # Errors are JSON even on the text routes (a JWT, a .creds file), whatever the client accepted.
    request = context.get("request")
    if request is not None:
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"


def exception_handler(exc, context):
    _json_errors(context)
    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "extra": exc.extra}, status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    detail = response.data
    if isinstance(detail, dict) and "detail" in detail:
        message, extra = str(detail["detail"]), {}
    elif isinstance(exc, exceptions.ValidationError):
        message, extra = "invalid input", {"fields": detail}
    else:
        message, extra = str(detail), {}
    response.data = {"message": message, "extra": extra}
    return response


def json_404(request, exception=None) -> JsonResponse:
    """A URL that matches no route (e.g. a non-numeric id) answers in the one error shape, not an HTML page."""
    return JsonResponse({"message": "not found", "extra": {}}, status=404)
