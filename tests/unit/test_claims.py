"""operators.claims: NATS v2 JWT encode/decode, jti, limits, errors and issuer checks (pure, no database)."""

from __future__ import annotations

import base64
import hashlib
import json
import string
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from operators import claims, nkeys
from operators.claims import (
    AccountLimits,
    Export,
    Import,
    JetStreamLimits,
    JwtError,
    Permission,
    Permissions,
    ResponsePermission,
    TimeRange,
    UserLimits,
    UserScope,
    WeightedMapping,
)
from operators.nkeys import KeyType

OP = nkeys.generate(KeyType.OPERATOR)
OP_SK = nkeys.generate(KeyType.OPERATOR)
OTHER_OP = nkeys.generate(KeyType.OPERATOR)
ACC = nkeys.generate(KeyType.ACCOUNT)
ACC_SK = nkeys.generate(KeyType.ACCOUNT)
SCOPED_SK = nkeys.generate(KeyType.ACCOUNT)
OTHER_ACC = nkeys.generate(KeyType.ACCOUNT)
USER = nkeys.generate(KeyType.USER)
USER_A = nkeys.generate(KeyType.USER).public_key
USER_B = nkeys.generate(KeyType.USER).public_key
IAT = 1_700_000_000

ACCOUNT_LIMIT_KEYS = {
    "subs", "data", "payload", "imports", "exports", "wildcards", "disallow_bearer", "conn", "leaf",
    "mem_storage", "disk_storage", "streams", "consumer", "max_ack_pending", "mem_max_stream_bytes",
    "disk_max_stream_bytes", "max_bytes_required",
}  # fmt: skip


# --- helpers --------------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def forge(header: dict, payload: dict, signer: nkeys.KeyPair) -> str:
    """A token signed by ``signer`` over whatever header and payload we like."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    return signing_input + "." + b64url(signer.sign(signing_input.encode()))


def payload_of(token: str) -> dict:
    return json.loads(unb64url(token.split(".")[1]))


def expected_jti(token: str) -> str:
    """SHA-512/256 (base32, no padding) of the payload JSON text without its leading jti member."""
    raw = unb64url(token.split(".")[1]).decode()
    head = '{"jti":"'
    assert raw.startswith(head)
    end = raw.index('",', len(head))
    rest = "{" + raw[end + 2 :]
    return base64.b32encode(hashlib.new("sha512_256", rest.encode()).digest()).decode().rstrip("=")


def user_token(**kwargs) -> str:
    nats = claims.user_nats(**kwargs)
    return claims.encode(claims.USER, subject=USER.public_key, nats=nats, signer=ACC, iat=IAT)


def account_token(signer=OP, *, iat=IAT, **kwargs) -> str:
    kwargs.setdefault("limits", AccountLimits())
    return claims.encode(claims.ACCOUNT, subject=ACC.public_key, nats=claims.account_nats(**kwargs), signer=signer,
                         iat=iat)


# --- header and standard claims -------------------------------------------------------------------


def test_header_is_nats_v2():
    token = claims.encode(claims.OPERATOR, subject=OP.public_key, nats={}, signer=OP, iat=IAT)
    header = json.loads(unb64url(token.split(".")[0]))
    assert header == {"typ": "JWT", "alg": "ed25519-nkey"}
    assert claims.decode(token).header == header


def test_standard_claims_and_properties():
    token = claims.encode(claims.USER, subject=USER.public_key, nats=claims.user_nats(), signer=ACC, iat=IAT,
                          name="alice", exp=IAT + 60, nbf=IAT - 60, aud="audience")
    jwt = claims.decode(token)
    assert jwt.token == token
    assert jwt.type == "user"
    assert jwt.subject == USER.public_key
    assert jwt.issuer == ACC.public_key
    assert jwt.name == "alice"
    assert jwt.iat == IAT
    assert jwt.exp == IAT + 60
    assert jwt.claims["nbf"] == IAT - 60
    assert jwt.claims["aud"] == "audience"
    assert jwt.issuer_account == ""
    assert set(jwt.claims) == {"jti", "iat", "iss", "name", "sub", "nats", "exp", "nbf", "aud"}
    assert next(iter(jwt.claims)) == "jti"


def test_optional_standard_claims_omitted():
    jwt = claims.decode(user_token())
    assert set(jwt.claims) == {"jti", "iat", "iss", "name", "sub", "nats"}
    assert jwt.exp is None
    assert not jwt.expired()
    assert not jwt.not_yet_valid()


def test_name_defaults_to_subject():
    assert claims.decode(user_token()).name == USER.public_key


def test_iat_defaults_to_now():
    before = int(time.time())
    token = claims.encode(claims.USER, subject=USER.public_key, nats=claims.user_nats(), signer=ACC)
    assert before <= claims.decode(token).iat <= int(time.time())


def test_encoding_is_deterministic():
    assert user_token() == user_token()


def test_token_is_unpadded_base64url():
    token = account_token(revocations={USER_A: 1})
    parts = token.split(".")
    assert len(parts) == 3
    allowed = set(string.ascii_letters + string.digits + "-_")
    for part in parts:
        assert part and set(part) <= allowed
    assert len(unb64url(parts[2])) == 64


def test_nats_type_and_version_cannot_be_overridden():
    token = claims.encode(claims.USER, subject=USER.public_key, nats={"type": "operator", "version": 1}, signer=ACC,
                          iat=IAT)
    assert claims.decode(token).nats == {"type": "user", "version": 2}


def test_non_ascii_name_round_trips():
    token = claims.encode(claims.USER, subject=USER.public_key, nats=claims.user_nats(), signer=ACC, iat=IAT,
                          name="Zoë ☃ 名前")
    assert claims.decode(token).name == "Zoë ☃ 名前"


def test_lone_surrogate_refused_with_jwt_error():
    # JSON input can carry "\ud800"; it cannot be encoded as UTF-8, so encode refuses it cleanly.
    with pytest.raises(JwtError, match="not valid Unicode"):
        claims.encode(claims.USER, subject=USER.public_key, nats=claims.user_nats(), signer=ACC, name="a\ud800")
    with pytest.raises(JwtError, match="not valid Unicode"):
        claims.encode(claims.ACCOUNT, subject=ACC.public_key, signer=OP,
                      nats=claims.account_nats(limits=AccountLimits(), description="\udfff"))


# --- operator -------------------------------------------------------------------------------------


def test_operator_round_trip():
    nats = claims.operator_nats(
        signing_keys=[OP_SK.public_key, OTHER_OP.public_key],
        system_account=ACC.public_key,
        account_server_url="nats://127.0.0.1:4222",
        operator_service_urls=["nats://a:4222", "nats://b:4222"],
        strict_signing_key_usage=True,
        assert_server_version="2.10.0",
        tags=["Prod", "prod", "  EU ", ""],
    )
    token = claims.encode(claims.OPERATOR, subject=OP.public_key, nats=nats, signer=OP, iat=IAT, name="op")
    jwt = claims.decode(token, expected_type="operator")
    assert jwt.nats == {
        "signing_keys": sorted([OP_SK.public_key, OTHER_OP.public_key]),
        "account_server_url": "nats://127.0.0.1:4222",
        "operator_service_urls": ["nats://a:4222", "nats://b:4222"],
        "system_account": ACC.public_key,
        "assert_server_version": "2.10.0",
        "strict_signing_key_usage": True,
        "tags": ["eu", "prod"],
        "type": "operator",
        "version": 2,
    }
    assert jwt.signing_keys() == {OP_SK.public_key: None, OTHER_OP.public_key: None}
    assert jwt.subject == jwt.issuer == OP.public_key


def test_operator_minimal():
    token = claims.encode(claims.OPERATOR, subject=OP.public_key, nats=claims.operator_nats(), signer=OP, iat=IAT)
    assert claims.decode(token).nats == {"type": "operator", "version": 2}
    assert claims.decode(token).signing_keys() == {}


# --- account --------------------------------------------------------------------------------------


def test_account_limits_always_explicit():
    jwt = claims.decode(account_token())
    limits = jwt.nats["limits"]
    assert set(limits) == ACCOUNT_LIMIT_KEYS
    for key in ("subs", "data", "payload", "imports", "exports", "conn", "leaf"):
        assert limits[key] == -1
    assert limits["wildcards"] is True
    assert limits["disallow_bearer"] is False
    # JetStream off: storage 0
    assert limits["mem_storage"] == 0 and limits["disk_storage"] == 0
    assert jwt.nats == {"limits": limits, "type": "account", "version": 2}


def test_account_limits_zero_is_written_not_omitted():
    limits = AccountLimits(subs=0, data=0, payload=0, imports=0, exports=0, conn=0, leaf=0)
    nats_limits = claims.decode(account_token(limits=limits)).nats["limits"]
    assert set(nats_limits) == ACCOUNT_LIMIT_KEYS
    assert all(nats_limits[k] == 0 for k in ("subs", "data", "payload", "imports", "exports", "conn", "leaf"))


def test_account_jetstream_limits():
    js = JetStreamLimits(mem_storage=1 << 20, disk_storage=1 << 30, streams=10, consumer=20, max_ack_pending=1000,
                         mem_max_stream_bytes=1 << 19, disk_max_stream_bytes=1 << 29, max_bytes_required=True)
    assert js.enabled
    assert not JetStreamLimits().enabled
    assert JetStreamLimits(mem_storage=-1).enabled
    assert JetStreamLimits(disk_storage=-1).enabled
    limits = AccountLimits(subs=100, data=10_000, payload=1024, imports=5, exports=6, wildcards=False,
                           disallow_bearer=True, conn=7, leaf=2, jetstream=js)
    assert claims.decode(account_token(limits=limits)).nats["limits"] == {
        "subs": 100, "data": 10_000, "payload": 1024, "imports": 5, "exports": 6, "wildcards": False,
        "disallow_bearer": True, "conn": 7, "leaf": 2, "mem_storage": 1 << 20, "disk_storage": 1 << 30,
        "streams": 10, "consumer": 20, "max_ack_pending": 1000, "mem_max_stream_bytes": 1 << 19,
        "disk_max_stream_bytes": 1 << 29, "max_bytes_required": True,
    }  # fmt: skip


def test_account_tiered_limits():
    r1 = JetStreamLimits(mem_storage=-1, disk_storage=1000, streams=-1, consumer=-1)
    r3 = JetStreamLimits(disk_storage=3000, streams=2)
    limits = AccountLimits(tiered={"R3": r3, "R1": r1})
    nats_limits = claims.decode(account_token(limits=limits)).nats["limits"]
    assert set(nats_limits) == ACCOUNT_LIMIT_KEYS | {"tiered_limits"}
    # the untiered JetStream limits are written as 0 (off) next to the tiers
    assert nats_limits["mem_storage"] == 0 and nats_limits["disk_storage"] == 0
    assert list(nats_limits["tiered_limits"]) == ["R1", "R3"]
    assert nats_limits["tiered_limits"]["R1"] == r1.to_json()
    assert nats_limits["tiered_limits"]["R3"] == r3.to_json()
    assert set(nats_limits["tiered_limits"]["R3"]) == {
        "mem_storage", "disk_storage", "streams", "consumer", "max_ack_pending", "mem_max_stream_bytes",
        "disk_max_stream_bytes", "max_bytes_required",
    }  # fmt: skip


def test_account_tiered_and_plain_jetstream_are_exclusive():
    limits = AccountLimits(jetstream=JetStreamLimits(disk_storage=1), tiered={"R1": JetStreamLimits(disk_storage=1)})
    with pytest.raises(JwtError, match="mutually exclusive"):
        claims.account_nats(limits=limits)


def _activation(subject: str = "other.svc", kind: str = "service", target: str | None = None) -> str:
    return claims.encode(claims.ACTIVATION, subject=target or ACC.public_key,
                         nats=claims.activation_nats(subject=subject, kind=kind), signer=OTHER_ACC, iat=IAT)


def test_account_full_round_trip():
    activation = _activation()
    scope = UserScope(
        key=SCOPED_SK.public_key,
        role="reader",
        permissions=Permissions(sub=Permission(allow=("feed.>",)), resp=ResponsePermission(max=2, ttl_ns=10**9)),
        limits=UserLimits(subs=10),
        bearer_token=True,
        allowed_connection_types=("STANDARD", "WEBSOCKET"),
        description="read only",
    )
    exp = IAT + 3600
    nats = claims.account_nats(
        limits=AccountLimits(conn=10),
        exports=[
            Export(
                "svc.*.req",
                type="service",
                name="svc",
                token_req=True,
                revocations={USER_B: 200, USER_A: 100},
                response_type="Stream",
                response_threshold_ns=5_000_000_000,
                account_token_position=2,
                advertise=True,
                description="a service",
                info_url="https://example.com/svc",
            ),
            Export("events.>"),
        ],
        imports=[
            Import("other.svc", account=OTHER_ACC.public_key, type="service", name="imp", token=activation,
                   local_subject="mine.svc", share=True),
            Import("feed.>", account=OTHER_ACC.public_key),
        ],
        revocations={USER_A: 100, "*": 50},
        signing_keys=[scope, ACC_SK.public_key],
        default_permissions=Permissions(pub=Permission(deny=("admin.>",))),
        mappings={"orders": [WeightedMapping("orders.v1", 80), WeightedMapping("orders.v2", 20, cluster="east")]},
        description="the account",
        info_url="https://example.com",
        tags=["Prod", "prod", " EU "],
    )
    token = claims.encode(claims.ACCOUNT, subject=ACC.public_key, nats=nats, signer=OP, iat=IAT, exp=exp, name="acme")
    jwt = claims.decode(token, expected_type="account")
    assert jwt.exp == exp
    assert jwt.name == "acme"
    expected_keys = sorted(
        [ACC_SK.public_key, {
            "kind": "user_scope",
            "key": SCOPED_SK.public_key,
            "role": "reader",
            "template": {
                "pub": {},
                "sub": {"allow": ["feed.>"]},
                "resp": {"max": 2, "ttl": 10**9},
                "subs": 10,
                "data": -1,
                "payload": -1,
                "bearer_token": True,
                "allowed_connection_types": ["STANDARD", "WEBSOCKET"],
            },
            "description": "read only",
        }],
        key=lambda k: k if isinstance(k, str) else k["key"],
    )  # fmt: skip
    assert jwt.nats == {
        "exports": [
            {"name": "events.>", "subject": "events.>", "type": "stream"},
            {
                "name": "svc",
                "subject": "svc.*.req",
                "type": "service",
                "token_req": True,
                "revocations": {USER_A: 100, USER_B: 200},
                "response_type": "Stream",
                "response_threshold": 5_000_000_000,
                "account_token_position": 2,
                "advertise": True,
                "description": "a service",
                "info_url": "https://example.com/svc",
            },
        ],
        "imports": [
            {"name": "feed.>", "subject": "feed.>", "account": OTHER_ACC.public_key, "type": "stream"},
            {
                "name": "imp",
                "subject": "other.svc",
                "account": OTHER_ACC.public_key,
                "type": "service",
                "token": activation,
                "local_subject": "mine.svc",
                "share": True,
            },
        ],
        "limits": {**AccountLimits().to_json(), "conn": 10},
        "signing_keys": expected_keys,
        "revocations": {"*": 50, USER_A: 100},
        "default_permissions": {"pub": {"deny": ["admin.>"]}, "sub": {}},
        "mappings": {
            "orders": [
                {"subject": "orders.v1", "weight": 80},
                {"subject": "orders.v2", "weight": 20, "cluster": "east"},
            ]
        },
        "description": "the account",
        "info_url": "https://example.com",
        "tags": ["eu", "prod"],
        "type": "account",
        "version": 2,
    }
    assert list(jwt.nats["revocations"]) == ["*", USER_A]
    assert jwt.signing_keys() == {ACC_SK.public_key: None, SCOPED_SK.public_key: scope.to_json()}
    # the inline activation token is itself a valid activation for this account
    act = claims.decode(jwt.nats["imports"][1]["token"], expected_type="activation")
    assert act.subject == ACC.public_key and act.issuer == OTHER_ACC.public_key
    assert act.nats == {"subject": "other.svc", "kind": "service", "type": "activation", "version": 2}


def test_export_service_response_type_default():
    assert Export("a.b", type="service").to_json() == {
        "name": "a.b", "subject": "a.b", "type": "service", "response_type": "Singleton",
    }  # fmt: skip
    assert "response_type" not in Export("a.b").to_json()


def test_account_signed_by_itself_and_by_signing_key():
    assert claims.decode(account_token(signer=ACC)).issuer == ACC.public_key
    assert claims.decode(account_token(signer=OP_SK)).issuer == OP_SK.public_key


# --- user -----------------------------------------------------------------------------------------


def test_user_defaults_explicit_limits():
    jwt = claims.decode(user_token(), expected_type="user")
    assert jwt.nats == {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}


def test_user_full_round_trip():
    perms = Permissions(
        pub=Permission(allow=("orders.>", "_INBOX.>"), deny=("orders.secret",)),
        sub=Permission(allow=("events.*",), deny=("events.private",)),
        resp=ResponsePermission(max=5, ttl_ns=2_000_000_000),
    )
    limits = UserLimits(subs=10, data=1 << 20, payload=4096, src=("10.0.0.0/8", "192.168.1.1/32"),
                        times=(TimeRange("08:00:00", "17:00:00"), TimeRange("20:00:00", "21:00:00")),
                        times_location="Europe/Paris")
    token = claims.encode(claims.USER, subject=USER.public_key, signer=ACC_SK, iat=IAT, nats=claims.user_nats(
        permissions=perms, limits=limits, bearer_token=True, issuer_account=ACC.public_key,
        allowed_connection_types=["STANDARD", "LEAFNODE"], tags=["B", "a"]))
    jwt = claims.decode(token, expected_type="user")
    assert jwt.issuer == ACC_SK.public_key
    assert jwt.issuer_account == ACC.public_key
    assert jwt.nats == {
        "pub": {"allow": ["orders.>", "_INBOX.>"], "deny": ["orders.secret"]},
        "sub": {"allow": ["events.*"], "deny": ["events.private"]},
        "resp": {"max": 5, "ttl": 2_000_000_000},
        "subs": 10,
        "data": 1 << 20,
        "payload": 4096,
        "src": ["10.0.0.0/8", "192.168.1.1/32"],
        "times": [{"start": "08:00:00", "end": "17:00:00"}, {"start": "20:00:00", "end": "21:00:00"}],
        "times_location": "Europe/Paris",
        "bearer_token": True,
        "allowed_connection_types": ["STANDARD", "LEAFNODE"],
        "issuer_account": ACC.public_key,
        "tags": ["a", "b"],
        "type": "user",
        "version": 2,
    }
    assert Permissions.from_json(jwt.nats) == perms


def test_scoped_user_carries_no_permissions_or_limits():
    token = claims.encode(claims.USER, subject=USER.public_key, signer=SCOPED_SK, iat=IAT,
                          nats=claims.user_nats(scoped=True, issuer_account=ACC.public_key))
    assert claims.decode(token).nats == {"issuer_account": ACC.public_key, "type": "user", "version": 2}


@pytest.mark.parametrize(
    "kwargs",
    [{"permissions": Permissions()}, {"limits": UserLimits()}, {"bearer_token": True}],
)
def test_scoped_user_with_own_permissions_refused(kwargs):
    with pytest.raises(JwtError, match="scoped signing key"):
        claims.user_nats(scoped=True, **kwargs)


def test_permissions_from_json_defaults():
    assert Permissions.from_json(None) == Permissions()
    assert Permissions.from_json({"pub": None, "sub": {"allow": None}}) == Permissions()
    assert Permissions.from_json({"resp": {"max": 3}}).resp == ResponsePermission(max=3, ttl_ns=0)


# --- activation and generic -----------------------------------------------------------------------


def test_activation_round_trip():
    token = claims.encode(claims.ACTIVATION, subject=ACC.public_key, signer=ACC_SK, iat=IAT, exp=IAT + 10,
                          nats=claims.activation_nats(subject="svc.x", kind="service",
                                                      issuer_account=OTHER_ACC.public_key, tags=["T"]))
    jwt = claims.decode(token, expected_type="activation")
    assert jwt.nats == {"subject": "svc.x", "kind": "service", "issuer_account": OTHER_ACC.public_key,
                        "tags": ["t"], "type": "activation", "version": 2}
    assert jwt.issuer_account == OTHER_ACC.public_key


def test_delete_claim():
    accounts = [OTHER_ACC.public_key, ACC.public_key]
    token = claims.encode(claims.GENERIC, subject=OP.public_key, nats=claims.delete_nats(accounts), signer=OP,
                          iat=IAT)
    jwt = claims.decode(token, expected_type="generic")
    assert jwt.subject == jwt.issuer == OP.public_key
    assert jwt.nats == {"accounts": sorted(accounts), "type": "generic", "version": 2}


def test_generic_subject_any_string_but_not_empty():
    assert claims.decode(claims.encode(claims.GENERIC, subject="anything", nats={}, signer=ACC)).subject == "anything"
    with pytest.raises(JwtError, match="needs a subject"):
        claims.encode(claims.GENERIC, subject="", nats={}, signer=OP)


# --- jti ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token_fn",
    [
        lambda: user_token(),
        lambda: account_token(revocations={USER_A: 5}, exports=[Export("a.>")]),
        lambda: claims.encode(claims.OPERATOR, subject=OP.public_key, nats={}, signer=OP, iat=IAT, exp=IAT + 1),
        lambda: claims.encode(claims.USER, subject=USER.public_key, nats={}, signer=ACC, name="Zoë ☃", aud="x"),
    ],
)
def test_jti_is_hash_of_claims_without_jti(token_fn):
    token = token_fn()
    jwt = claims.decode(token)
    assert len(jwt.jti) == 52  # 32 bytes of SHA-512/256 in unpadded base32
    assert jwt.jti == expected_jti(token)
    # and equivalently: the claim set minus jti, serialized compactly in its order
    rest = {k: v for k, v in jwt.claims.items() if k != "jti"}
    text = json.dumps(rest, separators=(",", ":"), ensure_ascii=False)
    assert jwt.jti == base64.b32encode(hashlib.new("sha512_256", text.encode()).digest()).decode().rstrip("=")


def _jti(**overrides) -> str:
    args = {
        "claim_type": claims.USER,
        "subject": USER.public_key,
        "nats": claims.user_nats(),
        "signer": ACC,
        "iat": IAT,
        "name": "u",
    }
    args.update(overrides)
    claim_type = args.pop("claim_type")
    return claims.decode(claims.encode(claim_type, **args)).jti


@pytest.mark.parametrize(
    "overrides",
    [
        {"iat": IAT + 1},
        {"name": "v"},
        {"exp": IAT + 100},
        {"nbf": IAT},
        {"aud": "someone"},
        {"subject": nkeys.generate(KeyType.USER).public_key},
        {"signer": ACC_SK},
        {"nats": claims.user_nats(limits=UserLimits(subs=1))},
        {"nats": claims.user_nats(permissions=Permissions(pub=Permission(allow=("a",))))},
        {"nats": claims.user_nats(bearer_token=True)},
        {"nats": claims.user_nats(tags=["x"])},
    ],
)
def test_jti_changes_when_any_claim_changes(overrides):
    assert _jti(**overrides) != _jti()


def test_jti_stable_for_same_claims():
    assert _jti() == _jti()


def test_jti_differs_for_revocation_only_change_in_same_second():
    a = claims.decode(account_token(revocations={USER_A: IAT}))
    b = claims.decode(account_token(revocations={USER_A: IAT + 1}))
    c = claims.decode(account_token(revocations={USER_A: IAT, USER_B: IAT}))
    assert a.iat == b.iat == c.iat
    assert len({a.jti, b.jti, c.jti}) == 3


def test_jti_differs_for_limit_only_change():
    a = claims.decode(account_token(limits=AccountLimits(conn=1)))
    b = claims.decode(account_token(limits=AccountLimits(conn=2)))
    assert a.jti != b.jti


# --- encode refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim_type", "subject", "signer", "message"),
    [
        (claims.USER, USER.public_key, OP, "signed by a account key, not a operator key"),
        (claims.USER, USER.public_key, USER, "not a user key"),
        (claims.ACCOUNT, ACC.public_key, USER, "not a user key"),
        (claims.OPERATOR, OP.public_key, ACC, "not a account key"),
        (claims.ACTIVATION, ACC.public_key, OP, "not a operator key"),
        (claims.GENERIC, "x", USER, "not a user key"),
        (claims.USER, ACC.public_key, ACC, "subject of a user JWT must be a user key"),
        (claims.ACCOUNT, USER.public_key, OP, "subject of a account JWT must be a account key"),
        (claims.OPERATOR, ACC.public_key, OP, "subject of a operator JWT must be a operator key"),
        (claims.USER, "not-a-key", ACC, "subject of a user JWT"),
        ("server", USER.public_key, ACC, "unknown claim type"),
    ],
)
def test_encode_refuses(claim_type, subject, signer, message):
    with pytest.raises(JwtError, match=message):
        claims.encode(claim_type, subject=subject, nats={}, signer=signer)


# --- decode refusals ------------------------------------------------------------------------------

HEADER = {"typ": "JWT", "alg": "ed25519-nkey"}


def _user_payload(**overrides) -> dict:
    payload = {"jti": "X", "iat": IAT, "iss": ACC.public_key, "name": "u", "sub": USER.public_key,
               "nats": {"pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1, "type": "user", "version": 2}}
    payload.update(overrides)
    return payload


def test_forged_valid_token_decodes():
    # the forge helper itself produces tokens decode accepts (so the refusals below are meaningful)
    assert claims.decode(forge(HEADER, _user_payload(), ACC)).subject == USER.public_key


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ({"typ": "JWT", "alg": "HS256"}, "unsupported JWT algorithm 'HS256'"),
        ({"typ": "JWT", "alg": "none"}, "unsupported JWT algorithm"),
        ({"typ": "JWT"}, "unsupported JWT algorithm None"),
        ({"typ": "JWT", "alg": "ed25519"}, "NATS v1 JWT"),
        ({"typ": "JWS", "alg": "ed25519-nkey"}, "unsupported JWT typ"),
    ],
)
def test_decode_refuses_header(header, message):
    with pytest.raises(JwtError, match=message):
        claims.decode(forge(header, _user_payload(), ACC))


def test_decode_accepts_lowercase_typ():
    assert claims.decode(forge({"typ": "jwt", "alg": "ed25519-nkey"}, _user_payload(), ACC))


@pytest.mark.parametrize("version", [1, 3, None, "2"])
def test_decode_refuses_version(version):
    payload = _user_payload()
    payload["nats"]["version"] = version
    with pytest.raises(JwtError, match="version 2 is required"):
        claims.decode(forge(HEADER, payload, ACC))


def test_decode_refuses_v1_style_payload():
    # v1 tokens put type at the top level and have no nats.version
    payload = _user_payload(type="user", nats={"pub": {}, "sub": {}})
    with pytest.raises(JwtError, match="version"):
        claims.decode(forge({"typ": "JWT", "alg": "ed25519-nkey"}, payload, ACC))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"nats": None}, "no nats section"),
        ({"nats": "x"}, "no nats section"),
        ({"nats": {"type": "server", "version": 2}}, "unknown claim type 'server'"),
        ({"nats": {"version": 2}}, "unknown claim type None"),
        ({"iss": None}, "no issuer"),
        ({"iss": OP.public_key}, "issuer of a user JWT must be a account key, got a operator key"),
        ({"iss": "garbage"}, "issuer of a user JWT"),
        ({"sub": ""}, "no subject"),
        ({"sub": None}, "no subject"),
        ({"sub": ACC.public_key}, "subject of a user JWT must be a user key"),
    ],
)
def test_decode_refuses_claims(overrides, message):
    signer = OP if overrides.get("iss") == OP.public_key else ACC
    with pytest.raises(JwtError, match=message):
        claims.decode(forge(HEADER, _user_payload(**overrides), signer))


def test_decode_refuses_user_signed_by_operator():
    # a properly signed token whose issuer type is wrong for its claim type
    with pytest.raises(JwtError, match="must be a account key"):
        claims.decode(forge(HEADER, _user_payload(iss=OP.public_key), OP))


def test_decode_refuses_bad_signature():
    # iss says ACC but another account signed it
    with pytest.raises(JwtError, match="signature does not verify"):
        claims.decode(forge(HEADER, _user_payload(), OTHER_ACC))


def test_decode_refuses_swapped_signature():
    a, b = user_token(), claims.encode(claims.USER, subject=USER.public_key, nats={}, signer=ACC)
    swapped = ".".join(a.split(".")[:2] + b.split(".")[2:])
    with pytest.raises(JwtError, match="signature"):
        claims.decode(swapped)


def test_decode_refuses_payload_from_other_token():
    a = user_token()
    b = claims.encode(claims.USER, subject=USER.public_key, nats=claims.user_nats(bearer_token=True), signer=ACC,
                      iat=IAT)
    mixed = ".".join([a.split(".")[0], b.split(".")[1], a.split(".")[2]])
    with pytest.raises(JwtError):
        claims.decode(mixed)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c.d",
        "..",
        "a..c",
        "!!!.@@@.###",
        "eyJ.eyJ.sig",
        b64url(b"[1]") + "." + b64url(b"{}") + ".c2ln",
        b64url(json.dumps(HEADER).encode()) + "." + b64url(b"[]") + ".c2ln",
        b64url(json.dumps(HEADER).encode()) + "." + b64url(b"\xff\xfe") + ".c2ln",
        b64url(json.dumps(HEADER).encode()) + "." + b64url(json.dumps(_user_payload()).encode()) + ".c2ln",
        b64url(json.dumps(HEADER).encode()) + "." + b64url(json.dumps(_user_payload()).encode()) + ".!!",
    ],
)
def test_decode_refuses_garbage(token):
    with pytest.raises(JwtError):
        claims.decode(token)
    with pytest.raises(JwtError):
        claims.decode(token.encode())


def test_decode_bytes_and_whitespace():
    token = user_token()
    assert claims.decode(token.encode()).claims == claims.decode(f"  {token}\n").claims


def test_decode_expected_type_mismatch():
    with pytest.raises(JwtError, match="expected a account JWT, got a user JWT"):
        claims.decode(user_token(), expected_type="account")


def test_check_times():
    now = int(time.time())
    expired = claims.encode(claims.USER, subject=USER.public_key, nats={}, signer=ACC, exp=now - 10)
    assert claims.decode(expired).expired()
    with pytest.raises(JwtError, match="expired"):
        claims.decode(expired, check_times=True)
    future = claims.encode(claims.USER, subject=USER.public_key, nats={}, signer=ACC, nbf=now + 3600)
    assert claims.decode(future).not_yet_valid()
    with pytest.raises(JwtError, match="not valid yet"):
        claims.decode(future, check_times=True)
    fine = claims.encode(claims.USER, subject=USER.public_key, nats={}, signer=ACC, exp=now + 3600, nbf=now - 1)
    assert claims.decode(fine, check_times=True).exp == now + 3600
    assert claims.decode(fine).expired(now=now + 3600)
    assert not claims.decode(fine).expired(now=now + 3599)


def test_jwt_error_is_value_error():
    assert issubclass(JwtError, ValueError)


# --- issuer_problems ------------------------------------------------------------------------------


def _operator(strict: bool = False, signing_keys=(OP_SK.public_key,)) -> claims.Jwt:
    nats = claims.operator_nats(signing_keys=signing_keys, strict_signing_key_usage=strict)
    return claims.decode(claims.encode(claims.OPERATOR, subject=OP.public_key, nats=nats, signer=OP, iat=IAT))


def _account(**kwargs) -> claims.Jwt:
    kwargs.setdefault("signing_keys", [ACC_SK.public_key, UserScope(key=SCOPED_SK.public_key, role="r")])
    return claims.decode(account_token(signer=OP_SK, **kwargs))


def _user(signer, **kwargs) -> claims.Jwt:
    return claims.decode(claims.encode(claims.USER, subject=USER.public_key, nats=claims.user_nats(**kwargs),
                                       signer=signer, iat=IAT))


def test_account_signed_by_operator_identity():
    child = claims.decode(account_token(signer=OP))
    assert claims.issuer_problems(child, _operator()) == []
    problems = claims.issuer_problems(child, _operator(strict=True))
    assert problems == ["signed by the operator identity key, refused under strict_signing_key_usage"]


def test_account_signed_by_operator_signing_key():
    child = claims.decode(account_token(signer=OP_SK))
    assert claims.issuer_problems(child, _operator()) == []
    assert claims.issuer_problems(child, _operator(strict=True)) == []


def test_account_signed_by_unknown_operator():
    child = claims.decode(account_token(signer=OTHER_OP))
    assert claims.issuer_problems(child, _operator()) == ["not signed by the operator or one of its signing keys"]
    # a signing key that was removed from the operator no longer vouches
    child = claims.decode(account_token(signer=OP_SK))
    assert claims.issuer_problems(child, _operator(signing_keys=())) != []


def test_self_signed_account_not_trusted_by_operator():
    child = claims.decode(account_token(signer=ACC))
    assert claims.issuer_problems(child, _operator()) == ["not signed by the operator or one of its signing keys"]


def test_delete_claim_trusted_by_operator():
    child = claims.decode(claims.encode(claims.GENERIC, subject=OP.public_key,
                                        nats=claims.delete_nats([ACC.public_key]), signer=OP))
    assert claims.issuer_problems(child, _operator()) == []


def test_user_signed_by_account_identity():
    assert claims.issuer_problems(_user(ACC), _account()) == []
    assert claims.issuer_problems(_user(ACC, issuer_account=ACC.public_key), _account()) == []
    assert claims.issuer_problems(_user(ACC, issuer_account=OTHER_ACC.public_key), _account()) == [
        "issuer_account does not name this account"
    ]


def test_user_signed_by_account_signing_key_with_issuer_account():
    assert claims.issuer_problems(_user(ACC_SK, issuer_account=ACC.public_key), _account()) == []


def test_user_signed_by_account_signing_key_without_issuer_account():
    assert claims.issuer_problems(_user(ACC_SK), _account()) == [
        "signed by an account signing key but issuer_account is not the account"
    ]
    assert claims.issuer_problems(_user(ACC_SK, issuer_account=OTHER_ACC.public_key), _account()) != []


def test_user_signed_by_unknown_key():
    assert claims.issuer_problems(_user(OTHER_ACC, issuer_account=ACC.public_key), _account()) == [
        "not signed by the account or one of its signing keys"
    ]


def test_user_of_removed_signing_key():
    assert claims.issuer_problems(_user(ACC_SK, issuer_account=ACC.public_key), _account(signing_keys=[])) == [
        "not signed by the account or one of its signing keys"
    ]


def test_scoped_user():
    ok = _user(SCOPED_SK, scoped=True, issuer_account=ACC.public_key)
    assert claims.issuer_problems(ok, _account()) == []
    bad = _user(SCOPED_SK, issuer_account=ACC.public_key)  # carries pub/sub/subs/data/payload
    assert claims.issuer_problems(bad, _account()) == [
        "a scoped signing key's user carries permissions or limits of its own"
    ]


def test_activation_issuer():
    act = claims.decode(_activation())
    other = claims.decode(claims.encode(claims.ACCOUNT, subject=OTHER_ACC.public_key,
                                        nats=claims.account_nats(limits=AccountLimits()), signer=OP))
    assert claims.issuer_problems(act, other) == []
    assert claims.issuer_problems(act, _account()) != []


def test_wrong_parent_type():
    assert claims.issuer_problems(_user(ACC), _operator()) == ["a operator JWT does not issue user JWTs"]
    assert claims.issuer_problems(claims.decode(account_token()), _account()) == [
        "a account JWT does not issue account JWTs"
    ]


def test_expired_child_flagged():
    child = claims.decode(claims.encode(claims.USER, subject=USER.public_key, nats=claims.user_nats(), signer=ACC,
                                        exp=int(time.time()) - 1))
    assert claims.issuer_problems(child, _account()) == ["expired"]


# --- property tests -------------------------------------------------------------------------------

_token_chars = string.ascii_letters + string.digits + "-_"
tokens = st.text(alphabet=_token_chars, min_size=1, max_size=6)
literal_subjects = st.lists(tokens, min_size=1, max_size=4).map(".".join)
subjects = st.builds(
    lambda toks, tail: ".".join(toks + ([tail] if tail else [])),
    st.lists(st.one_of(tokens, st.just("*")), min_size=1, max_size=4),
    st.sampled_from(["", "", ">"]),
)
subject_lists = st.lists(subjects, max_size=4).map(tuple)
names = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
limit_values = st.one_of(st.just(-1), st.just(0), st.integers(-1, 2**53))
permissions = st.builds(
    Permissions,
    pub=st.builds(Permission, allow=subject_lists, deny=subject_lists),
    sub=st.builds(Permission, allow=subject_lists, deny=subject_lists),
    resp=st.one_of(st.none(), st.builds(ResponsePermission, max=st.integers(0, 1000), ttl_ns=st.integers(0, 10**12))),
)
user_limits = st.builds(
    UserLimits,
    subs=limit_values,
    data=limit_values,
    payload=limit_values,
    src=st.lists(st.sampled_from(["10.0.0.0/8", "127.0.0.1/32", "::1/128"]), max_size=2, unique=True).map(tuple),
    times=st.lists(st.builds(TimeRange, st.just("01:00:00"), st.just("02:00:00")), max_size=2).map(tuple),
    times_location=st.sampled_from(["", "UTC"]),
)
jetstream_limits = st.builds(
    JetStreamLimits,
    mem_storage=limit_values,
    disk_storage=limit_values,
    streams=limit_values,
    consumer=limit_values,
    max_ack_pending=limit_values,
    mem_max_stream_bytes=limit_values,
    disk_max_stream_bytes=limit_values,
    max_bytes_required=st.booleans(),
)
account_limits = st.builds(
    AccountLimits,
    subs=limit_values,
    data=limit_values,
    payload=limit_values,
    imports=limit_values,
    exports=limit_values,
    wildcards=st.booleans(),
    disallow_bearer=st.booleans(),
    conn=limit_values,
    leaf=limit_values,
    jetstream=jetstream_limits,
)
USER_POOL = [nkeys.generate(KeyType.USER).public_key for _ in range(5)]
revocations = st.dictionaries(st.sampled_from([*USER_POOL, "*"]), st.integers(0, 2**40), max_size=4)
exports = st.lists(
    st.builds(Export, subject=subjects, type=st.sampled_from(["stream", "service"]), name=names,
              token_req=st.booleans(), revocations=revocations, description=names),
    max_size=3,
    unique_by=lambda e: (e.subject, e.type),
)


@settings(max_examples=150, deadline=None)
@given(name=names, perms=permissions, limits=user_limits, bearer=st.booleans(), tags=st.lists(names, max_size=3),
       iat=st.integers(1, 2**40), exp=st.one_of(st.none(), st.integers(1, 2**40)))
def test_property_user_round_trip(name, perms, limits, bearer, tags, iat, exp):
    nats = claims.user_nats(permissions=perms, limits=limits, bearer_token=bearer, tags=tags)
    token = claims.encode(claims.USER, subject=USER.public_key, nats=nats, signer=ACC, iat=iat, exp=exp, name=name)
    jwt = claims.decode(token, expected_type="user")
    assert jwt.claims["nats"] == {**nats, "type": "user", "version": 2}
    assert jwt.name == (name or USER.public_key)
    assert jwt.iat == iat and jwt.exp == exp
    assert jwt.jti == expected_jti(token)
    # independent of user_nats: what was asked for is what is in the token
    got = jwt.claims["nats"]
    assert (got["subs"], got["data"], got["payload"]) == (limits.subs, limits.data, limits.payload)
    assert got["pub"].get("allow", []) == list(perms.pub.allow)
    assert got["sub"].get("deny", []) == list(perms.sub.deny)
    assert got.get("bearer_token", False) is bearer
    assert Permissions.from_json(got) == Permissions(
        pub=perms.pub, sub=perms.sub,
        resp=None if perms.resp is None else ResponsePermission(perms.resp.max, perms.resp.ttl_ns),
    )


@settings(max_examples=150, deadline=None)
@given(name=names, limits=account_limits, exps=exports, revs=revocations, description=names,
       default_perms=st.one_of(st.none(), permissions))
def test_property_account_round_trip(name, limits, exps, revs, description, default_perms):
    nats = claims.account_nats(limits=limits, exports=exps, revocations=revs, description=description,
                               default_permissions=default_perms)
    token = claims.encode(claims.ACCOUNT, subject=ACC.public_key, nats=nats, signer=OP, iat=IAT, name=name)
    jwt = claims.decode(token, expected_type="account")
    assert jwt.claims["nats"] == {**nats, "type": "account", "version": 2}
    got = jwt.claims["nats"]["limits"]
    assert set(got) == ACCOUNT_LIMIT_KEYS
    assert got["conn"] == limits.conn and got["subs"] == limits.subs and got["leaf"] == limits.leaf
    assert got["disk_storage"] == limits.jetstream.disk_storage
    assert jwt.claims["nats"].get("revocations", {}) == revs
    assert sorted(e["subject"] for e in jwt.claims["nats"].get("exports", [])) == sorted(e.subject for e in exps)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    | names,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(names, children, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names.filter(lambda k: k not in ("type", "version")), json_values, max_size=5))
def test_property_generic_round_trip(nats):
    token = claims.encode(claims.GENERIC, subject=OP.public_key, nats=nats, signer=OP, iat=IAT)
    assert claims.decode(token).claims["nats"] == {**nats, "type": "generic", "version": 2}


SAMPLE_TOKENS = [
    user_token(permissions=Permissions(pub=Permission(allow=("a.>",))), limits=UserLimits(subs=3)),
    account_token(revocations={USER_A: 1}, exports=[Export("x.>", type="service", token_req=True)]),
    claims.encode(claims.OPERATOR, subject=OP.public_key, nats=claims.operator_nats(signing_keys=[OP_SK.public_key]),
                  signer=OP, iat=IAT),
    _activation(),
]
SAMPLE_DECODED = [claims.decode(t) for t in SAMPLE_TOKENS]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_any_flipped_byte_in_token_fails(data):
    which = data.draw(st.integers(0, len(SAMPLE_TOKENS) - 1))
    token = SAMPLE_TOKENS[which].encode()
    pos = data.draw(st.integers(0, len(token) - 1))
    xor = data.draw(st.integers(1, 255))
    bad = token[:pos] + bytes([token[pos] ^ xor]) + token[pos + 1 :]
    assert bad != token
    try:
        got = claims.decode(bad)
    except JwtError:
        return
    # Honest escape hatch: if a changed token verified at all, it must carry exactly the same
    # header, claims and signature bytes as the original (e.g. a non-canonical base64 spelling).
    orig = SAMPLE_DECODED[which]
    assert got.header == orig.header
    assert got.claims == orig.claims
    assert unb64url(got.token.split(".")[2]) == unb64url(orig.token.split(".")[2])


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_property_any_flipped_content_byte_fails(data):
    which = data.draw(st.integers(0, len(SAMPLE_TOKENS) - 1))
    parts = SAMPLE_TOKENS[which].split(".")
    part = data.draw(st.integers(0, 2))
    raw = unb64url(parts[part])
    pos = data.draw(st.integers(0, len(raw) - 1))
    xor = data.draw(st.integers(1, 255))
    changed = raw[:pos] + bytes([raw[pos] ^ xor]) + raw[pos + 1 :]
    parts[part] = b64url(changed)
    # the content really changed, so this must never verify
    with pytest.raises(JwtError):
        claims.decode(".".join(parts))


def test_every_single_bit_flip_in_one_token_fails():
    """Exhaustive over one token: every position, one flipped bit, never verifies with new content."""
    token = SAMPLE_TOKENS[0].encode()
    orig = SAMPLE_DECODED[0]
    for pos in range(len(token)):
        for bit in (0x01, 0x20):
            bad = token[:pos] + bytes([token[pos] ^ bit]) + token[pos + 1 :]
            try:
                got = claims.decode(bad)
            except JwtError:
                continue
            assert (got.header, got.claims) == (orig.header, orig.claims)
            assert unb64url(got.token.split(".")[2]) == unb64url(orig.token.split(".")[2])


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_property_decode_garbage_only_raises_jwt_error(text):
    assume(text.strip())
    with pytest.raises(JwtError):
        claims.decode(text)
