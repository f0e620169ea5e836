"""Web views of the dashboard: accounts (create, edit, delete, rotate a signing key) and their NATS users.

Thin: a form checks shapes, a service does the work as the person (``actor``) and checks their role, and its
refusal becomes a form error (``service_call``) or a message (``attempt``). Another team's objects are the same
404 as unknown ones (the middleware maps the selectors' NotFound).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts_service import services
from accounts_service.models import LIMIT_FIELDS, Account, Team
from accounts_service.plans import FREE_PLAN, plan_limits
from accounts_service.selectors import invitations_open_for, team_for_user_get, user_get
from accounts_service.web import forms
from accounts_service.web.helpers import attempt, is_owner, request_account, service_call
from core.errors import ApplicationError, NotFound
from operators.models import SigningKey

# ------------------------------------------------------------------------------------------------
# Dashboard and accounts
# ------------------------------------------------------------------------------------------------


def _teams(request: HttpRequest) -> list[Team]:
    return list(Team.objects.for_user(request.user).order_by("-is_personal", "name"))


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    teams = _teams(request)
    accounts = (Account.objects.for_user(request.user).select_related("team")
                .annotate(user_count=Count("users", filter=Q(users__revoked_at__isnull=True)))
                .order_by("team__name", "name"))
    by_team: dict[int, list[Account]] = {t.pk: [] for t in teams}
    for account in accounts:
        by_team.setdefault(account.team_id, []).append(account)
    return render(request, "web/dashboard.html", {
        "teams": [{"team": t, "accounts": by_team.get(t.pk, [])} for t in teams],
        "invitations": invitations_open_for(user=request.user),
        "create_form": forms.AccountCreateForm(teams=teams),
    })


@login_required
def account_create(request: HttpRequest) -> HttpResponse:
    form = forms.AccountCreateForm(request.POST or None, teams=_teams(request),
                                   initial={"team": request.GET.get("team")})
    if request.method == "POST" and form.is_valid():
        try:
            team = team_for_user_get(user=request.user, team_id=int(form.cleaned_data["team"]))
        except ValueError:
            raise NotFound("no such team") from None
        ok, account = service_call(form, services.account_create, team=team, name=form.cleaned_data["name"],
                                   description=form.cleaned_data["description"], plan=FREE_PLAN, actor=request.user)
        if ok:
            messages.success(request, f"Account {account.name} created; it is being pushed to the fleet.")
            return redirect("web:account", pk=account.public_key)
    return render(request, "web/account_create.html", {"form": form})


@login_required
def account_detail(request: HttpRequest, pk: str) -> HttpResponse:
    account = request_account(request, pk)
    users = account.users.order_by("revoked_at", "name")
    limits = [(forms.LIMIT_LABELS[f], getattr(account, f), f in forms.BYTE_LIMITS) for f in LIMIT_FIELDS]
    return render(request, "web/account_detail.html", {
        "account": account, "users": users, "limits": limits, "tab": "overview",
        "is_owner": is_owner(request, account.team),
    })


@login_required
def account_edit(request: HttpRequest, pk: str) -> HttpResponse:
    account = request_account(request, pk)
    ceilings = plan_limits(account.plan) if account.plan else None
    initial = {"name": account.name, "description": account.description,
               **{f: getattr(account, f) for f in LIMIT_FIELDS}}
    form = forms.AccountEditForm(request.POST or None, initial=initial, ceilings=ceilings)
    if request.method == "POST" and form.is_valid():
        ok, account = service_call(form, services.account_update, account=account, name=form.cleaned_data["name"],
                                   description=form.cleaned_data["description"], limits=form.limits(),
                                   actor=request.user)
        if ok:
            messages.success(request, f"Account {account.name} saved (version {account.version}); "
                                      "pushing to the fleet.")
            return redirect("web:account", pk=account.public_key)
    account = request_account(request, pk)
    keys = (SigningKey.objects.filter(owner_public_key=account.public_key)
            .annotate(user_count=Count("users", filter=Q(users__revoked_at__isnull=True))).order_by("role", "id"))
    return render(request, "web/account_edit.html", {
        "form": form, "account": account, "tab": "edit", "signing_keys": keys,
        "is_owner": is_owner(request, account.team),
    })


@login_required
@require_POST
def signing_key_rotate(request: HttpRequest, pk: str, key: str) -> HttpResponse:
    account = request_account(request, pk)
    if attempt(request, services.account_signing_key_rotate, account=account, public_key=key, actor=request.user):
        messages.success(request, "Signing key rotated: users were re-issued with the new key and the old key's JWTs "
                                  "stop working once the fleet holds the new account JWT. Download fresh .creds.")
    return redirect("web:account_edit", pk=pk)


@login_required
def account_delete(request: HttpRequest, pk: str) -> HttpResponse:
    account = request_account(request, pk)
    form = forms.ConfirmNameForm(request.POST or None, expected=account.name)
    if request.method == "POST" and form.is_valid():
        ok, _ = service_call(form, services.account_delete, account=account, actor=request.user)
        if ok:
            messages.success(request, f"Account {account.name} deleted; its users no longer connect.")
            return redirect("web:dashboard")
    return render(request, "web/account_delete.html", {"form": form, "account": account})


# ------------------------------------------------------------------------------------------------
# NATS users
# ------------------------------------------------------------------------------------------------


@login_required
def user_create(request: HttpRequest, pk: str) -> HttpResponse:
    account = request_account(request, pk)
    form = forms.NatsUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ok, user = service_call(form, services.user_create, account=account, actor=request.user,
                                **form.service_kwargs())
        if ok:
            if user.seed_id is None:  # your own key: its JWT (and a .creds template) is on the user's page
                messages.success(request, f"User {user.name} created from your public key. Pair its JWT with your "
                                          "seed: the .creds template and the command are below.")
                return redirect("web:user", pk=account.public_key, upk=user.public_key)
            messages.success(request, f"User {user.name} created. Download its .creds below.")
            return redirect(reverse("web:account", kwargs={"pk": account.public_key}) + f"#user-{user.public_key}")
    return render(request, "web/user_create.html", {"form": form, "account": account, "tab": "overview"})


@login_required
@require_POST
def user_creds(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    user = user_get(account=request_account(request, pk), public_key=upk)
    try:
        text = services.user_creds_download(user=user, actor=request.user)
    except NotFound:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:user", pk=pk, upk=upk)
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{services.creds_filename(user.name)}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
def user_detail(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    """One user: its permissions and its JWT (copy, download) with a ``.creds`` template and the one-liner that
    pairs it with the tenant's own seed. Showing the JWT is audited like a download, and never cached."""
    account = request_account(request, pk)
    user = user_get(account=account, public_key=upk)
    jwt = None
    if user.revoked_at is None:
        jwt = services.user_jwt_download(user=user, actor=request.user, via="web")
    response = render(request, "web/user_detail.html", {
        "account": account, "u": user, "jwt": jwt, "tab": "overview",
        "pairing": services.user_creds_pairing(user=user),
        "jwt_api": services.user_jwt_path(user=user),
    })
    response["Cache-Control"] = "no-store"
    return response


def _user_text_download(request: HttpRequest, pk: str, upk: str, *, template: bool) -> HttpResponse:
    user = user_get(account=request_account(request, pk), public_key=upk)
    try:
        text = services.user_jwt_download(user=user, actor=request.user, template=template, via="web")
    except NotFound:
        raise
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:user", pk=pk, upk=upk)
    pairing = services.user_creds_pairing(user=user)
    response = HttpResponse(text if text.endswith("\n") else text + "\n", content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{pairing["template" if template else "jwt"]}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def user_jwt(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    return _user_text_download(request, pk, upk, template=False)


@login_required
@require_POST
def user_creds_template(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    return _user_text_download(request, pk, upk, template=True)


def _user_button(request: HttpRequest, pk: str, upk: str, service, done: str) -> HttpResponse:
    user = user_get(account=request_account(request, pk), public_key=upk)
    if attempt(request, service, user=user, actor=request.user):
        messages.success(request, done.format(name=user.name))
    return redirect("web:account", pk=pk)


@login_required
@require_POST
def user_revoke(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    return _user_button(request, pk, upk, services.user_revoke,
                        "User {name} revoked; every node refuses its creds once it holds the new JWT.")


@login_required
@require_POST
def user_delete(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    return _user_button(request, pk, upk, services.user_delete, "User {name} deleted (and revoked).")
