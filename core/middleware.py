"""The web edge of ``core.errors``: a service's refusal that a view did not turn into a form error."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from core.errors import ApplicationError, NotFound
from core.http import error_body, status_for


class ApplicationErrorMiddleware:
    """Maps an uncaught ApplicationError to its status once, so views need no NotFound -> 404 wrappers:
    a NotFound is Django's 404 (another tenant's object and an unknown one look the same), any other kind
    a page (or, under ``/api/``, the API's JSON shape) with the kind's status and the error's message."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ApplicationError):
            return None
        if isinstance(exception, NotFound):
            raise Http404(exception.message) from exception
        if request.path.startswith("/api/"):
            return JsonResponse(error_body(exception), status=status_for(exception))
        return render(request, "error.html", {"error": exception}, status=status_for(exception))
