"""Web views of teams: members, roles and invitations, the audit log, and a person's API tokens.

Owners invite, change roles and remove members; the services check it (``accounts_service.rights``), so a
member's attempt gets the service's refusal as a message.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts_service import services
from accounts_service.models import ApiToken, AuditEvent, TeamMembership
from accounts_service.selectors import api_token_list, audit_list, invitations_open_for, team_list_for_user
from accounts_service.web import forms
from accounts_service.web.helpers import attempt, base_url, is_owner, one, request_team, service_call
from core.errors import ApplicationError, NotFound
from core.http import status_for

# ------------------------------------------------------------------------------------------------
# Teams, members, invitations, audit log
# ------------------------------------------------------------------------------------------------


@login_required
def teams(request: HttpRequest) -> HttpResponse:
    form = forms.TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        ok, team = service_call(form, services.team_create, name=form.cleaned_data["name"], actor=request.user,
                                default_account=True)
        if ok:
            messages.success(request, f"Team {team.name} created with a default account on the free plan.")
            return redirect("web:team", slug=team.slug)
    memberships = (TeamMembership.objects.filter(user=request.user).select_related("team")
                   .annotate(members=Count("team__memberships", distinct=True),
                             accounts=Count("team__accounts", distinct=True))
                   .order_by("-team__is_personal", "team__name"))
    return render(request, "web/teams.html", {"memberships": memberships, "form": form,
                                              "invitations": invitations_open_for(user=request.user)})


@login_required
def team_detail(request: HttpRequest, slug: str) -> HttpResponse:
    team = request_team(request, slug)
    form = forms.InviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():  # (owners only: the service says so to a member)
        ok, invitation = service_call(form, services.invitation_create, team=team, email=form.cleaned_data["email"],
                                      role=form.cleaned_data["role"], actor=request.user, base_url=base_url(request))
        if ok:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect("web:team", slug=team.slug)
    audit_filter = {k: request.GET[k][:150] for k in ("action", "target", "actor") if request.GET.get(k)}
    audit = Paginator(audit_list(team=team, **audit_filter), 25).get_page(request.GET.get("page"))
    return render(request, "web/team_detail.html", {
        "team": team, "is_owner": is_owner(request, team), "form": form, "audit": audit,
        "audit_filter": audit_filter, "audit_actions": AuditEvent.Action.choices,
        "audit_query": urlencode(audit_filter) + "&" if audit_filter else "",
        "memberships": team.memberships.select_related("user").order_by("role", "user__email"),
        "invitations": team.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True,
                                               expires_at__gt=timezone.now()).order_by("-created_at"),
        "accounts": team.accounts.order_by("name"),
    })


@login_required
@require_POST
def member_remove(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    team = request_team(request, slug)
    membership = one(team.memberships.select_related("user"), membership_id, "member")
    if not attempt(request, services.member_remove, team=team, membership=membership, actor=request.user):
        return redirect("web:team", slug=slug)
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {team.name}.")
        return redirect("web:teams")
    messages.success(request, f"{membership.user.email or membership.user.get_username()} removed from {team.name}.")
    return redirect("web:team", slug=slug)


@login_required
@require_POST
def member_role(request: HttpRequest, slug: str, membership_id: int) -> HttpResponse:
    team = request_team(request, slug)
    membership = one(team.memberships, membership_id, "member")
    if attempt(request, services.member_role_set, team=team, membership=membership, role=request.POST.get("role", ""),
               actor=request.user):
        messages.success(request, "Role changed.")
    return redirect("web:team", slug=slug)


@login_required
@require_POST
def invitation_revoke(request: HttpRequest, slug: str, invitation_id: int) -> HttpResponse:
    team = request_team(request, slug)
    invitation = one(team.invitations, invitation_id, "invitation")
    if attempt(request, services.invitation_revoke, invitation=invitation, actor=request.user):
        messages.success(request, f"Invitation to {invitation.email} revoked.")
    return redirect("web:team", slug=slug)


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The page an invitee lands on. Signed out: log in (back here) or sign up as the invited email, the invitation
    carried along. Signed in as the invited email: an Accept button. Signed in as another email: what to do.
    Closed invitations say why and do nothing. The token is in this URL only; it is never logged
    (``core.logfilters.SecretUrlFilter``) and only its digest is stored."""
    try:
        invitation = services.invitation_get(token=token)
    except NotFound as exc:
        return render(request, "web/invitation.html", {"error": exc.message}, status=404)
    context = {"invitation": invitation, "token": token, "next": request.path}
    if not request.user.is_authenticated:
        return render(request, "web/invitation.html", context)
    context["other_email"] = services.email_normalize(request.user.email or request.user.get_username()) \
        != invitation.email
    if request.method == "POST":
        try:
            services.invitation_accept(token=token, actor=request.user)
        except ApplicationError as exc:
            return render(request, "web/invitation.html", {**context, "error": exc.message}, status=status_for(exc))
        messages.success(request, f"You joined {invitation.team.name} as {invitation.role}.")
        return redirect("web:team", slug=invitation.team.slug)
    return render(request, "web/invitation.html", context)


@login_required
@require_POST
def invitation_accept_own(request: HttpRequest, invitation_id: int) -> HttpResponse:
    """The Accept button of an invitation listed on the dashboard or the teams page: open invitations mailed to
    the signed-in (so verified) email, accepted without the mailed link; any other id is a 404."""
    membership = services.invitation_accept_own(invitation_id=invitation_id, actor=request.user)
    messages.success(request, f"You joined {membership.team.name} as {membership.role}.")
    return redirect("web:team", slug=membership.team.slug)


# ------------------------------------------------------------------------------------------------
# API tokens
# ------------------------------------------------------------------------------------------------


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    teams = list(team_list_for_user(user=request.user))
    form = forms.TokenForm(request.POST or None, teams=teams)
    created = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        team = next((t for t in teams if t.pk == data["team"]), None)
        ok, result = service_call(form, services.api_token_create, user=request.user, actor=request.user,
                                  name=data["name"], scope=data["scope"] or "write", team=team,
                                  expires_in_days=data["expires_in_days"])
        if ok:
            # Shown in this response only: never stored, never in a redirect or a message.
            created = {"record": result[0], "token": result[1]}
            form = forms.TokenForm(teams=teams)
    response = render(request, "web/tokens.html", {
        "form": form, "created": created,
        "tokens": api_token_list(user=request.user), "now": timezone.now(),
    })
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = one(ApiToken.objects.filter(user=request.user), token_id, "token")
    services.api_token_revoke(token=token, actor=request.user)
    messages.success(request, f"Token {token.name or token.prefix} revoked.")
    return redirect("web:tokens")
