"""Tenant-facing web pages of the fleet (propagation, connect, diagnose, leafnode configs, home region) and the probes;
the staff pages are staff_views.py."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps

import redis
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts_service.models import NatsUser
from accounts_service.selectors import account_for_user_get, user_get
from accounts_service.services import creds_filename
from accounts_service.tenants import (
    connect_accounts,
    connect_users,
)
from billing.selectors import leafnodes_current
from broker_gateway.connection_test import user_connection_test, user_example_subjects
from broker_gateway.diagnose import user_diagnose
from broker_gateway.examples import example_snippets, example_subjects
from broker_gateway.leafnodes import LEAF_CONFIG_FILENAME, user_leafnode_config
from broker_gateway.models import BrokerNode
from broker_gateway.nodes import regions_list
from broker_gateway.selectors import (
    account_propagation,
    connect_plan,
    healthy_nodes,
)
from broker_gateway.services import home_region_set
from core.errors import ApplicationError, NotFound
from core.http import status_for

log = logging.getLogger(__name__)

# The supervisor confirms health every 5 s, so polling faster shows nothing new.
REFRESH_SECONDS = 5
# Each node's /varz gets this long; the probes run at once, so a dead node costs the page at most this.
VARZ_TIMEOUT = 0.5
PAGE_SIZE = 50


def _login_required_fragment(view: Callable) -> Callable:
    """For fragments a page polls: answer 403 instead of redirecting to a login page, which the poller
    would otherwise paste into the page when the session ends."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _staff_fragment(view: Callable) -> Callable:
    """Like ``_login_required_fragment``, for staff."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _from_iat(iat: int | None) -> datetime | None:
    """A JWT ``iat`` (Unix seconds) as an aware datetime for the templates' date filters."""
    return datetime.fromtimestamp(iat, tz=UTC) if iat else None


def _ago(when: datetime | None) -> str | None:
    """Short relative time: the supervisor confirms health every few seconds, so seconds matter here."""
    if when is None:
        return None
    seconds = max(0, int((timezone.now() - when).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{timesince(when)} ago"


# ------------------------------------------------------------------------------------------------
# Tenant-facing: propagation fragment and the connect panel
# ------------------------------------------------------------------------------------------------


@_login_required_fragment
@require_GET
def account_propagation_fragment(request: HttpRequest, account_pk: str) -> HttpResponse:
    """Per node, the account's desired version against the one held: embedded (and polled) by the account page."""
    try:
        account = account_for_user_get(user=request.user, public_key=account_pk)
    except NotFound:
        return render(request, "broker/propagation_missing.html", status=404)
    status = account_propagation(account=account)
    for r in status["nodes"]:
        r["held_issued"] = _from_iat(r["held_iat"])
    pending = [r["node"] for r in status["nodes"] if r["healthy"] and not r["in_sync"]]
    return render(request, "broker/propagation.html", {"account": account, "status": status, "pending": pending,
                                                       "desired_ago": _ago(_from_iat(status["desired"]["iat"])),
                                                       "leafnodes": leafnodes_current(
                                                           account_public_key=account.public_key)})


@login_required
@require_POST
def user_leafnode(request: HttpRequest, account_pk: str, upk: str) -> HttpResponse:
    """The account page's "Download leaf.conf": the same config as the API's (audited, never cached); a refusal
    goes back to the page as a message."""
    account = account_for_user_get(user=request.user, public_key=account_pk)
    user = user_get(account=account, public_key=upk)
    try:
        issued = user_leafnode_config(user=user, actor=request.user)
    except NotFound:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:account", pk=account_pk)
    response = HttpResponse(issued.config, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{LEAF_CONFIG_FILENAME}"'
    response["Cache-Control"] = "no-store"
    return response


_CHOSEN_BY = {"query": "you asked for it", "home_region": "the account's home region",
              "connections": "where the account's clients are connected now", "default": "the fleet's first region"}


class DiagnoseForm(forms.Form):
    """Paste a .creds or pick a user; the pasted creds are never rendered back."""

    creds = forms.CharField(required=False, max_length=16 * 1024, strip=False,
                            widget=forms.Textarea(attrs={"rows": 8, "autocomplete": "off", "spellcheck": "false"}),
                            help_text="the .creds text: its seed is only checked against the JWT, never stored")
    pick = forms.ChoiceField(required=False, label="or one of your users")
    subject = forms.CharField(required=False, max_length=512, help_text="optional: may the user publish/subscribe it?")
    action = forms.ChoiceField(required=False, choices=[("", "—"), ("pub", "publish"), ("sub", "subscribe")])

    def __init__(self, *args, users=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pick"].choices = [("", "—")] + [
            (f"{u.account.public_key}:{u.public_key}", f"{u.name} ({u.account.name})") for u in users]


@login_required
@require_http_methods(["GET", "POST"])
def diagnose(request: HttpRequest) -> HttpResponse:
    """"Why can't my client connect?": the checklist of ``broker_gateway.diagnose``, first failing cause on top."""
    users = list(NatsUser.objects.for_user(request.user).select_related("account").order_by("account__name", "name")
                 [:500])
    result, error, status = None, None, 200
    form = DiagnoseForm(request.POST or None, users=users, initial={"pick": request.GET.get("user", "")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        account_pk, _, user_pk = (data["pick"] or "").partition(":")
        try:
            result = user_diagnose(actor=request.user, creds=data["creds"] or None, account=account_pk or None,
                                   user=user_pk or None, subject=data["subject"] or None,
                                   action=data["action"] or None)
        except ApplicationError as exc:
            error, status = exc.message, status_for(exc)
    elif request.method == "POST":
        status = 400
    if form.is_bound:  # never render the pasted creds back: the page must not hold the seed
        form.data = form.data.copy()
        form.data["creds"] = ""
    response = render(request, "broker/diagnose.html", {"form": form, "result": result, "error": error}, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
def connect(request: HttpRequest) -> HttpResponse:
    """The NATS URLs (the closest region's first) and copy-paste client examples built from one user's own
    permissions; with ``?account=<pk>`` (one's own), for that account, ``?user=<pk>`` picks the user (else its
    first), ``?region=`` puts a region first. A POST runs the connection test as that user."""
    account, users = None, []
    if request.GET.get("account"):
        account = account_for_user_get(user=request.user, public_key=request.GET["account"])  # else a 404
        users = connect_users(account=account)
    try:
        plan = connect_plan(account=account, region=request.GET.get("region") or None)
    except NotFound as exc:
        messages.error(request, exc.message)
        plan = connect_plan(account=account)
    servers = plan["servers"]
    wanted = request.POST.get("user") or request.GET.get("user")
    example_user = next((u for u in users if u.public_key == wanted), None)
    if example_user is None and wanted and account is not None:
        example_user = user_get(account=account, public_key=wanted)  # past the list's first page; else a 404
    example_user = example_user or (users[0] if users else None)
    subjects = user_example_subjects(user=example_user) if example_user else example_subjects()
    creds_file = creds_filename(example_user.name) if example_user else "USER.creds"
    context_name = slugify(account.name) if account and slugify(account.name) else "natsctl"
    test_result = None
    if request.method == "POST" and example_user is not None:
        try:
            test_result = user_connection_test(user=example_user, actor=request.user)
        except NotFound:
            raise
        except ApplicationError as exc:
            messages.error(request, exc.message)
    return render(request, "broker/connect.html", {
        "servers": servers, "account": account, "users": users, "example_user": example_user, "plan": plan,
        "subjects": subjects, "test_result": test_result,
        "snippets": example_snippets(servers=servers, creds_file=creds_file, context=context_name,
                                     subjects=subjects),
        "chosen_by": _CHOSEN_BY.get(plan["chosen_by"], ""),
        "all_regions": regions_list(),
        "accounts": connect_accounts(user=request.user)[:PAGE_SIZE],
        # Names the examples use: shell- and file-safe, so they paste as they are.
        "servers_arg": ",".join(servers) or "nats://HOST:4222",
        "creds_file": creds_file,
        "context_name": context_name,
    })


@login_required
@require_POST
def account_home_region(request: HttpRequest, account_pk: str) -> HttpResponse:
    """Set (or clear) the account's home region from the connect page."""
    account = account_for_user_get(user=request.user, public_key=account_pk)  # another team's: a 404
    try:
        account = home_region_set(account=account, actor=request.user, region=request.POST.get("region", ""))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{account.name}: home region {account.home_region}." if account.home_region
                         else f"{account.name}: no home region; clients go where the account's clients are.")
    return redirect(f"{reverse('connect')}?account={account.public_key}")


# ------------------------------------------------------------------------------------------------
# Probes
# ------------------------------------------------------------------------------------------------


def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database answers, Redis (the Celery broker) answers, and at least one node is healthy."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the message says which
        checks["database"] = f"error: {exc}"
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        client.close()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc}"
    try:
        running = BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).count()
        healthy = len(healthy_nodes())
        checks["fleet"] = f"{healthy}/{running} nodes healthy" if healthy else f"error: 0/{running} nodes healthy"
    except Exception as exc:
        checks["fleet"] = f"error: {exc}"
    ready = all(not v.startswith("error") for v in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)
