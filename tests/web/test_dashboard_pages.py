"""Web dashboard: accounts within the plan, NATS users and their creds, teams and invitations, API tokens."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts_service import services
from accounts_service.models import (
    Account,
    ApiToken,
    AuditEvent,
    Invitation,
    NatsUser,
    Team,
    TeamMembership,
)
from accounts_service.rights import PLATFORM
from operators import nkeys
from tests.web.conftest import person

pytestmark = pytest.mark.django_db







def _account(team: Team) -> Account:
    return Account.objects.get(team=team)


# ------------------------------------------------------------------------------------------------
# Accounts
# ------------------------------------------------------------------------------------------------


def test_create_account_in_a_team_starts_on_the_free_plan(owner_client, shared):
    response = owner_client.post("/accounts/new/", {"name": "orders", "description": "", "team": shared.pk})
    account = Account.objects.get(team=shared, name="orders")
    assert response.status_code == 302 and response["Location"] == f"/accounts/{account.public_key}/"
    assert account.plan == "free" and account.conn == 50 and account.disk_storage == 256 * 1024 * 1024
    page = owner_client.get(response["Location"])
    assert page.status_code == 200
    assert account.public_key.encode() in page.content and account.jwt.encode() in page.content
    dashboard = owner_client.get("/dashboard/").content.decode()
    assert "orders" in dashboard and "Acme" in dashboard


def test_account_form_errors_create_nothing(owner_client, shared):
    before = Account.objects.count()
    bad_name = owner_client.post("/accounts/new/", {"name": "x" * 65, "team": shared.pk})
    assert bad_name.status_code == 200 and b"errorlist" in bad_name.content
    dup = owner_client.post("/accounts/new/", {"name": "default", "team": shared.pk})
    assert b"already has an account named" in dup.content
    other = Team.objects.create(name="Other", slug="other")
    foreign = owner_client.post("/accounts/new/", {"name": "x", "team": other.pk})
    assert foreign.status_code == 200 and b"Select a valid choice" in foreign.content
    assert Account.objects.count() == before


def test_limits_are_edited_within_the_plan(owner_client, shared):
    account = _account(shared)
    version = account.version
    url = f"/accounts/{account.public_key}/edit/"
    page = owner_client.get(url)
    assert b"plan allows up to 50" in page.content
    assert "<title>Settings · default · natsctl</title>" in page.content.decode()
    assert page.content.decode().count("<h2>Signing keys</h2>") == 1
    form = {"name": "default", "description": "main", "conn": 10, "subs": 100, "data": -1, "payload": 65536,
            "imports": 5, "exports": 5, "leaf": 0, "mem_storage": 0, "disk_storage": 1024, "streams": 1,
            "consumer": 2}
    assert owner_client.post(url, form).status_code == 302
    account.refresh_from_db()
    assert (account.conn, account.payload, account.description, account.version) == (10, 65536, "main", version + 1)

    over = owner_client.post(url, {**form, "conn": 5000, "leaf": -1})
    assert over.status_code == 200
    assert b"the free plan allows conn at most 50, leaf at most 2" in over.content
    account.refresh_from_db()
    assert account.conn == 10 and account.version == version + 1  # nothing written


def test_jetstream_zero_means_none_in_the_form(owner_client, shared):
    account = _account(shared)
    url = f"/accounts/{account.public_key}/edit/"
    page = owner_client.get(url).content.decode()
    assert "JetStream streams (-1 unlimited, 0 none: JetStream off); plan allows up to 5" in page
    form = {"name": "default", "description": "", "conn": 10, "subs": 100, "data": -1, "payload": 65536,
            "imports": 5, "exports": 5, "leaf": 0, "mem_storage": 0, "disk_storage": 1024, "streams": 5,
            "consumer": 0}
    refused = owner_client.post(url, form)
    assert refused.status_code == 200 and b"consumer cannot be 0 while JetStream is on" in refused.content
    account.refresh_from_db()
    assert account.consumer == 50  # nothing written
    assert owner_client.post(url, {**form, "streams": 0}).status_code == 302  # 0 streams: JetStream off
    account.refresh_from_db()
    assert (account.streams, account.consumer) == (0, 0)


def test_only_owners_delete_accounts_and_only_after_typing_the_name(client, owner, shared):
    member = person("member@example.com")
    TeamMembership.objects.create(team=shared, user=member, role=TeamMembership.Role.MEMBER)
    account = _account(shared)
    url = f"/accounts/{account.public_key}/delete/"
    client.force_login(member)
    refused = client.post(url, {"confirm": account.name})
    assert refused.status_code == 200 and b"only the team&#x27;s owners" in refused.content
    client.force_login(owner)
    assert b"type default to confirm" in client.post(url, {"confirm": "nope"}).content
    assert Account.objects.filter(pk=account.pk).exists()
    assert client.post(url, {"confirm": "default"})["Location"] == "/dashboard/"
    assert not Account.objects.filter(pk=account.pk).exists()
    assert AuditEvent.objects.filter(team=shared, action="account.delete", target=account.public_key).exists()


# ------------------------------------------------------------------------------------------------
# NATS users and creds
# ------------------------------------------------------------------------------------------------


def test_user_create_download_creds_and_revoke(owner_client, owner, shared):
    account = _account(shared)
    response = owner_client.post(f"/accounts/{account.public_key}/users/new/", {
        "name": "svc", "pub_allow": "orders.>\nbilling.*", "sub_allow": "_INBOX.>", "allow_responses": "on",
        "tags": "site:lyon",
    })
    user = NatsUser.objects.get(account=account, name="svc")
    assert user.tags == ["site:lyon"]
    assert response.status_code == 302 and f"#user-{user.public_key}" in response["Location"]
    assert sorted(user.pub_allow) == ["billing.*", "orders.>"]
    assert user.sub_allow == ["_INBOX.>"] and user.allow_responses

    creds_url = f"/accounts/{account.public_key}/users/{user.public_key}/creds"
    assert owner_client.get(creds_url).status_code == 405  # a secret is handed out on POST only
    creds = owner_client.post(creds_url)
    assert creds.status_code == 200
    assert creds["Cache-Control"] == "no-store"
    assert creds["Content-Disposition"] == 'attachment; filename="svc.creds"'
    body = creds.content.decode()
    assert user.jwt in body and "-----BEGIN USER NKEY SEED-----" in body
    downloads = AuditEvent.objects.filter(team=shared, action="creds.download", actor=owner, target=user.public_key)
    assert downloads.count() == 1

    revoke = owner_client.post(f"/accounts/{account.public_key}/users/{user.public_key}/revoke")
    assert revoke.status_code == 302
    user.refresh_from_db()
    assert user.revoked_at is not None
    assert AuditEvent.objects.filter(team=shared, action="user.revoke", target=user.public_key).count() == 1
    again = owner_client.post(creds_url, follow=True)
    assert b"the user is revoked" in again.content


def test_user_form_errors_create_nothing(owner_client, shared):
    account = _account(shared)
    url = f"/accounts/{account.public_key}/users/new/"
    bad_subject = owner_client.post(url, {"name": "a", "pub_allow": "orders..x"})
    assert bad_subject.status_code == 200 and b"errorlist" in bad_subject.content
    bad_key = owner_client.post(url, {"name": "b", "public_key": "UNOTAKEY"})
    assert b"errorlist" in bad_key.content
    owner_client.post(url, {"name": "c"})
    dup = owner_client.post(url, {"name": "c"})
    assert b"already has a user named" in dup.content
    assert list(NatsUser.objects.filter(account=account).values_list("name", flat=True)) == ["c"]


def test_user_with_own_public_key_has_no_creds_download(owner_client, shared):
    account = _account(shared)
    public_key = nkeys.generate(nkeys.KeyType.USER).public_key
    owner_client.post(f"/accounts/{account.public_key}/users/new/", {"name": "mine", "public_key": public_key})
    user = NatsUser.objects.get(public_key=public_key)
    assert user.seed_id is None
    page = owner_client.get(f"/accounts/{account.public_key}/").content.decode()
    assert "Get its JWT" in page and f"/users/{public_key}/#jwt" in page  # no dead end: the JWT is on its page
    refused = owner_client.post(f"/accounts/{account.public_key}/users/{public_key}/creds", follow=True)
    assert b"never saw its seed" in refused.content


# ------------------------------------------------------------------------------------------------
# Teams and invitations
# ------------------------------------------------------------------------------------------------


def _invite_link() -> str:
    return re.search(r"https?://[^/\s]+(/invitations/\S+)", mail.outbox[-1].body).group(1)


def test_new_team_gets_a_default_account_and_the_creator_owns_it(owner_client, owner):
    response = owner_client.post("/teams/", {"name": "Platform Eng"})
    team = Team.objects.get(name="Platform Eng")
    assert response["Location"] == f"/teams/{team.slug}/"
    assert TeamMembership.objects.get(team=team, user=owner).role == "owner"
    assert list(team.accounts.values_list("name", "plan")) == [("default", "free")]


def test_invite_accept_and_roles(client, owner, shared, django_capture_on_commit_callbacks):
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/teams/{shared.slug}/", {"email": "New@Example.com", "role": "member"})
    assert response.status_code == 302
    assert mail.outbox[-1].to == ["new@example.com"]
    link = _invite_link()

    # A stranger with another email cannot use it; the invitee can, once.
    stranger = person("stranger@example.com")
    client.force_login(stranger)
    refused = client.post(link)
    assert refused.status_code == 403 and b"sent to new@example.com" in refused.content
    invitee = person("new@example.com")
    client.force_login(invitee)
    assert "You are invited to join <strong>Acme</strong> as member" in client.get("/dashboard/").content.decode()
    assert client.post(link)["Location"] == f"/teams/{shared.slug}/"
    assert TeamMembership.objects.get(team=shared, user=invitee).role == "member"
    assert client.get(link).status_code == 404
    assert AuditEvent.objects.filter(team=shared, action="member.join").exists()

    # The member sees the team's accounts but cannot invite.
    assert b"default" in client.get("/dashboard/").content
    before = Invitation.objects.count()
    client.post(f"/teams/{shared.slug}/", {"email": "x@example.com", "role": "member"})
    assert Invitation.objects.count() == before

    # The last owner cannot leave; a member can.
    membership = TeamMembership.objects.get(team=shared, user=owner)
    client.force_login(owner)
    left = client.post(f"/teams/{shared.slug}/members/{membership.pk}/remove", follow=True)
    assert b"at least one owner" in left.content
    client.force_login(invitee)
    mine = TeamMembership.objects.get(team=shared, user=invitee)
    assert client.post(f"/teams/{shared.slug}/members/{mine.pk}/remove")["Location"] == "/teams/"
    assert client.get(f"/teams/{shared.slug}/").status_code == 404


def test_invitation_errors(owner_client, owner, shared):
    bad = owner_client.post(f"/teams/{shared.slug}/", {"email": "not-an-email", "role": "member"})
    assert b"Enter a valid email address" in bad.content
    member = owner_client.post(f"/teams/{shared.slug}/", {"email": "owner@example.com", "role": "member"})
    assert b"already a member" in member.content
    personal = Team.objects.get(is_personal=True, memberships__user=owner)
    refused = owner_client.post(f"/teams/{personal.slug}/", {"email": "z@example.com", "role": "member"})
    assert b"personal team has no other members" in refused.content
    assert Invitation.objects.count() == 0
    assert owner_client.get("/invitations/not-a-real-token/").status_code == 404


# ------------------------------------------------------------------------------------------------
# API tokens
# ------------------------------------------------------------------------------------------------


def test_api_token_is_shown_once_and_works(owner_client, owner, client):
    response = owner_client.post("/tokens/", {"name": "CI deploy"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    token = re.search(r'<pre id="new-token">(nct_[^<]+)</pre>', response.content.decode()).group(1)
    record = ApiToken.objects.get(user=owner)
    assert record.name == "CI deploy" and record.digest == services.api_token_digest(token)
    assert token not in owner_client.get("/tokens/").content.decode()  # never again
    api = client.get("/api/v1/accounts/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.status_code == 200
    assert owner_client.post(f"/tokens/{record.pk}/revoke").status_code == 302
    assert client.get("/api/v1/accounts/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401
    assert AuditEvent.objects.filter(action__in=["token.create", "token.revoke"], actor=owner).count() == 2


def test_another_persons_token_cannot_be_revoked(owner_client, operator_setup):
    other = person("other@example.com")
    record, _ = services.api_token_create(actor=PLATFORM, user=other, name="theirs")
    assert owner_client.post(f"/tokens/{record.pk}/revoke").status_code == 404
    record.refresh_from_db()
    assert record.revoked_at is None


# ------------------------------------------------------------------------------------------------
# Signing key rotation
# ------------------------------------------------------------------------------------------------


def test_rotating_a_signing_key_reissues_active_users_and_drops_the_old_key(client, owner, shared):
    from operators import claims
    from operators.models import SigningKey

    account = _account(shared)
    active = services.user_create(actor=PLATFORM, account=account, name="active")
    gone = services.user_revoke(actor=PLATFORM, user=services.user_create(actor=PLATFORM, account=account, name="gone"))
    old = SigningKey.objects.get(owner_public_key=account.public_key)
    account.refresh_from_db()
    old_jwt, version = active.jwt, account.version
    url = f"/accounts/{account.public_key}/signing-keys/{old.public_key}/rotate"

    member = person("member@example.com")
    TeamMembership.objects.create(team=shared, user=member, role=TeamMembership.Role.MEMBER)
    client.force_login(member)
    assert client.get(url).status_code == 405
    assert b"only the team&#x27;s owners" in client.post(url, follow=True).content
    assert SigningKey.objects.filter(pk=old.pk).exists()

    client.force_login(owner)
    assert client.post(url)["Location"] == f"/accounts/{account.public_key}/edit/"
    new = SigningKey.objects.get(owner_public_key=account.public_key)
    assert new.public_key != old.public_key
    active.refresh_from_db()
    gone.refresh_from_db()
    assert active.jwt != old_jwt and claims.decode(active.jwt).issuer == new.public_key
    assert gone.jwt_iat <= gone.account.revocations.get(public_key=gone.public_key).revoked_at_ts  # still revoked
    account.refresh_from_db()
    assert account.version == version + 1
    assert list(claims.decode(account.jwt).signing_keys()) == [new.public_key]
    event = AuditEvent.objects.get(team=shared, action="key.rotate")
    assert event.detail["old"] == old.public_key and event.detail["users_reissued"] == 1
    assert client.post(url).status_code == 404  # the old key is gone


def test_a_suspended_account_says_so_on_its_pages(owner_client, shared):
    account = services.account_suspend(actor=PLATFORM,
                                       account=_account(shared), reason="monthly data allowance used up")
    page = owner_client.get(f"/accounts/{account.public_key}/").content.decode()
    assert "This account is suspended" in page and "monthly data allowance used up" in page
    services.account_resume(actor=PLATFORM, account=account)
    assert "suspended" not in owner_client.get(f"/accounts/{account.public_key}/").content.decode()


def test_user_leafnode_download_is_a_post_never_cached_and_audited(owner_client, owner, shared, settings):
    from accounts_service.services import user_create

    settings.NATS_PUBLIC_LEAFNODE_URLS = ["nats-leaf://leaf.example.com:7422"]
    account = _account(shared)
    user = user_create(actor=owner, account=account, name="edge")
    zero = user_create(actor=owner, account=account, name="zero", subs=0)
    page = owner_client.get(f"/accounts/{account.public_key}/").content.decode()
    url = f"/accounts/{account.public_key}/users/{user.public_key}/leafnode"
    assert f'action="{url}"' in page and "Download leaf.conf" in page
    assert owner_client.get(url).status_code == 405
    response = owner_client.post(url)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert response["Content-Disposition"] == 'attachment; filename="leaf.conf"'
    assert 'credentials: "edge.creds"' in response.content.decode()
    assert AuditEvent.objects.filter(team=shared, action="leafnode.download", actor=owner,
                                     target=user.public_key).count() == 1
    refused = owner_client.post(f"/accounts/{account.public_key}/users/{zero.public_key}/leafnode", follow=True)
    assert b"subscription limit is 0" in refused.content
    assert AuditEvent.objects.filter(action="leafnode.download").count() == 1


def test_the_account_page_shows_its_leafnode_connections(owner_client, shared):
    from django.utils import timezone

    from billing.models import ServerAccountCounter

    account = _account(shared)
    ServerAccountCounter.objects.create(server_id="S1", server_name="n1", account_public_key=account.public_key,
                                        seq=1, observed_at=timezone.now(), conns=0, leafnodes=2)
    fragment = owner_client.get(f"/accounts/{account.public_key}/propagation").content.decode()
    assert 'id="leafnodes-current"' in fragment and "<strong>2</strong>" in fragment
    usage = owner_client.get(f"/accounts/{account.public_key}/usage/").content.decode()
    assert '<strong id="leafnodes-current">2</strong>' in usage
