"""Web views of people: sign-up and email verification, login and logout, password reset.

Answers never tell whether an email is known (``accounts_service.people``); attempts are counted per client
address and per email.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts_service import people, services
from accounts_service.web import forms
from accounts_service.web.helpers import base_url, client_ip
from core.errors import ApplicationError, NotFound


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


SIGNUP_SENT = "signup_sent"


def _over_limit(form, *, key: str, rule: str, message: str) -> bool:
    """Count this attempt against ``key``; past the rule's limit the form says ``message`` (the page is a 429)."""
    try:
        people.attempt_guard(key=key, rule=rule, message=message)
    except ApplicationError as exc:
        form.add_error(None, exc.message)
        return True
    return False


def _invitation_for(token: str):
    """The open invitation behind a token a sign-up carries, with the reason it cannot be used (one of the two)."""
    if not token:
        return None, None
    try:
        return services.invitation_get(token=token), None
    except NotFound as exc:
        return None, exc.message


def signup(request: HttpRequest) -> HttpResponse:
    # An invitation rides along (``?invitation=`` from the invitation page, then a hidden field): the email is the
    # invited one, fixed (a disabled field ignores what is posted), and the verification link carries the token on,
    # so verifying the address also joins the team.
    token = (request.POST.get("invitation") or request.GET.get("invitation") or "")[:200]
    invitation, invitation_error = _invitation_for(token)
    if request.user.is_authenticated:
        return redirect("web:invitation", token=token) if invitation else redirect("web:dashboard")
    form = forms.SignupForm(request.POST or None)
    if invitation is not None:
        form.fields["email"].disabled = True
        form.fields["email"].initial = invitation.email
        form.fields["email"].widget.attrs.pop("autofocus", None)
        form.fields["password"].widget.attrs["autofocus"] = True
    context = {"form": form, "invitation": invitation, "token": token if invitation else "",
               "invitation_error": invitation_error}
    if request.method == "POST":
        if _over_limit(form, key=f"signup:ip:{client_ip(request)}", rule="signup",
                       message="Too many sign-ups from your address; try again later."):
            return render(request, "web/signup.html", context, status=429)
        if form.is_valid():
            people.signup_start(email=form.cleaned_data["email"], password=form.cleaned_data["password"],
                                base_url=base_url(request), invitation_token=token if invitation else None)
            email = people.email_normalize(form.cleaned_data["email"])
            return render(request, "web/check_email.html", {"email": email, "invitation": invitation})
    return render(request, "web/signup.html", context)


def resend_verification(request: HttpRequest) -> HttpResponse:
    form = forms.ResendVerificationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _over_limit(form, key=f"signup:ip:{client_ip(request)}", rule="signup",
                       message="Too many requests from your address; try again later."):
            return render(request, "web/resend.html", {"form": form}, status=429)
        people.verification_resend(email=form.cleaned_data["email"], base_url=base_url(request))
        return render(request, "web/check_email.html", {"email": people.email_normalize(form.cleaned_data["email"])})
    return render(request, "web/resend.html", {"form": form})


def verify(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    # GET only shows a button: mail scanners that follow links must not activate accounts (or join teams).
    invitation_token = request.GET.get("invitation", "")[:200]
    invitation, _ = _invitation_for(invitation_token)
    if request.method != "POST":
        return render(request, "web/verify.html", {"invitation": invitation})
    try:
        user = people.signup_verify(uidb64=uidb64, token=token)
    except ApplicationError as exc:
        return render(request, "web/verify.html", {"error": exc.message}, status=400)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    messages.success(request, "Your email is verified. Your team has a default account on the free plan.")
    if invitation_token:
        # The address is proven now; the service still checks it is the invited one (and audits the join).
        try:
            membership = services.invitation_accept(token=invitation_token, actor=user)
        except ApplicationError as exc:
            messages.error(request, exc.message[:1].upper() + exc.message[1:] + ".")
        else:
            messages.success(request, f"You joined {membership.team.name} as {membership.role}.")
            return redirect("web:team", slug=membership.team.slug)
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
    # ``next`` (this site only) lets a page send someone back after logging out, e.g. an invitation for another email.
    return redirect(_safe_next(request, reverse(settings.LOGOUT_REDIRECT_URL)))


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset: the same answer for every email; limited per client address."""

    template_name = "web/password_reset.html"
    email_template_name = "emails/password_reset.txt"
    subject_template_name = "emails/password_reset_subject.txt"
    success_url = reverse_lazy("web:password_reset_done")

    def form_valid(self, form):
        if _over_limit(form, key=f"reset:ip:{client_ip(self.request)}", rule="password_reset",
                       message="Too many reset requests from your address; try again later."):
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's reset link; setting the new password also revokes the person's API tokens (whoever knew the old
    password may have made one), as the reset mail says."""

    template_name = "web/password_reset_confirm.html"
    success_url = reverse_lazy("web:password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.api_tokens_revoke_all(user=form.user, actor=form.user, reason="password reset")
        return response
