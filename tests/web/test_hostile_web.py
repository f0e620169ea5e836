"""Sessions and the catalog against a hostile tenant: sign-up costs the same for known and new emails, a password
reset ends the API tokens, and the catalog attributes every export (only the platform's are the platform's)."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core import mail

from accounts_service import services
from accounts_service.models import ApiToken, AuditEvent
from accounts_service.rights import PLATFORM
from tests.web.conftest import person

pytestmark = pytest.mark.django_db

HASHED: list[str] = []


class CountingHasher(PBKDF2PasswordHasher):
    """Counts the passwords hashed (cheaply): the sign-up answer's cost is the hashing, so both paths must hash."""

    iterations = 1

    def encode(self, password, salt, iterations=None):
        HASHED.append(password)
        return super().encode(password, salt, iterations)


@pytest.fixture
def counting_hasher(settings):
    settings.PASSWORD_HASHERS = ["tests.web.test_hostile_web.CountingHasher"]
    HASHED.clear()
    return HASHED


def test_signup_hashes_the_password_for_known_and_new_emails_alike(client, operator_setup, counting_hasher):
    person("known@example.com")
    counting_hasher.clear()
    client.post("/signup/", {"email": "known@example.com", "password": "a long pass 42!x"})
    known = len(counting_hasher)
    counting_hasher.clear()
    client.post("/signup/", {"email": "new@example.com", "password": "a long pass 42!x"})
    assert known == len(counting_hasher) == 1


def test_a_password_reset_revokes_the_persons_api_tokens(client, operator_setup):
    ivy = person("ivy@example.com")
    record, _ = services.api_token_create(user=ivy, actor=ivy, name="ci")
    client.post("/password-reset/", {"email": "ivy@example.com"})
    assert "revokes your API tokens" in mail.outbox[-1].body  # the mail says so before it happens
    link = re.search(r"https?://\S+", mail.outbox[-1].body).group(0)
    page = client.get(link, follow=True)
    done = client.post(page.redirect_chain[-1][0], {"new_password1": "brand new pass 42",
                                                    "new_password2": "brand new pass 42"}, follow=True)
    assert b"API tokens were revoked" in done.content
    assert ApiToken.objects.get(pk=record.pk).revoked_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.TOKEN_REVOKE, target=record.prefix)
    assert event.detail["reason"] == "password reset" and event.actor == ivy


def test_the_catalog_attributes_every_export_and_marks_only_the_platforms(client, shared, owner):
    eve = person("eve@example.com")
    eve_team = services.team_create(name="Eve Co", actor=eve, default_account=True)
    look_alike = services.export_create(actor=PLATFORM, account=eve_team.accounts.get(), name="official usage",
                                        subject="usage.*", type="service", account_token_position=2, advertise=True)
    platform = services.usage_service_ensure()
    services.export_create(actor=PLATFORM, account=platform, name="platform status", subject="ngs.status",
                           type="service", advertise=True)
    client.force_login(owner)
    page = client.get("/catalog/").content.decode()
    row = page[page.index(f'id="catalog-{look_alike.pk}"'):]
    row = row[:row.index("</tr>")]
    assert "team <strong>Eve Co</strong>" in row and "platform" not in row.replace("platform-", "")
    assert page.count('<span class="badge badge-ok">platform</span>') == 1
