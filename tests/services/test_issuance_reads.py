"""The plain-SQL reads of .creds issuance (accounts_service/issuance_reads.py) read what the ORM queries they
replace read: the same rows, the same tenant scope (teams, a token restricted to one team), the same types."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from accounts_service import issuance_reads, services
from accounts_service.models import Account, NatsUser, TeamMembership
from accounts_service.models.tenancy import TOKEN_TEAM_ATTR
from accounts_service.rights import PLATFORM
from operators.models import SigningKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def person(team):
    person = get_user_model().objects.create_user(username="erin", password="pw-erin")
    services.team_member_add(team=team, user=person, role=TeamMembership.Role.OWNER)
    return person


@pytest.fixture
def account(operator_setup, team) -> Account:
    return services.account_create(actor=PLATFORM, team=team, name="app")


def test_creds_read_is_the_orm_row_with_its_account_seed_and_role(person, account):
    made = services.user_create(actor=PLATFORM, account=account, name="svc", pub_allow=["a.>"])
    user = issuance_reads.creds_user_for_actor(actor=person, account_public_key=account.public_key,
                                               user_public_key=made.public_key)
    orm = NatsUser.objects.select_related("account", "seed").get(pk=made.pk)
    assert (user.pk, user.name, user.public_key, user.jwt, user.revoked_at, user.seed_id) == (
        orm.pk, orm.name, orm.public_key, orm.jwt, None, orm.seed_id)
    assert (user.account.pk, user.account.team_id, user.account.public_key) == (
        account.pk, account.team_id, account.public_key)
    assert (user.seed.pk, user.seed.public_key, user.seed.sealed, user.seed.created_at) == (
        orm.seed.pk, orm.seed.public_key, orm.seed.sealed, orm.seed.created_at)
    assert user.actor_role == TeamMembership.Role.OWNER
    assert services.user_creds_get(user=user, fresh=True) == services.user_creds_get(user=orm)
    # A revoked user: the revocation is read as the ORM reads it (an aware datetime), and refuses the creds.
    services.user_revoke(user=orm, actor=PLATFORM)
    user = issuance_reads.creds_user_for_actor(actor=person, account_public_key=account.public_key,
                                               user_public_key=made.public_key)
    assert user.revoked_at == NatsUser.objects.get(pk=made.pk).revoked_at
    assert user.revoked_at.tzinfo is not None and user.revoked_at.utcoffset() == dt.timedelta(0)


def test_creds_read_of_a_user_created_from_its_own_key_has_no_seed(person, account):
    from operators import nkeys
    from operators.nkeys import KeyType

    made = services.user_create(actor=PLATFORM, account=account, name="byo",
                                public_key=nkeys.generate(KeyType.USER).public_key)
    user = issuance_reads.creds_user_for_actor(actor=person, account_public_key=account.public_key,
                                               user_public_key=made.public_key)
    assert user.seed_id is None and user.seed is None


def test_the_reads_keep_the_tenant_scope(person, account, other_team, team):
    made = services.user_create(actor=PLATFORM, account=account, name="svc")
    stranger = get_user_model().objects.create_user(username="mallory", password="pw-m")
    services.team_member_add(team=other_team, user=stranger)
    other_account = services.account_create(actor=PLATFORM, team=other_team, name="theirs")

    def creds(actor, account_pk=account.public_key, user_pk=made.public_key):
        return issuance_reads.creds_user_for_actor(actor=actor, account_public_key=account_pk,
                                                   user_public_key=user_pk)

    assert creds(stranger) is None and issuance_reads.account_for_actor(actor=stranger,
                                                                        public_key=account.public_key) is None
    assert creds(AnonymousUser()) is None
    assert issuance_reads.account_for_actor(actor=AnonymousUser(), public_key=account.public_key) is None
    assert creds(person, account_pk=other_account.public_key) is None  # the user is not under that account
    assert creds(person, user_pk="U" + "A" * 55) is None
    # A token restricted to another team sees nothing of this one; restricted to this team, the same rows.
    setattr(person, TOKEN_TEAM_ATTR, other_team.pk)
    assert creds(person) is None
    assert issuance_reads.account_for_actor(actor=person, public_key=account.public_key) is None
    setattr(person, TOKEN_TEAM_ATTR, team.pk)
    assert creds(person).pk == made.pk
    found, role = issuance_reads.account_for_actor(actor=person, public_key=account.public_key)
    assert (found.pk, found.team_id, found.public_key, role) == (account.pk, team.pk, account.public_key, "owner")


def test_signing_key_read_is_the_orm_key_with_its_seed(person, account):
    scoped = services.account_signing_key_add(account=account, actor=PLATFORM, role="ops",
                                              template={"pub_allow": ["ops.>"]})
    unscoped = SigningKey.objects.filter(owner_public_key=account.public_key, role="").order_by("id").first()
    for role, want in (("", unscoped), ("ops", scoped)):
        key = issuance_reads.signing_key_for(owner_public_key=account.public_key, role=role)
        assert (key.pk, key.public_key, key.role, key.owner_public_key, key.seed_id) == (
            want.pk, want.public_key, want.role, want.owner_public_key, want.seed_id)
        assert (key.seed.public_key, key.seed.sealed) == (want.seed.public_key, want.seed.sealed)
    assert issuance_reads.signing_key_for(owner_public_key=account.public_key, role="nope") is None
    assert issuance_reads.signing_key_for(owner_public_key="A" * 56, role="") is None


@pytest.mark.django_db(transaction=True)
def test_the_creation_lock_is_a_row_lock_on_postgresql(operator_setup, team):
    from django.db import connection, connections, transaction

    if not connection.features.has_select_for_update:
        pytest.skip("SQLite: the creation's transaction holds the database's one write lock instead")
    account = services.account_create(actor=PLATFORM, team=team, name="locked")
    other = connections.create_connection("default")
    try:
        with transaction.atomic():
            issuance_reads.account_row_lock(account_id=account.pk)
            with other.cursor() as cursor, pytest.raises(Exception, match="could not obtain lock"):
                cursor.execute("SELECT id FROM accounts_service_account WHERE id = %s FOR UPDATE NOWAIT",
                               [account.pk])
        with other.cursor() as cursor:  # released with the transaction
            cursor.execute("SELECT id FROM accounts_service_account WHERE id = %s FOR UPDATE NOWAIT", [account.pk])
            assert cursor.fetchone() == (account.pk,)
    finally:
        other.close()
