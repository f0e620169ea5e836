"""operators.diagnose: every cause a server refuses a connection for, judged from the claims alone (pure)."""

from __future__ import annotations

import time

import pytest

from operators import claims, creds, nkeys
from operators import diagnose as dx
from operators.nkeys import KeyType

OP = nkeys.generate(KeyType.OPERATOR)
ACC = nkeys.generate(KeyType.ACCOUNT)
SK = nkeys.generate(KeyType.ACCOUNT)
USER = nkeys.generate(KeyType.USER)
NOW = int(time.time())  # read once at import: the checks below are given it (a long run must not age it)


def account(*, keys=(), revocations=None, conn=-1, leaf=-1, exp=None, exports=(), imports=()) -> claims.Jwt:
    nats = claims.account_nats(limits=claims.AccountLimits(conn=conn, leaf=leaf), signing_keys=keys,
                               revocations=revocations, exports=exports, imports=imports)
    return claims.decode(claims.encode(claims.ACCOUNT, subject=ACC.public_key, nats=nats, signer=OP, exp=exp))


def user(*, signer=ACC, iat=None, exp=None, nbf=None, issuer_account="", perms=None, **kw) -> claims.Jwt:
    nats = claims.user_nats(permissions=perms, issuer_account=issuer_account, **kw)
    return claims.decode(claims.encode(claims.USER, subject=USER.public_key, nats=nats, signer=signer,
                                       iat=iat, exp=exp, nbf=nbf))


def perms(pub_allow=(), pub_deny=(), sub_allow=(), sub_deny=(), resp=False) -> claims.Permissions:
    return claims.Permissions(pub=claims.Permission(allow=tuple(pub_allow), deny=tuple(pub_deny)),
                              sub=claims.Permission(allow=tuple(sub_allow), deny=tuple(sub_deny)),
                              resp=claims.ResponsePermission() if resp else None)


# ------------------------------------------------------------------------------------------------
# creds, signature, seed pairing
# ------------------------------------------------------------------------------------------------


def test_creds_without_blocks_is_a_blocking_cause():
    check, parsed = dx.creds_read("hello")
    assert not check.ok and check.severity == dx.BLOCKING and parsed is None
    assert "Download the .creds again" in check.message


def test_creds_read_and_seed_pairs():
    u = user()
    check, parsed = dx.creds_read(creds.format_creds(u.token, USER.seed))
    assert check.ok and parsed is not None
    assert dx.seed_pair_check(u, parsed.seed).ok


def test_wrong_seed_is_named_and_never_shown():
    other = nkeys.generate(KeyType.USER)
    check = dx.seed_pair_check(user(), other.seed)
    assert not check.ok and check.check == "seed_pair" and "Signature not verified" in check.message
    assert other.seed not in str(check.to_json())
    assert check.detail["seed_public_key"] == other.public_key


def test_tampered_user_jwt_fails_its_signature():
    token = user().token
    head, body, sig = token.split(".")
    check, jwt = dx.user_jwt_read(f"{head}.{body}.{sig[:-4]}AAAA")
    assert not check.ok and jwt is None and check.check == "user_jwt"


def test_an_account_jwt_is_not_a_user_jwt():
    check, _ = dx.user_jwt_read(account().token)
    assert not check.ok


# ------------------------------------------------------------------------------------------------
# issuer, issuer_account, times, revocation, bearer, connection types, src/times
# ------------------------------------------------------------------------------------------------


def test_issuer_identity_key_and_current_signing_key_pass():
    assert dx.user_issuer_check(user(), account()).ok
    assert dx.user_issuer_check(user(signer=SK, issuer_account=ACC.public_key), account(keys=[SK.public_key])).ok


def test_issuer_rotated_out_signing_key_is_refused():
    check = dx.user_issuer_check(user(signer=SK, issuer_account=ACC.public_key), account())
    assert not check.ok and check.severity == dx.BLOCKING and "issuer is not known" in check.message


def test_issuer_account_missing_for_a_signing_key_user():
    u = user(signer=SK)
    check = dx.issuer_account_check(u, account(keys=[SK.public_key]))
    assert not check.ok and check.check == "issuer_account"
    assert dx.issuer_account_check(user(signer=SK, issuer_account=ACC.public_key), account(keys=[SK.public_key])).ok


def test_expired_and_not_yet_valid_user():
    assert not dx.user_times_check(user(exp=NOW - 10), now=NOW).ok
    assert "expired" in dx.user_times_check(user(exp=NOW - 10), now=NOW).message
    assert not dx.user_times_check(user(nbf=NOW + 3600), now=NOW).ok
    assert dx.user_times_check(user(exp=NOW + 3600), now=NOW).ok


def test_expired_account():
    check = dx.account_expiry_check(account(exp=NOW - 5), now=NOW)
    assert not check.ok and "Account JWT has expired" in check.message
    assert dx.account_expiry_check(account(exp=NOW + 100), now=NOW).ok


@pytest.mark.parametrize(("key", "ts_offset", "revoked"), [
    ("user", 0, True),  # revoked at iat: refused (iat <= ts)
    ("user", 5, True),
    ("user", -1, False),  # re-issued after the revocation
    ("*", 0, True),
    ("*", -1, False),
])
def test_revocation_at_or_after_iat(key, ts_offset, revoked):
    u = user(iat=NOW)
    target = USER.public_key if key == "user" else "*"
    check = dx.revocation_check(u, account(revocations={target: NOW + ts_offset}))
    assert check.ok is not revoked
    if revoked:
        assert "User authentication revoked" in check.message


def test_bearer_disallowed():
    nats = claims.account_nats(limits=claims.AccountLimits(disallow_bearer=True))
    acc = claims.decode(claims.encode(claims.ACCOUNT, subject=ACC.public_key, nats=nats, signer=OP))
    assert not dx.bearer_check(user(bearer_token=True), acc).ok
    assert dx.bearer_check(user(), acc).ok


def test_connection_types():
    u = user(allowed_connection_types=["WEBSOCKET"])
    check = dx.connection_type_check(u, account(), kind="STANDARD")
    assert not check.ok and "Connection type not allowed" in check.message
    assert dx.connection_type_check(u, account(), kind="websocket").ok
    assert dx.connection_type_check(user(), account()).ok


def test_src_and_times_are_warnings():
    u = user(limits=claims.UserLimits(src=("10.0.0.0/8",), times=(claims.TimeRange("08:00:00", "17:00:00"),)))
    check = dx.src_times_check(u, account())
    assert not check.ok and check.severity == dx.WARNING and "10.0.0.0/8" in check.message
    assert dx.src_times_check(user(), account()).ok


# ------------------------------------------------------------------------------------------------
# suspension and limits
# ------------------------------------------------------------------------------------------------


def test_suspended_account_names_the_reason():
    check = dx.suspension_check(account(conn=0, leaf=0), suspended_reason="monthly data allowance used up")
    assert not check.ok and "suspended" in check.message and "monthly data allowance" in check.message


def test_conn_zero_without_suspension():
    assert not dx.suspension_check(account(conn=0), suspended_reason=None).ok
    assert dx.suspension_check(account(conn=5), suspended_reason=None).ok


@pytest.mark.parametrize(("limit", "current", "ok"), [(-1, 100, True), (3, 2, True), (3, 3, False), (3, None, False)])
def test_conn_limit(limit, current, ok):
    check = dx.limit_check(account(conn=limit), current=current)
    assert check.ok is ok
    if current is None:
        assert check.severity == dx.WARNING
    elif not ok:
        assert check.severity == dx.BLOCKING and "maximum account active connections exceeded" in check.message


def test_leaf_limit():
    check = dx.limit_check(account(leaf=2), current=2, leaf=True)
    assert not check.ok and check.check == "leaf_limit"


# ------------------------------------------------------------------------------------------------
# permissions: the deciding rule
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "pattern", "match"), [
    ("a.b", "a.b", True), ("a.b", "a.*", True), ("a.b.c", "a.*", False), ("a.b.c", "a.>", True),
    ("a", "a.>", False), ("a.>", "a.*", True), ("a.>", "a.b", False), ("a.*", "a.>", True), ("x", ">", True),
])
def test_subject_matches_like_the_sublist(subject, pattern, match):
    assert dx.subject_matches(subject, pattern) is match


def test_no_permissions_allow_everything():
    d = dx.permission_decide(perms().to_json(), subject="x.y", action="pub")
    assert d.allowed and d.rule == "no_permissions"


def test_allow_rule_decides():
    d = dx.permission_decide(perms(pub_allow=["orders.>"]).to_json(), subject="orders.new", action="pub")
    assert d.allowed and d.rule == "allow" and d.pattern == "orders.>"


def test_not_in_allow_list():
    d = dx.permission_decide(perms(pub_allow=["orders.>"]).to_json(), subject="billing.x", action="pub")
    assert not d.allowed and d.rule == "not_in_allow" and "Permissions Violation" in d.message


def test_deny_wins_over_allow():
    d = dx.permission_decide(perms(pub_allow=[">"], pub_deny=["orders.secret"]).to_json(), subject="orders.secret",
                             action="pub")
    assert not d.allowed and d.rule == "deny" and d.pattern == "orders.secret"


def test_deny_only_list():
    p = perms(sub_deny=["a.*"]).to_json()
    assert not dx.permission_decide(p, subject="a.b", action="sub").allowed
    assert dx.permission_decide(p, subject="b.c", action="sub").rule == "not_denied"


def test_wildcard_subscription_overlapping_a_deny_is_allowed_with_a_note():
    d = dx.permission_decide(perms(sub_allow=[">"], sub_deny=["a.secret"]).to_json(), subject="a.*", action="sub")
    assert d.allowed and "not delivered" in d.message


def test_allow_responses_without_pub_allow_denies_other_publishes():
    d = dx.permission_decide(perms(resp=True).to_json(), subject="anything", action="pub")
    assert not d.allowed and d.rule == "responses_only" and "reply subject" in d.message


def test_scoped_key_template_decides():
    scope = claims.UserScope(key=SK.public_key, role="ro", permissions=perms(pub_allow=["ro.>"]))
    u = claims.decode(claims.encode(claims.USER, subject=USER.public_key, signer=SK,
                                    nats=claims.user_nats(scoped=True, issuer_account=ACC.public_key)))
    acc = account(keys=[scope])
    assert not dx.permission_check(u, acc, subject="rw.x", action="pub").ok
    assert dx.permission_check(u, acc, subject="ro.x", action="pub").ok


def test_permission_check_names_services_covering_the_subject():
    acc = account(exports=[claims.Export(subject="svc.>", type="service", name="svc")])
    check = dx.permission_check(user(), acc, subject="svc.time", action="pub")
    assert check.ok and check.detail["exports"][0]["subject"] == "svc.>"


# ------------------------------------------------------------------------------------------------
# nodes and the verdict
# ------------------------------------------------------------------------------------------------


def test_nodes_behind_that_refuse_are_blocking():
    rows = [{"node": "n1", "latest": True}, {"node": "n2", "latest": False, "refuses": "issuer not known"}]
    check = dx.nodes_check(rows)
    assert not check.ok and check.severity == dx.BLOCKING and "n2" in check.message


def test_nodes_behind_that_would_accept_warn():
    check = dx.nodes_check([{"node": "n1", "latest": False, "refuses": ""}])
    assert not check.ok and check.severity == dx.WARNING
    assert dx.nodes_check([{"node": "n1", "latest": True}]).ok
    assert not dx.nodes_check([]).ok and dx.nodes_check([]).severity == dx.WARNING


def test_verdict_is_the_first_blocking_cause():
    checks = [dx.Check("a", True, dx.INFO, "fine"), dx.Check("w", False, dx.WARNING, "hmm"),
              dx.Check("b", False, dx.BLOCKING, "fix b"), dx.Check("c", False, dx.BLOCKING, "fix c")]
    assert dx.verdict(checks) == {"ok": False, "cause": "b", "message": "fix b"}
    assert dx.verdict(checks[:2])["ok"] and dx.verdict(checks[:2])["cause"] == "w"
    assert dx.verdict(checks[:1])["cause"] is None
