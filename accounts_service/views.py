"""Project-level views: the landing page and liveness."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

from core.api import json_400, json_404
from operators.models import Operator


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"operator": Operator.objects.order_by("id").first()})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    """The API answers in its one error shape; the web gets Django's page."""
    if request.path.startswith("/api/"):
        return json_400(request, exception)
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """The API answers in its one error shape; the web gets a page."""
    if request.path.startswith("/api/"):
        return json_404(request, exception)
    return render(request, "404.html", status=404)
