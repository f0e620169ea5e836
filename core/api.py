"""The API edge of ``core.errors``: every error in the one shape ``{"message", "code", "extra"}``."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, parsers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import ApplicationError
from core.http import error_body, status_for


def _json_errors(context) -> None:
    # Errors are JSON even on the text routes (a JWT, a .creds file), whatever the client accepted.
    request = context.get("request")
    if request is not None:
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"


def _rollback(context) -> None:
    # As DRF's own handler does: an error rolls back the request's transaction (ATOMIC_REQUESTS). A view that
    # opted out (ServiceTransactionsMixin) has none, and an atomic block around it is not the request's.
    if getattr(context.get("view"), "request_transaction", True):
        set_rollback()


def exception_handler(exc, context):
    """DRF's ``EXCEPTION_HANDLER``: an ApplicationError by its kind, DRF's own errors in the same shape."""
    _json_errors(context)
    if isinstance(exc, ApplicationError):
        _rollback(context)
        return Response(error_body(exc), status=status_for(exc))
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None  # a server error: Django's handler answers 500
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = f"{int(exc.wait)}"
    detail = exc.detail if isinstance(exc.detail, list | dict) else {"detail": exc.detail}
    if isinstance(detail, dict) and "detail" in detail:
        message, extra = str(detail["detail"]), {}
    elif isinstance(exc, exceptions.ValidationError):
        message, extra = "invalid input", {"fields": detail}
    else:
        message, extra = str(detail), {}
    _rollback(context)
    return Response({"message": message, "code": exc.default_code, "extra": extra}, status=exc.status_code,
                    headers=headers)


def json_404(request, exception=None) -> JsonResponse:
    """A URL that matches no route (e.g. a non-numeric id) answers in the one error shape, not an HTML page."""
    return JsonResponse({"message": "not found", "code": "not_found", "extra": {}}, status=404)


def json_400(request, exception=None) -> JsonResponse:
    """A request Django refuses before any view (a Host header not in ALLOWED_HOSTS, a malformed multipart body)
    answers in the one error shape under /api/, not an HTML page."""
    return JsonResponse({"message": "bad request: the Host header or the request itself is not acceptable",
                         "code": "invalid", "extra": {}}, status=400)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, except that a body nested too deeply for Python's parser (``json`` recurses) is the 400
    every other malformed body gets, not a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
