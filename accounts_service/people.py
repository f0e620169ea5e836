"""Writes about people: sign-up and email verification, login lockout and rate limits.

Answers never tell whether an email is known: sign-up, login, lockout and password reset say the same thing
for every address, and what differs goes only into the mail sent to that address.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import transaction
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts_service.mail import mail_send
from accounts_service.models import AttemptCounter
from accounts_service.services.members import email_normalize
from accounts_service.services.teams import team_default_account_ensure, team_personal_ensure
from core.errors import Invalid, RateLimited

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


def signup_start(*, email: str, password: str, base_url: str, invitation_token: str | None = None) -> None:
    """Register ``email`` (inactive until verified) and mail the verification link. A known email gets a
    mail saying so instead; the caller shows the same page either way. ``invitation_token`` (a sign-up from an
    invitation to this email) rides in the link, so verifying also accepts it; a known email's mail links to it."""
    email = email_normalize(email)
    User = get_user_model()
    existing = User.objects.filter(username=email).first() or User.objects.filter(email__iexact=email).first()
    if existing is not None and existing.is_active:
        # Hash the password anyway (and drop it): a known email must cost what a new one costs, or the answer's
        # timing tells which emails have a login (~0.02 s against ~0.6 s before).
        make_password(password)
        mail_send(to=email, subject="You already have a natsctl login", template="emails/signup_existing.txt",
                  context={"base_url": base_url, "email": email, "invitation": invitation_token})
        return
    with transaction.atomic():
        user = existing or User(username=email, email=email, is_active=False)
        user.set_password(password)
        user.save()
    _verification_mail(user=user, email=email, base_url=base_url, invitation_token=invitation_token)


def _verification_mail(*, user, email: str, base_url: str, invitation_token: str | None = None) -> None:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    mail_send(to=email, subject="Verify your email for natsctl", template="emails/verify.txt",
              context={"base_url": base_url, "email": email, "uid": uid, "token": verification_tokens.make_token(user),
                       "invitation": invitation_token})


def verification_resend(*, email: str, base_url: str) -> None:
    """Mail a new verification link if ``email`` is registered and not yet verified; nothing otherwise."""
    email = email_normalize(email)
    user = get_user_model().objects.filter(username=email, is_active=False).first()
    if user is None:
        return
    _verification_mail(user=user, email=email, base_url=base_url)


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
        raise Invalid("this verification link is not valid") from None
    user = get_user_model().objects.select_for_update().filter(pk=pk).first()
    if user is None or not verification_tokens.check_token(user, token):
        raise Invalid("this verification link is not valid or was already used")
    user.is_active = True
    user.save(update_fields=["is_active"])
    team_default_account_ensure(team=team_personal_ensure(user=user))
    return user
