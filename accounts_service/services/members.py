"""Writes of team membership: invitations (owners invite, the invited email accepts), roles, leaving."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts_service.mail import mail_send
from accounts_service.models import AuditEvent, Invitation, Team, TeamMembership
from accounts_service.rights import owner_required
from accounts_service.services.audit import audit_record
from core.errors import Conflict, Forbidden, Invalid, NotFound


def email_normalize(email: str) -> str:
    return get_user_model().objects.normalize_email(email.strip()).lower()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _role_check(role: str) -> str:
    if role not in TeamMembership.Role.values:
        raise Invalid(f"role must be one of {', '.join(TeamMembership.Role.values)}", extra={"field": "role"})
    return role


@transaction.atomic
def invitation_create(*, team: Team, email: str, role: str, actor: Any, base_url: str) -> Invitation:
    """Invite ``email`` to ``team`` (owners only); mails a link that works once, for that email, for 7 days."""
    owner_required(team=team, actor=actor)
    if team.is_personal:
        raise Invalid("a personal team has no other members; create a team to invite people", code="personal_team")
    email = email_normalize(email)
    _role_check(role)
    if TeamMembership.objects.filter(team=team, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member", extra={"field": "email"}, code="already_member")
    Invitation.objects.filter(team=team, email=email, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token = secrets.token_urlsafe(24)
    invitation = Invitation.objects.create(
        team=team, email=email, role=role, digest=_digest(token), invited_by=actor if actor.pk else None,
        expires_at=timezone.now() + dt.timedelta(days=settings.WEB_INVITATION_DAYS),
    )
    audit_record(action=AuditEvent.Action.MEMBER_INVITE, actor=actor, team=team, target=email, detail={"role": role})
    transaction.on_commit(lambda: mail_send(
        to=email, subject=f"You are invited to {team.name} on natsctl", template="emails/invitation.txt",
        context={"base_url": base_url, "team": team, "role": role, "token": token,
                 "inviter": actor.email or actor.get_username()},
    ))
    return invitation


def invitation_get(*, token: str) -> Invitation:
    """The open invitation behind ``token``; a closed one is a 404 that says why (expired, withdrawn or used):
    whoever holds the token was sent the invitation, so the reason tells them nothing new. An unknown token
    gets the generic answer."""
    invitation = Invitation.objects.select_related("team").filter(digest=_digest(token)).first()
    if invitation is not None and invitation.accepted_at is None and invitation.revoked_at is None \
            and invitation.expires_at > timezone.now():
        return invitation
    if invitation is None:
        message = "this invitation is not valid: it expired, was revoked or was already used"
    elif invitation.accepted_at is not None:
        message = "this invitation was already used; if it was you, the team is in your list of teams"
    elif invitation.revoked_at is not None:
        message = ("this invitation was withdrawn or replaced by a newer one; use the latest invitation mail or ask "
                   "the team's owner")
    else:
        message = "this invitation expired; ask the team's owner for a new one"
    raise NotFound(message, code="invitation_invalid")


@transaction.atomic
def invitation_accept(*, token: str, actor: Any) -> TeamMembership:
    """``actor`` (the person the invitation was mailed to) joins the team with the invitation's role."""
    return _join(invitation=invitation_get(token=token), actor=actor)


@transaction.atomic
def invitation_accept_own(*, invitation_id: int, actor: Any) -> TeamMembership:
    """Accept an open invitation mailed to ``actor``'s own email, by its id (the dashboard's Accept button and
    ``POST /api/v1/invitations/{id}/accept``): a login is only active once its email is verified, so the address
    is proven without the mailed token. This is what a person who asked for a new verification mail (whose link
    no longer carries the invitation) or lost the invitation mail accepts with. Another email's invitation, or
    a closed one, is the same 404 as an unknown id."""
    email = email_normalize(actor.email or actor.get_username())
    invitation = Invitation.objects.select_related("team").filter(
        pk=invitation_id, email=email, accepted_at__isnull=True, revoked_at__isnull=True,
        expires_at__gt=timezone.now()).first()
    if invitation is None:
        raise NotFound("no open invitation with this id was sent to your email", code="invitation_not_found")
    return _join(invitation=invitation, actor=actor)


@transaction.atomic
def _join(*, invitation: Invitation, actor: Any) -> TeamMembership:
    if email_normalize(actor.email or actor.get_username()) != invitation.email:
        raise Forbidden(f"this invitation was sent to {invitation.email}; log in with that email to accept it",
                        code="invitation_other_email")
    membership, created = TeamMembership.objects.get_or_create(team=invitation.team, user=actor,
                                                               defaults={"role": invitation.role})
    Invitation.objects.filter(pk=invitation.pk).update(accepted_at=timezone.now(), accepted_by=actor)
    if created:
        audit_record(action=AuditEvent.Action.MEMBER_JOIN, actor=actor, team=invitation.team,
                     target=invitation.email, detail={"role": invitation.role})
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Any) -> None:
    owner_required(team=invitation.team_id, actor=actor)
    if Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True).update(
            revoked_at=timezone.now()):
        audit_record(action=AuditEvent.Action.INVITE_REVOKE, actor=actor, team_id=invitation.team_id,
                     target=invitation.email, detail={"role": invitation.role})


def _last_owner_check(*, team: Team, membership: TeamMembership, message: str) -> None:
    owners = TeamMembership.objects.select_for_update().filter(team=team, role=TeamMembership.Role.OWNER)
    if membership.role == TeamMembership.Role.OWNER and owners.count() <= 1:
        raise Conflict(message, code="last_owner")


@transaction.atomic
def member_remove(*, team: Team, membership: TeamMembership, actor: Any) -> None:
    """An owner removes a member, or a member leaves; the last owner cannot leave the team ownerless."""
    if membership.team_id != team.pk:
        raise NotFound("no such member")
    if membership.user_id != actor.pk:
        owner_required(team=team, actor=actor)
    if team.is_personal:
        raise Invalid("you cannot leave your personal team", code="personal_team")
    _last_owner_check(team=team, membership=membership,
                      message="a team needs at least one owner: make someone else owner first")
    membership.delete()
    audit_record(action=AuditEvent.Action.MEMBER_REMOVE, actor=actor, team=team,
                 target=membership.user.email or membership.user.get_username())


@transaction.atomic
def member_role_set(*, team: Team, membership: TeamMembership, role: str, actor: Any) -> TeamMembership:
    owner_required(team=team, actor=actor)
    _role_check(role)
    if membership.team_id != team.pk:
        raise NotFound("no such member")
    if role != TeamMembership.Role.OWNER:
        _last_owner_check(team=team, membership=membership, message="a team needs at least one owner")
    previous = membership.role
    TeamMembership.objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    if previous != role:
        audit_record(action=AuditEvent.Action.MEMBER_ROLE, actor=actor, team=team,
                     target=membership.user.email or membership.user.get_username(),
                     detail={"from": previous, "to": role})
    return membership
