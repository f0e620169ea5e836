"""Web views: sign-up and login, teams and invitations, the dashboard of accounts and users, API tokens.

Views are thin: a form checks shapes, a service does the work and raises ApplicationError, which becomes a
form error (``service_call``). A service that fails rolls back its own transaction, so a bad input leaves
nothing half-created. Another team's objects are the same 404 as unknown ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts_service import people, services
from accounts_service.models import LIMIT_FIELDS, Account, ApiToken, AuditEvent, NatsUser, Team, TeamMembership
from accounts_service.plans import FREE_PLAN, plan_limits
from accounts_service.selectors import account_for_user_get, team_for_user_get, user_get
from accounts_service.web import forms
from core.errors import ApplicationError, NotFound
from core.http import status_for
from operators.models import SigningKey

# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------


def service_call(form, fn: Callable[..., Any], /, **kwargs) -> tuple[bool, Any]:
    """Run a service; an ApplicationError becomes an error on the field it names (or on the form)."""
    try:
        return True, fn(**kwargs)
    except NotFound as exc:  # another team's object or an unknown one: the same 404
        raise Http404(exc.message) from None
    except ApplicationError as exc:
        field = exc.extra.get("field")
        if field not in form.fields:
            fields = [f for f in exc.extra.get("fields", []) if f in form.fields]
            field = fields[0] if len(fields) == 1 else None
        form.add_error(field, exc.message)
        return False, None


def client_ip(request: HttpRequest) -> str:
    # Behind a proxy, set the proxy to overwrite REMOTE_ADDR (gunicorn --forwarded-allow-ips); a client-sent
    # X-Forwarded-For must never pick the bucket a failed login counts in.
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


def account_or_404(request: HttpRequest, pk: str) -> Account:
    try:
        return account_for_user_get(user=request.user, public_key=pk)
    except NotFound:
        raise Http404("no such account") from None


def team_or_404(request: HttpRequest, slug: str) -> Team:
    try:
        return team_for_user_get(user=request.user, slug=slug)
    except NotFound:
        raise Http404("no such team") from None


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


# ------------------------------------------------------------------------------------------------
# Sign-up, verification, login, logout, password reset
# ------------------------------------------------------------------------------------------------

SIGNUP_SENT = "signup_sent"


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("web:dashboard")
    form = forms.SignupForm(request.POST or None)
    if request.method == "POST":
        try:
            people.attempt_guard(key=f"signup:ip:{client_ip(request)}", rule="signup",
                                 message="Too many sign-ups from your address; try again later.")
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            return render(request, "web/signup.html", {"form": form}, status=429)
        if form.is_valid():
            people.signup_start(email=form.cleaned_data["email"], password=form.cleaned_data["password"],
                                base_url=base_url(request))
            email = people.email_normalize(form.cleaned_data["email"])
            return render(request, "web/check_email.html", {"email": email})
    return render(request, "web/signup.html", {"form": form})


def resend_verification(request: HttpRequest) -> HttpResponse:
    form = forms.ResendVerificationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            people.attempt_guard(key=f"signup:ip:{client_ip(request)}", rule="signup",
                                 message="Too many requests from your address; try again later.")
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            return render(request, "web/resend.html", {"form": form}, status=429)
        people.verification_resend(email=form.cleaned_data["email"], base_url=base_url(request))
        return render(request, "web/check_email.html", {"email": people.email_normalize(form.cleaned_data["email"])})
    return render(request, "web/resend.html", {"form": form})


def verify(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    # GET only shows a button: mail scanners that follow links must not activate accounts.
    if request.method != "POST":
        return render(request, "web/verify.html", {})
    try:
        user = people.signup_verify(uidb64=uidb64, token=token)
    except ApplicationError as exc:
        return render(request, "web/verify.html", {"error": exc.message}, status=400)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, "Your email is verified. Your team has a default account on the free plan.")
    return redirect("web:dashboard")


def login_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(_safe_next(request, reverse("web:dashboard")))
    form = forms.LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        email, password = form.cleaned_data["email"], form.cleaned_data["password"]
        ip = client_ip(request)
        blocked = people.login_blocked(email=email, client_ip=ip)
        user = None if blocked else people.login_authenticate(request=request, email=email, password=password)
        if user is not None:
            people.login_succeeded(email=email)
            login(request, user)
            return redirect(_safe_next(request, reverse("web:dashboard")))
        if blocked is None:
            people.login_failed(email=email, client_ip=ip)
            blocked = people.login_blocked(email=email, client_ip=ip)
        if blocked is not None:
            minutes = max(1, round((blocked - timezone.now()).total_seconds() / 60))
            plural = "s" if minutes > 1 else ""
            form.add_error(None, f"Too many failed attempts. Try again in {minutes} minute{plural}, "
                                 "or reset your password.")
            status = 429
        else:
            # The same words for an unknown email, a wrong password and an unverified email.
            form.add_error(None, "That email and password do not match a verified login.")
    return render(request, "web/login.html", {"form": form, "next": _safe_next(request, "")}, status=status)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect(settings.LOGOUT_REDIRECT_URL)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset: the same answer for every email; limited per client address."""

    template_name = "web/password_reset.html"
    email_template_name = "emails/password_reset.txt"
    subject_template_name = "emails/password_reset_subject.txt"
    success_url = reverse_lazy("web:password_reset_done")

    def form_valid(self, form):
        try:
            people.attempt_guard(key=f"reset:ip:{client_ip(self.request)}", rule="password_reset",
                                 message="Too many reset requests from your address; try again later.")
        except ApplicationError as exc:
            form.add_error(None, exc.message)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)


# ------------------------------------------------------------------------------------------------
# Dashboard and accounts
# ------------------------------------------------------------------------------------------------


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    teams = list(Team.objects.for_user(request.user).order_by("-is_personal", "name"))
    accounts = (Account.objects.for_user(request.user).select_related("team")
                .annotate(user_count=Count("users", filter=Q(users__revoked_at__isnull=True)))
                .order_by("team__name", "name"))
    by_team: dict[int, list[Account]] = {t.pk: [] for t in teams}
    for account in accounts:
        by_team.setdefault(account.team_id, []).append(account)
    return render(request, "web/dashboard.html", {
        "teams": [{"team": t, "accounts": by_team.get(t.pk, [])} for t in teams],
        "invitations": people.invitations_open_for(user=request.user),
        "create_form": forms.AccountCreateForm(teams=teams),
    })


@login_required
def account_create(request: HttpRequest) -> HttpResponse:
    teams = list(Team.objects.for_user(request.user).order_by("-is_personal", "name"))
    form = forms.AccountCreateForm(request.POST or None, teams=teams, initial={"team": request.GET.get("team")})
    if request.method == "POST" and form.is_valid():
        team = _team_by_pk(request, form.cleaned_data["team"])
        ok, account = service_call(form, services.account_create, team=team, name=form.cleaned_data["name"],
                                   description=form.cleaned_data["description"], plan=FREE_PLAN)
        if ok:
            messages.success(request, f"Account {account.name} created; it is being pushed to the fleet.")
            return redirect("web:account", pk=account.public_key)
    return render(request, "web/account_create.html", {"form": form})


def _team_by_pk(request: HttpRequest, team_id: str) -> Team:
    try:
        return team_for_user_get(user=request.user, team_id=int(team_id))
    except (NotFound, ValueError):
        raise Http404("no such team") from None


@login_required
def account_detail(request: HttpRequest, pk: str) -> HttpResponse:
    account = account_or_404(request, pk)
    users = account.users.order_by("revoked_at", "name")
    limits = [(forms.LIMIT_LABELS[f], getattr(account, f), f in forms.BYTE_LIMITS) for f in LIMIT_FIELDS]
    return render(request, "web/account_detail.html", {
        "account": account, "users": users, "limits": limits, "tab": "overview",
        "is_owner": _is_owner(request, account.team),
    })


def _is_owner(request: HttpRequest, team: Team) -> bool:
    return TeamMembership.objects.filter(team=team, user=request.user, role=TeamMembership.Role.OWNER).exists()


@login_required
def account_edit(request: HttpRequest, pk: str) -> HttpResponse:
    account = account_or_404(request, pk)
    ceilings = plan_limits(account.plan) if account.plan else None
    initial = {"name": account.name, "description": account.description,
               **{f: getattr(account, f) for f in LIMIT_FIELDS}}
    form = forms.AccountEditForm(request.POST or None, initial=initial, ceilings=ceilings)
    if request.method == "POST" and form.is_valid():
        ok, account = service_call(form, services.account_update, account=account, name=form.cleaned_data["name"],
                                   description=form.cleaned_data["description"], limits=form.limits())
        if ok:
            messages.success(request, f"Account {account.name} saved (version {account.version}); "
                                      "pushing to the fleet.")
            return redirect("web:account", pk=account.public_key)
    account = account_or_404(request, pk)
    keys = (SigningKey.objects.filter(owner_public_key=account.public_key)
            .annotate(user_count=Count("users", filter=Q(users__revoked_at__isnull=True))).order_by("role", "id"))
    return render(request, "web/account_edit.html", {
        "form": form, "account": account, "tab": "edit", "signing_keys": keys,
        "is_owner": _is_owner(request, account.team),
    })


@login_required
@require_POST
def signing_key_rotate(request: HttpRequest, pk: str, key: str) -> HttpResponse:
    account = account_or_404(request, pk)
    if attempt(request, people.signing_key_rotate_by, account=account, public_key=key, by=request.user):
        messages.success(request, "Signing key rotated: users were re-issued with the new key and the old key's JWTs "
                                  "stop working once the fleet holds the new account JWT. Download fresh .creds.")
    return redirect("web:account_edit", pk=pk)


@login_required
def account_delete(request: HttpRequest, pk: str) -> HttpResponse:
    account = account_or_404(request, pk)
    form = forms.ConfirmNameForm(request.POST or None, expected=account.name)
    if request.method == "POST" and form.is_valid():
        ok, _ = service_call(form, people.account_delete_by, account=account, by=request.user)
        if ok:
            messages.success(request, f"Account {account.name} deleted; its users no longer connect.")
            return redirect("web:dashboard")
    return render(request, "web/account_delete.html", {"form": form, "account": account})


# ------------------------------------------------------------------------------------------------
# NATS users
# ------------------------------------------------------------------------------------------------


def _nats_user(account: Account, upk: str) -> NatsUser:
    try:
        return user_get(account=account, public_key=upk)
    except NotFound:
        raise Http404("no such user") from None


@login_required
def user_create(request: HttpRequest, pk: str) -> HttpResponse:
    account = account_or_404(request, pk)
    form = forms.NatsUserForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ok, user = service_call(form, services.user_create, account=account, **form.service_kwargs())
        if ok:
            messages.success(request, f"User {user.name} created."
                             + (" Download its .creds below." if user.seed_id else ""))
            return redirect(reverse("web:account", kwargs={"pk": account.public_key}) + f"#user-{user.public_key}")
    return render(request, "web/user_create.html", {"form": form, "account": account, "tab": "overview"})


@login_required
@require_POST
def user_creds(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    account = account_or_404(request, pk)
    user = _nats_user(account, upk)
    try:
        text = services.user_creds_download(user=user, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("web:account", pk=pk)
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{services.creds_filename(user.name)}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def user_revoke(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    account = account_or_404(request, pk)
    user = _nats_user(account, upk)
    if attempt(request, services.user_revoke, user=user, actor=request.user):
        messages.success(request, f"User {user.name} revoked; every node refuses its creds once it holds the new JWT.")
    return redirect("web:account", pk=pk)


@login_required
@require_POST
def user_delete(request: HttpRequest, pk: str, upk: str) -> HttpResponse:
    account = account_or_404(request, pk)
    user = _nats_user(account, upk)
    services.user_delete(user=user)
    messages.success(request, f"User {user.name} deleted (and revoked).")
    return redirect("web:account", pk=pk)


# ------------------------------------------------------------------------------------------------
# Teams, members, invitations, audit log
# ------------------------------------------------------------------------------------------------


@login_required
def teams(request: HttpRequest) -> HttpResponse:
    form = forms.TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ok, team = service_call(form, people.team_create_with_account, name=form.cleaned_data["name"],
                                owner=request.user)
        if ok:
            messages.success(request, f"Team {team.name} created with a default account on the free plan.")
            return redirect("web:team", slug=team.slug)
    memberships = (TeamMembership.objects.filter(user=request.user).select_related("team")
                   .annotate(members=Count("team__memberships", distinct=True),
                             accounts=Count("team__accounts", distinct=True))
                   .order_by("-team__is_personal", "team__name"))
    return render(request, "web/teams.html", {"memberships": memberships, "form": form,
                                              "invitations": people.invitations_open_for(user=request.user)})


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = team_or_404(request, slug)
    is_owner = _is_owner(request, team)
    form = forms.InviteForm(request.POST or None)
    if request.method == "POST" and is_owner and form.is_valid():
        ok, invitation = service_call(form, people.invitation_create, team=team, email=form.cleaned_data["email"],
                                      role=form.cleaned_data["role"], invited_by=request.user,
                                      base_url=base_url(request))
        if ok:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("web:team", slug=team.slug)
    audit = Paginator(AuditEvent.objects.for_team(team).select_related("actor"), 25).get_page(request.GET.get("page"))
    return render(request, "web/team_detail.html", {
        "team": team, "is_owner": is_owner, "form": form, "audit": audit,
        "memberships": team.memberships.select_related("user").order_by("role", "user__email"),
        "invitations": team.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True,
                                               expires_at__gt=timezone.now()).order_by("-created_at"),
        "accounts": team.accounts.order_by("name"),
    })


def _one(qs, pk: int, what: str):
    """One row of a team-scoped queryset, or a 404."""
    found = qs.filter(pk=pk).first()
    if found is None:
        raise Http404(f"no such {what}")
    return found


def attempt(request: HttpRequest, fn: Callable[..., Any], /, **kwargs) -> bool:
    """Run a service for a button (no form): a refusal becomes an error message on the page it returns to."""
    try:
        fn(**kwargs)
    except NotFound as exc:  # another team's object or an unknown one: the same 404
        raise Http404(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return False
    return True


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    team = team_or_404(request, slug)
    membership = _one(team.memberships.select_related("user"), membership_id, "member")
    if not attempt(request, people.member_remove, team=team, membership=membership, by=request.user):
        return redirect("web:team", slug=slug)
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {team.name}.")
        return redirect("web:teams")
    messages.success(request, f"{membership.user.email or membership.user.get_username()} removed from {team.name}.")
    return redirect("web:team", slug=slug)


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    team = team_or_404(request, slug)
    membership = _one(team.memberships, membership_id, "member")
    if attempt(request, people.member_role_set, team=team, membership=membership, role=request.POST.get("role", ""),
                by=request.user):
        messages.success(request, "Role changed.")
    return redirect("web:team", slug=slug)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    team = team_or_404(request, slug)
    invitation = _one(team.invitations, invitation_id, "invitation")
    if attempt(request, people.invitation_revoke, invitation=invitation, by=request.user):
        messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("web:team", slug=slug)


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = people.invitation_get(token=token)
    except NotFound as exc:
        return render(request, "web/invitation.html", {"error": exc.message}, status=404)
    if not request.user.is_authenticated:
        return render(request, "web/invitation.html", {"invitation": invitation, "next": request.path})
    if request.method == "POST":
        try:
            people.invitation_accept(token=token, user=request.user)
        except ApplicationError as exc:
            return render(request, "web/invitation.html", {"invitation": invitation, "error": exc.message},
                          status=status_for(exc))
        messages.success(request, f"You joined {invitation.team.name} as {invitation.role}.")
        return redirect("web:team", slug=invitation.team.slug)
    return render(request, "web/invitation.html", {"invitation": invitation})


# ------------------------------------------------------------------------------------------------
# API tokens
# ------------------------------------------------------------------------------------------------


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    form = forms.TokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        ok, result = service_call(form, services.api_token_create, user=request.user, name=form.cleaned_data["name"])
        if ok:
            # Shown in this response only: never stored, never in a redirect or a message.
            created = {"record": result[0], "token": result[1]}
            form = forms.TokenForm()
    response = render(request, "web/tokens.html", {
        "form": form, "created": created,
        "tokens": ApiToken.objects.filter(user=request.user).order_by("revoked_at", "-created_at"),
    })
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = _one(ApiToken.objects.filter(user=request.user), token_id, "token")
    services.api_token_revoke(token=token)
    messages.success(request, f"Token {token.name or token.prefix} revoked.")
    return redirect("web:tokens")
