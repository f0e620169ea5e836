"""Web views of the tenant domain (the dashboard grows in the web/API issue)."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from accounts_service.models import Account, Team
from operators.models import Operator


def home(request: HttpRequest) -> HttpResponse:
    operator = Operator.objects.order_by("id").first()
    accounts = Account.objects.for_user(request.user).select_related("team").order_by("name")
    return render(request, "home.html", {"operator": operator, "accounts": accounts,
                                         "teams": Team.objects.for_user(request.user)})


def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
