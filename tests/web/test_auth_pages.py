"""Web sign-up, verification, login lockout, rate limits and password reset: the same answer for every email."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

from accounts_service.models import Account, AttemptCounter, Team

pytestmark = pytest.mark.django_db


def _link(body: str) -> str:
    match = re.search(r"https?://[^/\s]+(/\S+)", body)
    assert match, body
    return match.group(1)


def _signup(client, email="ada@example.com", password="correct horse battery"):
    return client.post("/signup/", {"email": email, "password": password})


def test_signup_verify_login_gives_a_default_free_account(client, operator_setup):
    response = _signup(client, email="Ada@Example.com")
    assert response.status_code == 200
    assert b"Check your email" in response.content
    user = get_user_model().objects.get(username="ada@example.com")
    assert not user.is_active
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ada@example.com"]
    link = _link(mail.outbox[0].body)
    assert link.startswith("/verify/")

    # GET only shows a button (mail scanners must not activate); POST verifies and logs in.
    assert client.get(link).status_code == 200
    assert not get_user_model().objects.get(pk=user.pk).is_active
    response = client.post(link)
    assert response.status_code == 302 and response["Location"] == "/dashboard/"
    user.refresh_from_db()
    assert user.is_active
    team = Team.objects.get(is_personal=True, memberships__user=user)
    account = Account.objects.get(team=team)
    assert account.name == "default" and account.plan == "free" and account.conn == 50
    page = client.get("/dashboard/")
    assert page.status_code == 200 and b"default" in page.content

    # The link works once.
    client.logout()
    assert client.post(link).status_code == 400

    client.post("/logout/")
    response = client.post("/login/", {"email": "ada@example.com", "password": "correct horse battery"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/"


def test_signup_with_a_known_email_answers_the_same_and_changes_nothing(client, operator_setup):
    User = get_user_model()
    known = User.objects.create_user(username="bob@example.com", email="bob@example.com", password="old pass 123!x")
    new = _signup(client, email="carol@example.com").content.decode()
    again = _signup(client, email="bob@example.com").content.decode()
    assert new.replace("carol", "X") == again.replace("bob", "X")
    known.refresh_from_db()
    assert known.check_password("old pass 123!x")
    assert "already has a login" in mail.outbox[1].body and mail.outbox[1].to == ["bob@example.com"]


def test_signup_form_errors_create_nothing(client, operator_setup):
    response = client.post("/signup/", {"email": "not-an-email", "password": "123"})
    assert response.status_code == 200
    assert b"Enter a valid email address" in response.content
    response = client.post("/signup/", {"email": "dan@example.com", "password": "12345678"})
    assert b"entirely numeric" in response.content or b"too common" in response.content
    assert not get_user_model().objects.filter(username="dan@example.com").exists()
    assert mail.outbox == []


def test_signup_is_rate_limited_per_address(client, operator_setup, settings):
    settings.WEB_ATTEMPT_RULES = {**settings.WEB_ATTEMPT_RULES, "signup": (3, 3600, 3600)}
    for i in range(3):
        assert _signup(client, email=f"u{i}@example.com").status_code == 200
    response = _signup(client, email="u9@example.com")
    assert response.status_code == 429
    assert b"Too many sign-ups" in response.content
    assert not get_user_model().objects.filter(username="u9@example.com").exists()


def test_unverified_wrong_and_unknown_logins_look_alike(client, operator_setup):
    _signup(client, email="eve@example.com")
    get_user_model().objects.create_user(username="fay@example.com", email="fay@example.com", password="right pass 9!")
    bodies = []
    for email, password in [("eve@example.com", "correct horse battery"), ("fay@example.com", "wrong"),
                            ("nobody@example.com", "whatever")]:
        response = client.post("/login/", {"email": email, "password": password})
        assert response.status_code == 200
        bodies.append(re.sub(r'value="[^"]*"', "", response.content.decode()))
    assert bodies[0] == bodies[1] == bodies[2]
    assert "do not match a verified login" in bodies[0]


def test_login_lockout_after_repeated_failures_for_known_and_unknown_emails(client, operator_setup, settings):
    settings.WEB_ATTEMPT_RULES = {**settings.WEB_ATTEMPT_RULES, "login_email": (3, 900, 900)}
    get_user_model().objects.create_user(username="gil@example.com", email="gil@example.com", password="right pass 9!")
    statuses = {}
    for email in ("gil@example.com", "ghost@example.com"):
        codes = [client.post("/login/", {"email": email, "password": "wrong"}).status_code for _ in range(4)]
        statuses[email] = codes
    assert statuses["gil@example.com"] == statuses["ghost@example.com"] == [200, 200, 429, 429]
    # Locked: even the right password is refused, with the same words.
    response = client.post("/login/", {"email": "gil@example.com", "password": "right pass 9!"})
    assert response.status_code == 429 and b"Too many failed attempts" in response.content
    assert "_auth_user_id" not in client.session
    # The lock ends; a success clears the count.
    AttemptCounter.objects.update(blocked_until=None, count=0)
    response = client.post("/login/", {"email": "gil@example.com", "password": "right pass 9!"})
    assert response.status_code == 302
    assert not AttemptCounter.objects.filter(key="login:email:gil@example.com").exists()


def test_login_next_is_kept_only_for_local_urls(client, operator_setup):
    get_user_model().objects.create_user(username="hal@example.com", email="hal@example.com", password="right pass 9!")
    ok = client.post("/login/?next=/tokens/", {"email": "hal@example.com", "password": "right pass 9!"})
    assert ok["Location"] == "/tokens/"
    client.post("/logout/")
    evil = client.post("/login/?next=https://evil.example/", {"email": "hal@example.com", "password": "right pass 9!"})
    assert evil["Location"] == "/dashboard/"


def test_password_reset_answers_the_same_and_resets(client, operator_setup):
    get_user_model().objects.create_user(username="ivy@example.com", email="ivy@example.com", password="old pass 9!x")
    known = client.post("/password-reset/", {"email": "ivy@example.com"})
    unknown = client.post("/password-reset/", {"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/password-reset/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ivy@example.com"]
    link = _link(mail.outbox[0].body)
    page = client.get(link, follow=True)
    assert page.status_code == 200 and b"Choose a new password" in page.content
    done = client.post(page.redirect_chain[-1][0], {"new_password1": "brand new pass 42", "new_password2":
                                                    "brand new pass 42"})
    assert done.status_code == 302
    assert client.post("/login/", {"email": "ivy@example.com", "password": "brand new pass 42"}).status_code == 302


def test_logout_is_post_only(client, operator_setup):
    user = get_user_model().objects.create_user(username="jo@example.com", email="jo@example.com",
                                                password="x pass 9!z")
    client.force_login(user)
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert client.get("/dashboard/").status_code == 302
