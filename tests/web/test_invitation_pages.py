"""The invitation link: sign up as the invited email and be in the team once verified, log in and come back,
Accept when signed in as the invitee, a clear word for another email and for closed invitations; the token
stays out of the logs."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from accounts_service import services
from accounts_service.models import AuditEvent, Invitation, TeamMembership
from core.logfilters import SecretUrlFilter, secrets_redact
from tests.web.conftest import PASSWORD as PASSWORD_OF_PEOPLE
from tests.web.conftest import person

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture
def invite(owner, shared, django_capture_on_commit_callbacks):
    """Invite new@example.com to Acme as a member; returns the invitation page's path (its token inside)."""
    with django_capture_on_commit_callbacks(execute=True):
        services.invitation_create(team=shared, email="new@example.com", role="member", actor=owner,
                                   base_url="http://testserver")
    return re.search(r"https?://[^/\s]+(/invitations/\S+)", mail.outbox[-1].body).group(1)


def _token(link: str) -> str:
    return link.strip("/").split("/")[-1]


def _link(body: str) -> str:
    return re.search(r"https?://[^/\s]+(/\S+)", body).group(1)


def test_signed_out_sign_up_from_the_invitation_lands_in_the_team(client, invite, shared):
    token = _token(invite)
    page = client.get(invite).content.decode()
    assert f'href="/login/?next=/invitations/{token}/"' in page  # log in comes back here
    assert f'href="/signup/?invitation={token}"' in page and "Sign up as new@example.com" in page

    signup = client.get(f"/signup/?invitation={token}").content.decode()
    assert 'value="new@example.com"' in signup and "disabled" in signup  # prefilled, fixed
    assert f'name="invitation" value="{token}"' in signup and "join <strong>Acme</strong> as member" in signup

    # A posted email other than the invited one is ignored: the field is the invitation's.
    outbox = len(mail.outbox)
    response = client.post("/signup/", {"email": "someone.else@example.com", "password": PASSWORD,
                                        "invitation": token})
    assert response.status_code == 200 and b"Check your email" in response.content and b"Acme" in response.content
    assert not get_user_model().objects.filter(username="someone.else@example.com").exists()
    user = get_user_model().objects.get(username="new@example.com")
    assert not user.is_active and len(mail.outbox) == outbox + 1 and mail.outbox[-1].to == ["new@example.com"]
    link = _link(mail.outbox[-1].body)
    assert link.startswith("/verify/") and link.endswith(f"?invitation={token}")

    # GET (a mail scanner) joins nothing; the button's POST verifies and joins.
    assert b"You also join <strong>Acme</strong>" in client.get(link).content
    assert not TeamMembership.objects.filter(team=shared, user=user).exists()
    response = client.post(link)
    assert response.status_code == 302 and response["Location"] == f"/teams/{shared.slug}/"
    assert TeamMembership.objects.get(team=shared, user=user).role == "member"
    assert AuditEvent.objects.filter(team=shared, action="member.join", target="new@example.com").count() == 1
    assert Invitation.objects.get(team=shared, email="new@example.com").accepted_by == user
    assert b"You joined Acme as member" in client.get(response["Location"]).content
    assert client.get(invite).status_code == 404  # used


def test_sign_up_from_an_invitation_with_a_known_email_links_to_the_invitation(client, invite):
    person("new@example.com")
    response = client.post("/signup/", {"email": "x", "password": PASSWORD, "invitation": _token(invite)})
    assert b"Check your email" in response.content  # the same page as for a new email
    assert "already has a login" in mail.outbox[-1].body and f"http://testserver{invite}" in mail.outbox[-1].body


def test_sign_up_with_a_closed_invitation_says_so_and_is_a_plain_sign_up(client, invite):
    Invitation.objects.update(revoked_at=timezone.now())
    page = client.get(f"/signup/?invitation={_token(invite)}").content.decode()
    assert "withdrawn" in page and 'name="invitation"' not in page and "disabled" not in page


def test_signed_in_invitee_accepts_with_a_button(client, invite, shared):
    invitee = person("new@example.com")
    logged_in = client.post("/login/", {"email": "new@example.com", "password": PASSWORD_OF_PEOPLE, "next": invite})
    assert logged_in["Location"] == invite  # "Log in to accept" comes back to the invitation
    page = client.get(invite).content.decode()
    assert "Accept and join Acme" in page and 'name="csrfmiddlewaretoken"' in page
    assert not TeamMembership.objects.filter(team=shared, user=invitee).exists()  # GET joins nothing
    response = client.post(invite)
    assert response["Location"] == f"/teams/{shared.slug}/"
    assert TeamMembership.objects.get(team=shared, user=invitee).role == "member"
    assert AuditEvent.objects.filter(team=shared, action="member.join", actor=invitee,
                                     target="new@example.com").exists()
    # Signing up while logged in goes to the invitation rather than a blank form.
    Invitation.objects.update(accepted_at=None)  # (reopened only to see where sign-up sends a signed-in person)
    assert client.get(f"/signup/?invitation={_token(invite)}")["Location"] == invite


def test_signed_in_as_another_email_is_told_whom_it_is_for(client, invite, shared):
    stranger = person("stranger@example.com")
    client.force_login(stranger)
    page = client.get(invite).content.decode()
    assert page.count("Accept and join") == 0
    assert "This invitation is for <strong>new@example.com</strong>" in page and "stranger@example.com" in page
    assert f'name="next" value="{invite}"' in page
    refused = client.post(invite)
    assert refused.status_code == 403 and b"sent to new@example.com" in refused.content
    assert not TeamMembership.objects.filter(team=shared, user=stranger).exists()
    # Log out comes back to the invitation, signed out.
    out = client.post("/logout/", {"next": invite})
    assert out["Location"] == invite and b"Sign up as new@example.com" in client.get(invite).content
    assert client.post("/logout/", {"next": "https://evil.example/"})["Location"] == "/"


@pytest.mark.parametrize(("close", "words"), [
    ({"expires_at": timezone.now() - dt.timedelta(minutes=1)}, b"This invitation expired"),
    ({"revoked_at": timezone.now()}, b"This invitation was withdrawn"),
    ({"accepted_at": timezone.now()}, b"This invitation was already used"),
])
def test_closed_invitations_say_why_and_do_nothing(client, invite, shared, close, words):
    Invitation.objects.update(**close)
    invitee = person("new@example.com")
    for who in (None, invitee):
        if who:
            client.force_login(who)
        page = client.get(invite)
        assert page.status_code == 404 and words in page.content and b"Accept and join" not in page.content
        assert client.post(invite).status_code == 404
    assert not TeamMembership.objects.filter(team=shared, user=invitee).exists()
    assert not AuditEvent.objects.filter(action="member.join").exists()


def test_the_token_never_reaches_the_logs(client, invite, caplog):
    token = _token(invite)
    assert token not in secrets_redact(f"Not Found: {invite}") and "/invitations/[redacted]/" in secrets_redact(invite)
    assert token not in secrets_redact(f'"GET /signup/?invitation={token}&x=1 HTTP/1.1" 200')
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "%s: %s", ("Not Found", invite), None)
    assert SecretUrlFilter().filter(record) and token not in record.getMessage()
    # The console handler (where every log line goes) carries the filter.
    assert any(isinstance(f, SecretUrlFilter) for h in logging.getLogger().handlers for f in h.filters)
    # Only the digest is stored.
    assert not Invitation.objects.filter(digest=token).exists() and Invitation.objects.get().digest != token


def test_a_new_verification_mail_loses_no_invitation_the_dashboard_accepts_it(client, invite, shared):
    """The verification link asked for again (resend) no longer carries the invitation: once verified, the
    dashboard lists the invitation mailed to that email with an Accept button that joins without the mailed link."""
    client.post("/signup/", {"email": "new@example.com", "password": PASSWORD, "invitation": _token(invite)})
    client.post("/signup/resend/", {"email": "new@example.com"})
    link = _link(mail.outbox[-1].body)
    assert link.startswith("/verify/") and "invitation=" not in link
    assert client.post(link).status_code == 302
    user = get_user_model().objects.get(username="new@example.com")
    assert not TeamMembership.objects.filter(team=shared, user=user).exists()

    dashboard = client.get("/dashboard/").content.decode()
    invitation = Invitation.objects.get(team=shared, email="new@example.com", accepted_at__isnull=True)
    accept = f"/invitations/mine/{invitation.pk}/accept"
    assert f'action="{accept}"' in dashboard and "Accept and join Acme" in dashboard
    assert client.get(accept).status_code == 405  # a link scanner's GET joins nothing
    response = client.post(accept)
    assert response.status_code == 302 and response["Location"] == f"/teams/{shared.slug}/"
    assert TeamMembership.objects.get(team=shared, user=user).role == "member"
    assert AuditEvent.objects.filter(team=shared, action="member.join", target="new@example.com").count() == 1
    assert "Accept and join Acme" not in client.get("/dashboard/").content.decode()
    assert client.get(invite).status_code == 404  # the mailed link is used up too


def test_the_dashboards_accept_takes_only_an_invitation_mailed_to_you(client, invite, shared):
    invitation = Invitation.objects.get(team=shared, email="new@example.com")
    client.force_login(person("other@example.com"))
    assert client.post(f"/invitations/mine/{invitation.pk}/accept").status_code == 404  # as for an unknown id
    assert not TeamMembership.objects.filter(team=shared, user__username="other@example.com").exists()
    assert Invitation.objects.get(pk=invitation.pk).accepted_at is None


def test_gunicorns_access_log_redacts_invitation_verification_and_reset_tokens():
    """The access-log line gunicorn writes for each request (``--logger-class``, as ``manage.py up``, the image and
    the chart run it): no one-time token of any mailed link survives, the rest of the line does."""
    import datetime as _dt

    from gunicorn.config import Config

    from core.gunicorn_logging import RedactingLogger

    config = Config()
    config.set("logger_class", "core.gunicorn_logging.RedactingLogger")
    logger = RedactingLogger(config)
    secret_paths = {"/invitations/s3cr3t-inv/": "/invitations/[redacted]/",
                    "/verify/Mg/s3cr3t-ver/": "/verify/Mg/[redacted]/",
                    "/password-reset/Mg/s3cr3t-rst/": "/password-reset/Mg/[redacted]/"}
    for path, shown in secret_paths.items():
        environ = {"REQUEST_METHOD": "GET", "RAW_URI": f"{path}?invitation=s3cr3t-q", "PATH_INFO": path,
                   "QUERY_STRING": "invitation=s3cr3t-q", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
                   "HTTP_REFERER": f"http://testserver{path}"}
        response = type("Response", (), {"status": "200 OK", "sent": 12, "headers": []})()
        line = config.access_log_format % logger.atoms(response, [("REFERER", environ["HTTP_REFERER"])], environ,
                                                        _dt.timedelta(milliseconds=3))
        assert "s3cr3t" not in line, line
        assert f"GET {shown}?invitation=[redacted] HTTP/1.1" in line and '" 200 12 ' in line, line
    # What is no secret stays readable.
    assert secrets_redact("/password-reset/Mg/set-password/") == "/password-reset/Mg/set-password/"
    assert secrets_redact("/password-reset/sent/") == "/password-reset/sent/"
