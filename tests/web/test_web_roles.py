"""The web asks the services, which check the role: a team member's attempt at an owner's write changes nothing
and says why, on every owner-only page (the API's walk is tests/api/test_roles.py)."""

from __future__ import annotations

import pytest

from accounts_service.models import Account, AuditEvent, Invitation, TeamMembership
from billing.models import Plan
from billing.selectors import plan_terms_key
from operators.models import SigningKey
from tests.web.conftest import person

pytestmark = pytest.mark.django_db

REFUSAL = b"only the team&#x27;s owners may do this"


@pytest.fixture
def member_client(client, shared):
    member = person("member@example.com")
    TeamMembership.objects.create(team=shared, user=member, role=TeamMembership.Role.MEMBER)
    client.force_login(member)
    return client


def _follow(client, url: str, data: dict) -> bytes:
    return client.post(url, data, follow=True).content


def test_a_member_cannot_change_the_plan(member_client, shared):
    account = Account.objects.get(team=shared)
    version = account.version
    terms = plan_terms_key(Plan.objects.get(name="pro"))  # what the confirmation page posts
    content = _follow(member_client, f"/accounts/{account.public_key}/plan/pro/", {"terms": terms})
    assert REFUSAL in content
    account.refresh_from_db()
    assert account.version == version


def test_a_member_cannot_rotate_a_signing_key(member_client, shared):
    account = Account.objects.get(team=shared)
    key = SigningKey.objects.get(owner_public_key=account.public_key)
    url = f"/accounts/{account.public_key}/signing-keys/{key.public_key}/rotate"
    assert REFUSAL in _follow(member_client, url, {})
    assert SigningKey.objects.filter(pk=key.pk).exists()


def test_a_member_cannot_invite_or_manage_members(member_client, shared, owner):
    invite = {"email": "x@example.com", "role": "owner"}
    assert REFUSAL in member_client.post(f"/teams/{shared.slug}/", invite).content
    assert not Invitation.objects.exists()
    owner_membership = TeamMembership.objects.get(team=shared, user=owner)
    members = f"/teams/{shared.slug}/members/{owner_membership.pk}"
    assert REFUSAL in _follow(member_client, f"{members}/role", {"role": "member"})
    assert REFUSAL in _follow(member_client, f"{members}/remove", {})
    owner_membership.refresh_from_db()
    assert owner_membership.role == TeamMembership.Role.OWNER
    assert not AuditEvent.objects.filter(action__in=["member.role", "member.remove", "member.invite"]).exists()
