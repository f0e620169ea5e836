"""Writes about people: sign-up and email verification, login lockout and rate limits, teams and invitations.

Answers never tell whether an email is known: sign-up, login, lockout and password reset say the same thing
for every address, and what differs goes only into the mail sent to that address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts_service.models import Account, AttemptCounter, AuditEvent, Invitation, Team, TeamMembership
from accounts_service.plans import FREE_PLAN
from accounts_service.services import (
    account_create,
    account_delete,
    account_plan_set,
    account_signing_key_rotate,
    audit_record,
    team_create,
    team_personal_ensure,
)
from core.errors import ApplicationError, Conflict, Forbidden, NotFound, RateLimited

DEFAULT_ACCOUNT_NAME = "default"

# ------------------------------------------------------------------------------------------------
# Attempt counters: fixed windows in the database, so every gunicorn worker sees the same count
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """At most ``limit`` attempts per ``window``; past it, refuse for ``block``."""

    limit: int
    window: dt.timedelta
    block: dt.timedelta


def _rule(name: str) -> Rule:
    limit, window, block = settings.WEB_ATTEMPT_RULES[name]
    return Rule(limit=limit, window=dt.timedelta(seconds=window), block=dt.timedelta(seconds=block))


def attempts_blocked_until(*, key: str) -> dt.datetime | None:
    """When ``key``'s block ends, or None if it is not blocked."""
    until = AttemptCounter.objects.filter(key=key).values_list("blocked_until", flat=True).first()
    return until if until is not None and until > timezone.now() else None


@transaction.atomic
def attempt_record(*, key: str, rule: str) -> dt.datetime | None:
    """Count one attempt against ``key``; returns the end of the block this attempt caused or extended."""
    policy, now = _rule(rule), timezone.now()
    counter, _ = AttemptCounter.objects.select_for_update().get_or_create(
        key=key[:200], defaults={"window_started_at": now}
    )
    if now - counter.window_started_at > policy.window:
        counter.count, counter.window_started_at = 0, now
    counter.count += 1
    if counter.count >= policy.limit:
        counter.blocked_until = now + policy.block
    counter.save()
    return counter.blocked_until if counter.blocked_until and counter.blocked_until > now else None


def attempts_clear(*, key: str) -> None:
    AttemptCounter.objects.filter(key=key[:200]).delete()


def attempt_guard(*, key: str, rule: str, message: str) -> None:
    """Refuse with a 429 while ``key`` is blocked; otherwise count the attempt (the limit-th starts a block)."""
    until = attempts_blocked_until(key=key)
    if until is not None:
        raise RateLimited(message, extra={"retry_after": int((until - timezone.now()).total_seconds()) + 1})
    attempt_record(key=key, rule=rule)


def login_keys(*, email: str, client_ip: str) -> list[str]:
    return [f"login:email:{email.strip().lower()}", f"login:ip:{client_ip}"]


def login_blocked(*, email: str, client_ip: str) -> dt.datetime | None:
    ends = [until for key in login_keys(email=email, client_ip=client_ip)
            if (until := attempts_blocked_until(key=key)) is not None]
    return max(ends) if ends else None


def login_failed(*, email: str, client_ip: str) -> None:
    """A failed login counts against the email (known or not: the answer must not differ) and the address."""
    email_key, ip_key = login_keys(email=email, client_ip=client_ip)
    attempt_record(key=email_key, rule="login_email")
    attempt_record(key=ip_key, rule="login_ip")


def login_succeeded(*, email: str) -> None:
    attempts_clear(key=f"login:email:{email.strip().lower()}")


# ------------------------------------------------------------------------------------------------
# Sign-up and email verification
# ------------------------------------------------------------------------------------------------


class _VerificationTokens(PasswordResetTokenGenerator):
    """Verification links: same construction as password-reset links, another salt, so neither works as
    the other; a link dies once the user is active (``is_active`` is in the hash)."""

    key_salt = "accounts_service.people.verification"

    def _make_hash_value(self, user, timestamp):
        return f"{user.pk}{user.password}{user.is_active}{timestamp}{user.email}"


verification_tokens = _VerificationTokens()


def email_normalize(email: str) -> str:
    return get_user_model().objects.normalize_email(email.strip()).lower()


def _mail(*, to: str, subject: str, template: str, context: dict) -> None:
    body = render_to_string(template, context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to], fail_silently=False)


def signup_start(*, email: str, password: str, base_url: str) -> None:
    """Register ``email`` (inactive until verified) and mail the verification link. A known email gets a
    mail saying so instead; the caller shows the same page either way."""
    email = email_normalize(email)
    User = get_user_model()
    existing = User.objects.filter(username=email).first() or User.objects.filter(email__iexact=email).first()
    if existing is not None and existing.is_active:
        _mail(to=email, subject="You already have a natsctl login", template="emails/signup_existing.txt",
              context={"base_url": base_url, "email": email})
        return
    with transaction.atomic():
        user = existing or User(username=email, email=email, is_active=False)
        user.set_password(password)
        user.save()
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    _mail(to=email, subject="Verify your email for natsctl", template="emails/verify.txt",
          context={"base_url": base_url, "email": email, "uid": uid, "token": verification_tokens.make_token(user)})


def verification_resend(*, email: str, base_url: str) -> None:
    """Mail a new verification link if ``email`` is registered and not yet verified; nothing otherwise."""
    email = email_normalize(email)
    user = get_user_model().objects.filter(username=email, is_active=False).first()
    if user is None:
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    _mail(to=email, subject="Verify your email for natsctl", template="emails/verify.txt",
          context={"base_url": base_url, "email": email, "uid": uid, "token": verification_tokens.make_token(user)})


def login_authenticate(*, request, email: str, password: str):
    """The active user with this email and password, or None (unknown, wrong and unverified look alike).
    People who sign up log in by email; staff made with ``createsuperuser`` may use their username."""
    username = email_normalize(email) if "@" in email else email.strip()
    return authenticate(request, username=username, password=password)


@transaction.atomic
def signup_verify(*, uidb64: str, token: str):
    """Activate the user the link was made for and give the personal team its default account."""
    try:
        pk = int(force_str(urlsafe_base64_decode(uidb64)))
    except (TypeError, ValueError, OverflowError):
        raise ApplicationError("this verification link is not valid") from None
    user = get_user_model().objects.select_for_update().filter(pk=pk).first()
    if user is None or not verification_tokens.check_token(user, token):
        raise ApplicationError("this verification link is not valid or was already used")
    user.is_active = True
    user.save(update_fields=["is_active"])
    team_default_account_ensure(team=team_personal_ensure(user=user))
    return user


# ------------------------------------------------------------------------------------------------
# Teams and members
# ------------------------------------------------------------------------------------------------


def team_default_account_ensure(*, team: Team) -> Account | None:
    """A new team's first account, on the free plan (only if the team has none yet)."""
    if team.accounts.exists():
        return None
    return account_create(team=team, name=DEFAULT_ACCOUNT_NAME, description="created with the team", plan=FREE_PLAN)


@transaction.atomic
def team_create_with_account(*, name: str, owner) -> Team:
    team = team_create(name=name, owner=owner)
    team_default_account_ensure(team=team)
    return team


@transaction.atomic
def account_delete_by(*, account: Account, by) -> None:
    """An owner deletes one of the team's accounts; recorded in the team's audit log."""
    owner_required(team=account.team, user=by)
    audit_record(action=AuditEvent.Action.ACCOUNT_DELETE, actor=by, team=account.team, target=account.public_key,
                 detail={"name": account.name})
    account_delete(account=account)


@transaction.atomic
def account_plan_change_by(*, account: Account, plan: str, by) -> Account:
    """An owner moves one of the team's accounts to another plan (re-signed and pushed; recorded in the audit
    log). Billing re-evaluates the account's quota when the change commits."""
    owner_required(team=account.team, user=by)
    previous = account.plan
    account = account_plan_set(account=account, plan=plan)
    if previous != plan:
        audit_record(action=AuditEvent.Action.PLAN_CHANGE, actor=by, team=account.team, target=account.public_key,
                     detail={"name": account.name, "from": previous, "to": plan})
    return account


def signing_key_rotate_by(*, account: Account, public_key: str, by) -> None:
    """An owner rotates one of the account's signing keys (audit-logged by the service)."""
    owner_required(team=account.team, user=by)
    account_signing_key_rotate(account=account, public_key=public_key, actor=by)


def membership_get(*, team: Team, user) -> TeamMembership:
    membership = TeamMembership.objects.filter(team=team, user=user).first()
    if membership is None:
        raise NotFound(f"no team {team.slug}")
    return membership


def owner_required(*, team: Team, user) -> None:
    if membership_get(team=team, user=user).role != TeamMembership.Role.OWNER:
        raise Forbidden("only the team's owners may do this")


def _invitation_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@transaction.atomic
def invitation_create(*, team: Team, email: str, role: str, invited_by, base_url: str) -> Invitation:
    """Invite ``email`` to ``team`` (owners only); mails a link that works once, for that email, for 7 days."""
    owner_required(team=team, user=invited_by)
    if team.is_personal:
        raise ApplicationError("a personal team has no other members; create a team to invite people")
    email = email_normalize(email)
    if role not in TeamMembership.Role.values:
        raise ApplicationError(f"role must be one of {', '.join(TeamMembership.Role.values)}", extra={"field": "role"})
    if TeamMembership.objects.filter(team=team, user__email__iexact=email).exists():
        raise Conflict(f"{email} is already a member", extra={"field": "email"})
    Invitation.objects.filter(team=team, email=email, accepted_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token = secrets.token_urlsafe(24)
    invitation = Invitation.objects.create(
        team=team, email=email, role=role, digest=_invitation_digest(token), invited_by=invited_by,
        expires_at=timezone.now() + dt.timedelta(days=settings.WEB_INVITATION_DAYS),
    )
    audit_record(action=AuditEvent.Action.MEMBER_INVITE, actor=invited_by, team=team, target=email,
                 detail={"role": role})
    transaction.on_commit(lambda: _mail(
        to=email, subject=f"You are invited to {team.name} on natsctl", template="emails/invitation.txt",
        context={"base_url": base_url, "team": team, "role": role, "token": token,
                 "inviter": invited_by.email or invited_by.get_username()},
    ))
    return invitation


def invitation_get(*, token: str) -> Invitation:
    """The open invitation behind ``token`` (expired, revoked, used and unknown are the same 404)."""
    invitation = (Invitation.objects.select_related("team")
                  .filter(digest=_invitation_digest(token), accepted_at__isnull=True, revoked_at__isnull=True,
                          expires_at__gt=timezone.now()).first())
    if invitation is None:
        raise NotFound("this invitation is not valid: it expired, was revoked or was already used")
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user) -> TeamMembership:
    invitation = invitation_get(token=token)
    if email_normalize(user.email or user.get_username()) != invitation.email:
        raise Forbidden(f"this invitation was sent to {invitation.email}; log in with that email to accept it")
    membership, created = TeamMembership.objects.get_or_create(team=invitation.team, user=user,
                                                               defaults={"role": invitation.role})
    Invitation.objects.filter(pk=invitation.pk).update(accepted_at=timezone.now(), accepted_by=user)
    if created:
        audit_record(action=AuditEvent.Action.MEMBER_JOIN, actor=user, team=invitation.team,
                     target=invitation.email, detail={"role": invitation.role})
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, by) -> None:
    owner_required(team=invitation.team, user=by)
    Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(revoked_at=timezone.now())


def invitations_open_for(*, user) -> list[Invitation]:
    email = (user.email or "").lower()
    if not email:
        return []
    return list(Invitation.objects.select_related("team")
                .filter(email=email, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())
                .exclude(team__memberships__user=user))


@transaction.atomic
def member_remove(*, team: Team, membership: TeamMembership, by) -> None:
    """An owner removes a member, or a member leaves; the last owner cannot leave the team ownerless."""
    if membership.team_id != team.pk:
        raise NotFound("no such member")
    if membership.user_id != by.pk:
        owner_required(team=team, user=by)
    if team.is_personal:
        raise ApplicationError("you cannot leave your personal team")
    owners = TeamMembership.objects.select_for_update().filter(team=team, role=TeamMembership.Role.OWNER)
    if membership.role == TeamMembership.Role.OWNER and owners.count() <= 1:
        raise Conflict("a team needs at least one owner: make someone else owner first")
    membership.delete()
    audit_record(action=AuditEvent.Action.MEMBER_REMOVE, actor=by, team=team,
                 target=membership.user.email or membership.user.get_username())


@transaction.atomic
def member_role_set(*, team: Team, membership: TeamMembership, role: str, by) -> TeamMembership:
    owner_required(team=team, user=by)
    if role not in TeamMembership.Role.values:
        raise ApplicationError(f"role must be one of {', '.join(TeamMembership.Role.values)}", extra={"field": "role"})
    if membership.team_id != team.pk:
        raise NotFound("no such member")
    owners = TeamMembership.objects.select_for_update().filter(team=team, role=TeamMembership.Role.OWNER)
    if membership.role == TeamMembership.Role.OWNER and role != TeamMembership.Role.OWNER and owners.count() <= 1:
        raise Conflict("a team needs at least one owner")
    TeamMembership.objects.filter(pk=membership.pk).update(role=role)
    membership.role = role
    return membership

