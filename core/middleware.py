"""The web edge: ``core.errors``' refusals that a view did not turn into a form error, and the pages' CSP."""

from __future__ import annotations

from django.conf import settings
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


class ContentSecurityPolicyMiddleware:
    """Sends ``settings.CSP_POLICY`` as the Content-Security-Policy of every response that has none yet (an empty
    setting sends none). The console's pages carry no inline script, event handler, ``javascript:`` URL or style
    attribute (tests/web/test_csp.py scans templates/), so the policy allows only this origin's own files and a
    script injected into a page does not run. JSON and static responses get it too: there it does no harm.
    https://developer.mozilla.org/en-US/docs/Web/HTTP/Reference/Headers/Content-Security-Policy"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CSP_POLICY  # read per response, so a test's (or an operator's) override applies at once
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
