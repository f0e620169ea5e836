"""Services of the tenant domain: re-signing, validation with no partial writes, sharing rules."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts_service import services
from accounts_service.models import Account, Export, Import, NatsUser, Revocation, Team
from accounts_service.rights import PLATFORM
from core.errors import ApplicationError
from operators import claims, creds, nkeys
from operators.models import IssuedAccountJwt, SealedSeed

pytestmark = pytest.mark.django_db


def _nats(account: Account) -> dict:
    account.refresh_from_db()
    return claims.decode(account.jwt).nats


def _counts() -> tuple[int, ...]:
    return (Account.objects.count(), NatsUser.objects.count(), SealedSeed.objects.count(),
            Export.objects.count(), Import.objects.count(), IssuedAccountJwt.objects.count())


# --- accounts -----------------------------------------------------------------------------------


def test_account_jwt_is_signed_by_operator_signing_key_and_limits_are_explicit(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app", limits={"conn": 5})
    decoded = claims.decode(account.jwt, expected_type="account")
    op = claims.decode(operator_setup.operator.jwt)
    assert decoded.issuer in op.signing_keys() and decoded.issuer != op.subject
    assert claims.issuer_problems(decoded, op) == []
    limits = decoded.nats["limits"]
    assert limits["conn"] == 5 and limits["subs"] == -1 and limits["payload"] == -1 and limits["data"] == -1
    assert len(decoded.nats["signing_keys"]) == 1
    assert account.version == 1


def test_iat_strictly_increases_across_reissues_in_the_same_second(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    iats = [account.jwt_iat]
    for i in range(5):
        account = services.account_update(actor=PLATFORM, account=account, limits={"conn": i + 1})
        iats.append(account.jwt_iat)
    assert all(b > a for a, b in itertools.pairwise(iats))
    jtis = set(IssuedAccountJwt.objects.filter(account_public_key=account.public_key).values_list("jti", flat=True))
    assert len(jtis) == 6
    assert account.version == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name is required"),
        ({"name": "x" * 65}, "longer than 64"),
        ({"name": "bad\ud800"}, "not valid Unicode"),
        ({"name": "ok", "limits": {"conn": -2}}, "conn must be between"),
        ({"name": "ok", "limits": {"conn": "5"}}, "conn must be an integer"),
        ({"name": "ok", "limits": {"bogus": 1}}, "unknown limits"),
        ({"name": "ok", "limits": {"payload": 2**60}}, "payload must be between"),
    ],
)
def test_account_create_rejects_bad_input_without_partial_writes(operator_setup, team, kwargs, message):
    before = _counts()
    with pytest.raises(ApplicationError, match=message):
        services.account_create(actor=PLATFORM, team=team, **kwargs)
    assert _counts() == before


def test_duplicate_account_name_in_team_is_refused(operator_setup, team, other_team):
    services.account_create(actor=PLATFORM, team=team, name="app")
    services.account_create(actor=PLATFORM, team=other_team, name="app")  # another team may reuse it
    with pytest.raises(ApplicationError, match="already has an account"):
        services.account_create(actor=PLATFORM, team=team, name="app")


def test_account_create_without_operator_says_how_to_make_one(db, team):
    with pytest.raises(ApplicationError, match="operator init"):
        services.account_create(actor=PLATFORM, team=team, name="app")


def test_system_account_cannot_be_deleted(operator_setup):
    system = services.system_account_ensure()
    assert system.is_system and system.public_key == operator_setup.operator.system_account
    with pytest.raises(ApplicationError, match="system account"):
        services.account_delete(actor=PLATFORM, account=system)


def test_account_delete_resigns_importers(operator_setup, team, other_team):
    a = services.account_create(actor=PLATFORM, team=team, name="a")
    b = services.account_create(actor=PLATFORM, team=other_team, name="b")
    services.export_create(actor=PLATFORM, account=a, name="feed", subject="feed.>", type="stream")
    services.import_create(actor=PLATFORM, account=b, exporter_public_key=a.public_key, subject="feed.>")
    assert "imports" in _nats(b)
    seeds_before = SealedSeed.objects.count()
    services.account_delete(actor=PLATFORM, account=a)
    assert "imports" not in _nats(b)
    assert not Account.objects.filter(public_key=a.public_key).exists()
    assert SealedSeed.objects.count() < seeds_before  # its seeds go with it


# --- users ----------------------------------------------------------------------------------------


def test_user_jwt_has_permissions_and_issuer_account(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    user = services.user_create(actor=PLATFORM,
                                account=account, name="alice", pub_allow=["foo.>"], sub_allow=["foo.*", "bar"],
                                allow_responses=True)
    decoded = claims.decode(user.jwt, expected_type="user")
    assert decoded.issuer_account == account.public_key
    assert decoded.issuer in claims.decode(account.jwt).signing_keys()
    assert decoded.nats["pub"] == {"allow": ["foo.>"]}
    assert decoded.nats["sub"] == {"allow": ["bar", "foo.*"]}
    assert decoded.nats["resp"] == {"max": 1, "ttl": 0}
    assert decoded.nats["subs"] == -1 and decoded.nats["data"] == -1 and decoded.nats["payload"] == -1
    text = services.user_creds_get(user=user)
    parsed = creds.parse_creds(text)
    assert parsed.jwt == user.jwt and nkeys.from_seed(parsed.seed).public_key == user.public_key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pub_allow": ["foo..bar"]}, "empty token"),
        ({"pub_allow": ["foo bar"]}, "whitespace"),
        ({"sub_allow": [">.foo"]}, "must be the last token"),
        ({"sub_allow": ["fo*"]}, "whole tokens"),
        ({"sub_allow": [""]}, "is empty"),
        ({"subs": -5}, "subs must be between"),
        ({"public_key": "AAAVCOTXCNG53LX7PYLLY5PF7UL5ED6CWOQSYPZIDMHCLGZDQXNOUF55"}, "expected user public key"),
        ({"public_key": "UBSLNU4HUQVEPAIAUZN4PLUTTG6XBTQ4Z2HE5R6F2LT2YQHYKVPLDAS3"}, "checksum"),
        ({"public_key": "UABC"}, "56 characters"),
        ({"expires_at": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)}, "in the past"),
        ({"role": "nope"}, "no signing key with role"),
    ],
)
def test_user_create_rejects_bad_input_without_partial_writes(operator_setup, team, kwargs, message):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    before = _counts()
    with pytest.raises(ApplicationError, match=message):
        services.user_create(actor=PLATFORM, account=account, name="u", **kwargs)
    assert _counts() == before


def test_user_with_callers_public_key_gets_a_jwt_but_no_creds(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    mine = nkeys.generate(nkeys.KeyType.USER)
    user = services.user_create(actor=PLATFORM, account=account, name="byo", public_key=mine.public_key)
    assert user.seed is None and claims.decode(user.jwt).subject == mine.public_key
    with pytest.raises(ApplicationError, match="never saw its seed"):
        services.user_creds_get(user=user)
    with pytest.raises(ApplicationError, match="already exists"):
        services.user_create(actor=PLATFORM, account=account, name="byo2", public_key=mine.public_key)


def test_revoke_puts_the_user_in_the_account_jwt_and_stops_creds(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    user = services.user_create(actor=PLATFORM, account=account, name="alice")
    services.user_revoke(actor=PLATFORM, user=user)
    revocations = _nats(account)["revocations"]
    assert revocations[user.public_key] >= claims.decode(user.jwt).iat
    with pytest.raises(ApplicationError, match="revoked"):
        services.user_creds_get(user=user)


def test_user_update_revokes_older_jwts_and_issues_a_newer_one(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    user = services.user_create(actor=PLATFORM, account=account, name="alice", pub_allow=["a"])
    old_iat = user.jwt_iat
    user = services.user_update(actor=PLATFORM, user=user, pub_allow=["b"])
    cutoff = _nats(account)["revocations"][user.public_key]
    assert cutoff == old_iat < user.jwt_iat
    assert claims.decode(user.jwt).nats["pub"] == {"allow": ["b"]}


def test_user_delete_revokes_and_drops_its_seed(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    user = services.user_create(actor=PLATFORM, account=account, name="alice")
    pub = user.public_key
    services.user_delete(actor=PLATFORM, user=user)
    assert not NatsUser.objects.filter(public_key=pub).exists()
    assert not SealedSeed.objects.filter(public_key=pub).exists()
    assert Revocation.objects.filter(public_key=pub).exists() and pub in _nats(account)["revocations"]


def test_scoped_signing_key_users_carry_no_permissions(operator_setup, team):
    account = services.account_create(actor=PLATFORM, team=team, name="app")
    key = services.account_signing_key_add(actor=PLATFORM,
                                           account=account, role="reader", template={"sub_allow": ["data.>"]})
    scopes = [k for k in _nats(account)["signing_keys"] if isinstance(k, dict)]
    assert scopes == [{"kind": "user_scope", "key": key.public_key, "role": "reader",
                       "template": {"pub": {}, "sub": {"allow": ["data.>"]}, "subs": -1, "data": -1, "payload": -1}}]
    user = services.user_create(actor=PLATFORM, account=account, name="r", role="reader")
    nats = claims.decode(user.jwt).nats
    assert set(nats) == {"issuer_account", "type", "version"}
    with pytest.raises(ApplicationError, match="takes its permissions from the role"):
        services.user_create(actor=PLATFORM, account=account, name="r2", role="reader", pub_allow=["x"])


# --- exports, activations, imports ------------------------------------------------------------------


@pytest.fixture
def pair(operator_setup, team, other_team):
    return (services.account_create(actor=PLATFORM, team=team, name="exporter"),
            services.account_create(actor=PLATFORM, team=other_team, name="imp"))


def test_public_stream_and_service_imports(pair):
    a, b = pair
    services.export_create(actor=PLATFORM, account=a, name="feed", subject="feed.>", type="stream")
    services.export_create(actor=PLATFORM, account=a, name="help", subject="help.*", type="service")
    services.import_create(actor=PLATFORM,
                           account=b, exporter_public_key=a.public_key, subject="feed.>", local_subject="a.feed.>")
    services.import_create(actor=PLATFORM, account=b, exporter_public_key=a.public_key, subject="help.me")
    exports = _nats(a)["exports"]
    assert [(e["subject"], e["type"]) for e in exports] == [("feed.>", "stream"), ("help.*", "service")]
    assert exports[1]["response_type"] == "Singleton"
    imports = _nats(b)["imports"]
    assert {(i["subject"], i.get("local_subject"), i["account"]) for i in imports} == {
        ("feed.>", "a.feed.>", a.public_key), ("help.me", None, a.public_key)}


def test_import_of_own_export_is_refused(pair):
    a, _ = pair
    services.export_create(actor=PLATFORM, account=a, name="feed", subject="feed.>", type="stream")
    with pytest.raises(ApplicationError, match="its own export"):
        services.import_create(actor=PLATFORM, account=a, exporter_public_key=a.public_key, subject="feed.>")


def test_import_of_unexported_subject_is_refused(pair):
    a, b = pair
    services.export_create(actor=PLATFORM, account=a, name="feed", subject="feed.>", type="stream")
    with pytest.raises(ApplicationError, match="exports nothing covering"):
        services.import_create(actor=PLATFORM, account=b, exporter_public_key=a.public_key, subject="other")


def test_private_export_needs_a_valid_activation(pair, team):
    a, b = pair
    c = services.account_create(actor=PLATFORM, team=team, name="third")
    export = services.export_create(actor=PLATFORM,
                                    account=a, name="priv", subject="priv.svc", type="service", private=True)
    assert _nats(a)["exports"][0]["token_req"] is True
    with pytest.raises(ApplicationError, match="activation token is required"):
        services.import_create(actor=PLATFORM, account=b, exporter_public_key=a.public_key, subject="priv.svc")
    for_c = services.activation_create(actor=PLATFORM, export=export, target_public_key=c.public_key).token
    with pytest.raises(ApplicationError, match="for another account"):
        services.import_create(actor=PLATFORM,
                               account=b, exporter_public_key=a.public_key, subject="priv.svc", token=for_c)
    with pytest.raises(ApplicationError, match="invalid"):
        services.import_create(actor=PLATFORM,
                               account=b, exporter_public_key=a.public_key, subject="priv.svc", token="garbage")
    forged = claims.encode(claims.ACTIVATION, subject=b.public_key, signer=nkeys.generate(nkeys.KeyType.ACCOUNT),
                           nats=claims.activation_nats(subject="priv.svc", kind="service"))
    with pytest.raises(ApplicationError, match="not issued by the exporting account"):
        services.import_create(actor=PLATFORM,
                               account=b, exporter_public_key=a.public_key, subject="priv.svc", token=forged)
    activation = services.activation_create(actor=PLATFORM, export=export, target_public_key=b.public_key)
    decoded = claims.decode(activation.token, expected_type="activation")
    assert decoded.issuer == a.public_key and decoded.subject == b.public_key
    assert decoded.nats["subject"] == "priv.svc" and decoded.nats["kind"] == "service"
    services.import_create(actor=PLATFORM,
                           account=b, exporter_public_key=a.public_key, subject="priv.svc", token=activation.token)
    assert _nats(b)["imports"][0]["token"] == activation.token


def test_revoked_activation_is_listed_in_the_export(pair):
    a, b = pair
    export = services.export_create(actor=PLATFORM,
                                    account=a, name="priv", subject="priv.>", type="stream", private=True)
    activation = services.activation_create(actor=PLATFORM, export=export, target_public_key=b.public_key)
    services.activation_revoke(actor=PLATFORM, activation=activation)
    assert b.public_key in _nats(a)["exports"][0]["revocations"]
    with pytest.raises(ApplicationError, match="revoked"):
        services.import_create(actor=PLATFORM,
                               account=b, exporter_public_key=a.public_key, subject="priv.>", token=activation.token)


def test_export_rules(pair):
    a, _ = pair
    services.export_create(actor=PLATFORM, account=a, name="feed", subject="feed.>", type="stream")
    with pytest.raises(ApplicationError, match="overlaps"):
        services.export_create(actor=PLATFORM, account=a, name="feed2", subject="feed.x", type="stream")
    with pytest.raises(ApplicationError, match="stream or service"):
        services.export_create(actor=PLATFORM, account=a, name="x", subject="x", type="queue")
    with pytest.raises(ApplicationError, match="account_token_position"):
        services.export_create(actor=PLATFORM,
                               account=a, name="u", subject="usage.x", type="service", account_token_position=2)
    services.export_create(actor=PLATFORM,
                           account=a, name="u", subject="usage.*", type="service", account_token_position=2)
    assert _nats(a)["exports"][1]["account_token_position"] == 2
    services.account_update(actor=PLATFORM, account=a, limits={"exports": 2})
    with pytest.raises(ApplicationError, match="allows 2 exports"):
        services.export_create(actor=PLATFORM, account=a, name="y", subject="y", type="stream")


def test_export_delete_removes_imports_and_resigns_importers(pair):
    a, b = pair
    export = services.export_create(actor=PLATFORM, account=a, name="feed", subject="feed.>", type="stream")
    services.import_create(actor=PLATFORM, account=b, exporter_public_key=a.public_key, subject="feed.>")
    services.export_delete(actor=PLATFORM, export=export)
    assert "imports" not in _nats(b) and "exports" not in _nats(a)


# --- teams and API tokens --------------------------------------------------------------------------


def test_every_django_user_gets_a_personal_team(db):
    user = get_user_model().objects.create_user("ann", password="pw-123456-x")
    team = Team.objects.for_user(user).get()
    assert team.is_personal and team.memberships.get().role == "owner"
    admin = get_user_model().objects.create_superuser("root", password="pw-123456-x")
    assert Team.objects.for_user(admin).filter(is_personal=True).count() == 1


def test_tenant_scoping(operator_setup, team, other_team):
    ann = get_user_model().objects.create_user("ann")
    services.team_member_add(team=team, user=ann)
    mine = services.account_create(actor=PLATFORM, team=team, name="mine")
    services.account_create(actor=PLATFORM, team=other_team, name="theirs")
    assert list(Account.objects.for_user(ann)) == [mine]
    assert NatsUser.objects.for_user(ann).count() == 0


def test_api_token_is_hashed_and_authenticates(db, rf):
    from accounts_service.authentication import BearerTokenAuthentication
    from accounts_service.models import ApiToken

    user = get_user_model().objects.create_user("ann")
    record, token = services.api_token_create(actor=PLATFORM, user=user, name="ci")
    assert token not in str(ApiToken.objects.values_list().get())
    request = rf.get("/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert BearerTokenAuthentication().authenticate(request)[0] == user
    services.api_token_revoke(actor=PLATFORM, token=record)
    from rest_framework.exceptions import AuthenticationFailed

    with pytest.raises(AuthenticationFailed):
        BearerTokenAuthentication().authenticate(request)
    assert record.revoked_at <= timezone.now()
