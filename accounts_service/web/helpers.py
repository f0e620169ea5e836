"""What the web views share: running a service for a form or a button, the request's scoped objects.

A service's NotFound is never caught here: ``core.middleware`` turns it into the 404 page, the same for another
team's object and an unknown one. Any other refusal becomes a form error or an error message on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts_service.models import Account, Team
from accounts_service.rights import OWNER, role_of
from accounts_service.selectors import account_for_user_get, team_for_user_get
from core.errors import ApplicationError, NotFound


def service_call(form, fn: Callable[..., Any], /, **kwargs) -> tuple[bool, Any]:
    """Run a service; an ApplicationError becomes an error on the field it names (or on the form)."""
    try:
        return True, fn(**kwargs)
    except NotFound:
        raise
    except ApplicationError as exc:
        field = exc.extra.get("field")
        if field not in form.fields:
            fields = [f for f in exc.extra.get("fields", []) if f in form.fields]
            field = fields[0] if len(fields) == 1 else None
        form.add_error(field, exc.message)
        return False, None


def attempt(request: HttpRequest, fn: Callable[..., Any], /, **kwargs) -> bool:
    """Run a service for a button (no form): a refusal becomes an error message on the page it returns to."""
    try:
        fn(**kwargs)
    except NotFound:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return False
    return True


def client_ip(request: HttpRequest) -> str:
    # Behind a proxy, set the proxy to overwrite REMOTE_ADDR (gunicorn --forwarded-allow-ips); a client-sent
    # X-Forwarded-For must never pick the bucket a failed login counts in.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def request_account(request: HttpRequest, pk: str) -> Account:
    """An account of one of the person's teams (another team's is a NotFound, so a 404)."""
    return account_for_user_get(user=request.user, public_key=pk)


def request_team(request: HttpRequest, slug: str) -> Team:
    return team_for_user_get(user=request.user, slug=slug)


def is_owner(request: HttpRequest, team: Team) -> bool:
    return role_of(actor=request.user, team_id=team.pk) == OWNER


def one(qs: QuerySet, pk: int, what: str):
    """One row of an already scoped queryset, or a NotFound."""
    found = qs.filter(pk=pk).first()
    if found is None:
        raise NotFound(f"no such {what}")
    return found
