"""Why a client cannot connect: the checks nats-server makes on a user's connection, one function each (pure, no
Django).

Each check reads claims the way nats-server 2.x does (``server/auth.go processClientOrLeafAuthentication``,
``server/accounts.go buildPermissionsFromJwt`` and ``isRevoked``, ``server/client.go pubAllowedFullCheck`` and
``canSubscribeInternal``) and says in plain language what to do next. The caller (``broker_gateway.diagnose``)
adds what only the database and the nodes know: which account, its suspension, live connection counts, and which
JWT each node holds. A check never carries a seed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from operators import claims, nkeys
from operators.creds import Creds, CredsError, parse_creds
from operators.nkeys import KeyType, NKeyError
from operators.subjects import overlaps

__all__ = [
    "BLOCKING",
    "INFO",
    "WARNING",
    "Check",
    "Decision",
    "account_expiry_check",
    "bearer_check",
    "connection_type_check",
    "creds_read",
    "issuer_account_check",
    "limit_check",
    "nodes_check",
    "permission_check",
    "permission_decide",
    "revocation_check",
    "seed_pair_check",
    "services_covering",
    "src_times_check",
    "subject_matches",
    "suspension_check",
    "user_issuer_check",
    "user_jwt_read",
    "user_permissions",
    "user_times_check",
    "verdict",
]

BLOCKING, WARNING, INFO = "blocking", "warning", "info"
CONNECTION_TYPES = ("STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS")


@dataclass(frozen=True)
class Check:
    """One thing the servers check: ``ok``, how bad it is when not (``blocking`` refuses the connection), and a
    message that says what to do next."""

    check: str
    ok: bool
    severity: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "severity": self.severity, "message": self.message,
                "detail": dict(self.detail)}


def _ok(check: str, message: str, **detail: Any) -> Check:
    return Check(check, True, INFO, message, detail)


def _fail(check: str, message: str, *, severity: str = BLOCKING, **detail: Any) -> Check:
    return Check(check, False, severity, message, detail)


def verdict(checks: Sequence[Check]) -> dict[str, Any]:
    """The first blocking cause (what to fix first), else the first warning, else "should connect"."""
    blocking = next((c for c in checks if not c.ok and c.severity == BLOCKING), None)
    if blocking is not None:
        return {"ok": False, "cause": blocking.check, "message": blocking.message}
    warning = next((c for c in checks if not c.ok), None)
    if warning is not None:
        return {"ok": True, "cause": warning.check, "message": "Nothing the servers check refuses this user, but: "
                                                              + warning.message}
    return {"ok": True, "cause": None, "message": "Nothing the servers check refuses this user: it should connect. "
                                                  "If it still cannot, check the URL, TLS and the network path."}


# ------------------------------------------------------------------------------------------------
# The creds and the user JWT
# ------------------------------------------------------------------------------------------------


def creds_read(text: str) -> tuple[Check, Creds | None]:
    """The JWT and seed blocks of a ``.creds`` text (the seed stays inside the returned ``Creds``)."""
    try:
        creds = parse_creds(text)
    except CredsError as exc:
        return _fail("creds", f"These creds cannot be read ({exc}). Download the .creds again: it holds a "
                              "'BEGIN NATS USER JWT' block and a 'BEGIN USER NKEY SEED' block."), None
    return _ok("creds", "The creds hold a user JWT and a user seed."), creds


def user_jwt_read(token: str) -> tuple[Check, claims.Jwt | None]:
    """The user JWT decoded with its signature verified against its ``iss`` (the server's ``jwt.DecodeUserClaims``)."""
    try:
        user = claims.decode(token, expected_type=claims.USER)
    except claims.JwtError as exc:
        return _fail("user_jwt", f"The user JWT is not valid ({exc}): the server refuses it with 'Authorization "
                                 "Violation'. Download fresh creds for this user."), None
    return _ok("user_jwt", "The user JWT is well formed and its signature verifies.", user=user.subject,
               name=user.name, issuer=user.issuer), user


def seed_pair_check(user: claims.Jwt, seed: str) -> Check:
    """The seed's public key is the JWT's subject: the client signs the server's nonce with the seed, and the
    server verifies that signature with the JWT's ``sub``."""
    try:
        public = nkeys.from_seed(seed, KeyType.USER).public_key
    except NKeyError as exc:
        return _fail("seed_pair", f"The seed is not a valid user seed ({exc}). Download the .creds again.")
    if public != user.subject:
        return _fail("seed_pair", "The seed does not belong to this user JWT: the server refuses the connection "
                                  "('Authorization Violation', its log says 'Signature not verified'). The JWT and "
                                  "the seed come from different users: use one .creds file as downloaded.",
                     jwt_subject=user.subject, seed_public_key=public)
    return _ok("seed_pair", "The seed belongs to the user JWT (the server's nonce signature will verify).")


# ------------------------------------------------------------------------------------------------
# The chain: issuer, issuer_account, times, revocation
# ------------------------------------------------------------------------------------------------


def user_issuer_check(user: claims.Jwt, account: claims.Jwt) -> Check:
    """Signed by the account's identity key, or by a signing key listed in the account JWT the servers hold
    (``Account.hasIssuer``): a key removed by a rotation no longer vouches for its users."""
    if user.issuer == account.subject:
        return _ok("issuer", "The user is signed by the account's identity key.", issuer=user.issuer)
    keys = account.signing_keys()
    if user.issuer in keys:
        scoped = keys[user.issuer] is not None
        return _ok("issuer", "The user is signed by one of the account's current signing keys"
                             + (" (a scoped key: its role's template sets the permissions)." if scoped else "."),
                   issuer=user.issuer, scoped=scoped)
    return _fail("issuer", "The user was signed by a key that is not (or no longer) one of the account's signing "
                           "keys, probably rotated out: the server refuses it ('User JWT issuer is not known'). "
                           "Issue new creds for this user.",
                 issuer=user.issuer, signing_keys=sorted(keys))


def issuer_account_check(user: claims.Jwt, account: claims.Jwt) -> Check:
    """``nats.issuer_account`` names the account when a signing key signed the user (the server looks the account
    up by it), and is empty or the account when the identity key did."""
    named = user.issuer_account
    if user.issuer != account.subject and named != account.subject:
        return _fail("issuer_account", "The user JWT is signed by a signing key but its issuer_account "
                                       f"({named or 'missing'}) does not name the account {account.subject}: the "
                                       "server looks up the wrong account. Issue new creds.",
                     issuer_account=named, account=account.subject)
    if named and named != account.subject:
        return _fail("issuer_account", f"The user JWT's issuer_account ({named}) is another account. Issue new "
                                       "creds.", issuer_account=named, account=account.subject)
    return _ok("issuer_account", "The user JWT names its account consistently.", account=account.subject)


def _when(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def user_times_check(user: claims.Jwt, *, now: float | None = None) -> Check:
    now = time.time() if now is None else now
    if user.expired(now):
        return _fail("user_expiry", f"The user JWT expired at {_when(int(user.exp))}: the server refuses it ('User "
                                    "JWT no longer valid'). Issue the user new creds with a later expiry.",
                     exp=user.exp)
    if user.not_yet_valid(now):
        nbf = int(user.claims["nbf"])
        return _fail("user_expiry", f"The user JWT is not valid before {_when(nbf)}: wait, or issue creds without "
                                    "a start time. Check the client machine's clock too.", nbf=nbf)
    if user.exp is not None:
        return _ok("user_expiry", f"The user JWT is valid until {_when(int(user.exp))}.", exp=user.exp)
    return _ok("user_expiry", "The user JWT does not expire.")


def account_expiry_check(account: claims.Jwt, *, now: float | None = None) -> Check:
    if account.expired(now):
        return _fail("account_expiry", f"The account JWT expired at {_when(int(account.exp))}: the server refuses "
                                       "every user of it ('Account JWT has expired'). Re-sign the account.",
                     exp=account.exp)
    return _ok("account_expiry", "The account JWT has not expired.")


def revocation_check(user: claims.Jwt, account: claims.Jwt) -> Check:
    """Revoked when the account's ``revocations`` holds the user (or ``*``) at a time >= the JWT's ``iat``."""
    revocations = account.nats.get("revocations") or {}
    for key in (user.subject, "*"):
        ts = revocations.get(key)
        if isinstance(ts, int) and ts >= user.iat:
            who = "this user" if key == user.subject else "every user issued until then"
            return _fail("revocation", f"The account revoked {who} at {_when(ts)}, and this JWT was issued at "
                                       f"{_when(user.iat)}: the server refuses it ('User authentication revoked'). "
                                       "Create a new user, or issue this one a new JWT.",
                         revoked_at=ts, iat=user.iat, key=key)
    return _ok("revocation", "The user is not revoked.")


def bearer_check(user: claims.Jwt, account: claims.Jwt) -> Check:
    if user.nats.get("bearer_token") and (account.nats.get("limits") or {}).get("disallow_bearer"):
        return _fail("bearer", "The user is a bearer token but the account disallows bearer tokens: issue a user "
                               "that signs the nonce (no bearer flag).")
    return _ok("bearer", "Bearer-token policy allows this user.")


def _user_claims(user: claims.Jwt, account: claims.Jwt) -> Mapping[str, Any]:
    """What decides for the user: its own ``nats`` section, or its scoped signing key's template."""
    scope = account.signing_keys().get(user.issuer)
    if scope is not None:
        return scope.get("template") or {}
    return user.nats


def connection_type_check(user: claims.Jwt, account: claims.Jwt, *, kind: str = "STANDARD") -> Check:
    allowed = [str(t).upper() for t in _user_claims(user, account).get("allowed_connection_types") or ()]
    if allowed and kind.upper() not in allowed:
        return _fail("connection_type", f"The user may connect only as {', '.join(allowed)}, not {kind.upper()}: "
                                        "the server refuses it ('Connection type not allowed'). Use an allowed "
                                        "connection type or issue a user that allows this one.",
                     allowed=allowed, kind=kind.upper())
    return _ok("connection_type", f"{kind.upper()} connections are allowed" + ("." if not allowed else
                                                                          f" ({', '.join(allowed)})."),
               allowed=allowed)


def src_times_check(user: claims.Jwt, account: claims.Jwt) -> Check:
    """Source networks and connect times cannot be judged without the client: say what the JWT restricts."""
    nats = _user_claims(user, account)
    src = nats.get("src") or []
    if isinstance(src, str):
        src = [s for s in src.split(",") if s]
    times = nats.get("times") or []
    if not src and not times:
        return _ok("src_times", "The user may connect from any address at any time.")
    parts = []
    if src:
        parts.append(f"only from {', '.join(src)}")
    if times:
        spans = ", ".join(f"{t.get('start')}-{t.get('end')}" for t in times if isinstance(t, dict))
        parts.append(f"only between {spans} ({nats.get('times_location') or 'server local time'})")
    return _fail("src_times", f"The user may connect {' and '.join(parts)}: the server refuses it otherwise ('Bad "
                              "src Ip' / 'Outside connect times'). Check where and when the client connects.",
                 severity=WARNING, src=list(src), times=list(times))


# ------------------------------------------------------------------------------------------------
# The account: suspension and connection limits
# ------------------------------------------------------------------------------------------------


def suspension_check(account: claims.Jwt, *, suspended_reason: str | None = None) -> Check:
    """An account whose JWT admits no connection: suspended (its JWT carries ``conn`` 0, see
    ``accounts_service.selectors.account_limits``), or a limit set to 0."""
    conn = (account.nats.get("limits") or {}).get("conn", 0)  # omitted means 0 to the server
    if suspended_reason is not None:
        return _fail("suspension", f"The account is suspended ({suspended_reason or 'no reason given'}): its JWT "
                                   "admits no connection, so the server refuses every client ('maximum account "
                                   "active connections exceeded'). Upgrade the plan, or wait for the next month if "
                                   "the monthly data allowance ran out.", reason=suspended_reason)
    if conn == 0:
        return _fail("suspension", "The account's connection limit is 0: it admits no client ('maximum account "
                                   "active connections exceeded'). Raise the account's conn limit.", conn=conn)
    return _ok("suspension", "The account is not suspended.")


def limit_check(account: claims.Jwt, *, current: int | None, leaf: bool = False) -> Check:
    """``limits.conn`` (clients) or ``limits.leaf`` (leafnodes) against how many are connected now."""
    key = "leaf" if leaf else "conn"
    name = "leaf_limit" if leaf else "conn_limit"
    what = "leafnode connections" if leaf else "client connections"
    limit = (account.nats.get("limits") or {}).get(key, 0)
    if limit is None or limit < 0:
        return _ok(name, f"The account allows unlimited {what}" + (f" ({current} now)." if current is not None
                                                                   else "."), limit=-1, current=current)
    if current is None:
        return _fail(name, f"The account allows {limit} {what}, and no node told how many are connected now.",
                     severity=WARNING, limit=limit, current=None)
    if current >= limit:
        return _fail(name, f"The account allows {limit} {what} and {current} are connected: the server refuses "
                           "the next one ('maximum account active connections exceeded'). Close unused "
                           "connections or raise the account's limit (the plan bounds it).",
                     severity=BLOCKING if limit > 0 or not leaf else WARNING, limit=limit, current=current)
    return _ok(name, f"{current} of {limit} {what} in use.", limit=limit, current=current)


# ------------------------------------------------------------------------------------------------
# Permissions: may this user publish / subscribe SUBJECT, and which rule decides
# ------------------------------------------------------------------------------------------------


def subject_matches(subject: str, pattern: str) -> bool:
    """Whether a permission ``pattern`` covers ``subject``, as nats-server's sublist matches it: ``*`` one token,
    ``>`` one or more, and wildcard tokens in ``subject`` are matched as tokens (a subscription to ``a.>`` is
    covered by ``a.*``, not by ``a.b``)."""
    sub, pat = subject.split("."), pattern.split(".")
    for i, p in enumerate(pat):
        if p == ">":
            return len(sub) > i
        if i >= len(sub):
            return False
        if p != "*" and p != sub[i]:
            return False
    return len(sub) == len(pat)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str  # "no_permissions", "allow", "deny", "not_in_allow", "responses_only"
    pattern: str | None
    message: str


def user_permissions(user: claims.Jwt, account: claims.Jwt) -> dict[str, Any]:
    """The user's effective permissions (its own, or its scoped key's template)."""
    nats = _user_claims(user, account)
    return {"pub": nats.get("pub") or {}, "sub": nats.get("sub") or {}, "resp": nats.get("resp")}


def permission_decide(permissions: Mapping[str, Any], *, subject: str, action: str) -> Decision:
    """Allowed or denied, and the deciding rule: an allow list that is present must match, then a matching deny
    wins. With ``resp`` and no publish allow list, the server allows publishing only replies
    (``validateResponsePermissions``)."""
    if action not in ("pub", "sub"):
        raise ValueError("action is 'pub' or 'sub'")
    verb = "publish to" if action == "pub" else "subscribe to"
    perm = permissions.get(action) or {}
    allow: list[str] = list(perm.get("allow") or ())
    deny: list[str] = list(perm.get("deny") or ())
    resp = permissions.get("resp") if action == "pub" else None
    allow_list_present = bool(allow) or (resp is not None)
    if not allow_list_present and not deny:
        return Decision(True, "no_permissions", None, f"The user may {verb} {subject!r}: it has no {action} "
                                                      "permissions, so everything is allowed.")
    allow_hit = next((p for p in allow if subject_matches(subject, p)), None)
    if allow_list_present and allow_hit is None:
        if resp is not None:
            return Decision(False, "responses_only" if not allow else "not_in_allow", None,
                            f"The user may not {verb} {subject!r}: no publish allow rule matches it; with "
                            "allow_responses it may publish only to the reply subject of a request it received. "
                            "Add the subject to the publish allow list.")
        return Decision(False, "not_in_allow", None, f"The user may not {verb} {subject!r}: it matches none of the "
                                                     f"allow rules ({', '.join(allow)}). The server answers with "
                                                     "'Permissions Violation'. Add it to the allow list.")
    deny_hit = next((p for p in deny if subject_matches(subject, p)), None)
    if deny_hit is not None:
        return Decision(False, "deny", deny_hit, f"The user may not {verb} {subject!r}: the deny rule {deny_hit!r} "
                                                 "matches it, and deny wins over allow ('Permissions Violation'). "
                                                 "Remove that deny rule or use another subject.")
    if allow_hit is not None:
        note = ""
        if action == "sub" and deny and any(overlaps(subject, d) for d in deny):
            note = " Messages on subjects the deny rules match are not delivered to it."
        return Decision(True, "allow", allow_hit, f"The user may {verb} {subject!r}: the allow rule {allow_hit!r} "
                                                  f"matches it and no deny rule does.{note}")
    return Decision(True, "not_denied", None, f"The user may {verb} {subject!r}: there is no allow list and no deny "
                                              "rule matches it.")


def services_covering(account: claims.Jwt, *, subject: str) -> dict[str, list[dict[str, Any]]]:
    """The account's exports and imports whose subject covers ``subject`` (``local_subject`` for imports)."""
    exports = [{"subject": e.get("subject"), "type": e.get("type"), "name": e.get("name", "")}
               for e in account.nats.get("exports") or () if isinstance(e, dict)
               and subject_matches(subject, str(e.get("subject", "")))]
    imports = [{"subject": i.get("local_subject") or i.get("subject"), "type": i.get("type"),
                "account": i.get("account"), "name": i.get("name", "")}
               for i in account.nats.get("imports") or () if isinstance(i, dict)
               and subject_matches(subject, str(i.get("local_subject") or i.get("subject", "")))]
    return {"exports": exports, "imports": imports}


def permission_check(user: claims.Jwt, account: claims.Jwt, *, subject: str, action: str) -> Check:
    decision = permission_decide(user_permissions(user, account), subject=subject, action=action)
    detail: dict[str, Any] = {"subject": subject, "action": action, "rule": decision.rule,
                              "pattern": decision.pattern, **services_covering(account, subject=subject)}
    return Check("permission", decision.allowed, INFO if decision.allowed else BLOCKING, decision.message, detail)


def nodes_check(rows: Iterable[Mapping[str, Any]]) -> Check:
    """``rows``: each running node with ``node``, ``latest`` (holds the latest JWT: True, False, or None when
    unknown), what it holds (``held_iat``) and, for a node behind, ``refuses``: why the JWT it holds refuses the
    user (empty when it would not)."""
    rows = list(rows)
    behind = [r for r in rows if r.get("latest") is False]
    unknown = [r for r in rows if r.get("latest") is None]
    if not rows:
        return _fail("nodes", "No fleet node is meant to run, so no server was asked which JWT it holds (a "
                              "server outside the fleet is not checked).", severity=WARNING, nodes=[])
    refusing = [r for r in behind if r.get("refuses")]
    if refusing:
        first = refusing[0]
        names = ", ".join(str(r["node"]) for r in refusing)
        return _fail("nodes", f"{len(refusing)} of {len(rows)} nodes ({names}) hold an older account JWT under which "
                              f"this user is refused ({first['refuses']}). A client that lands there fails until the "
                              "node has the latest JWT: it usually catches up within seconds; staff can run "
                              "'fleet sync'.", nodes=rows)
    if behind:
        names = ", ".join(str(r["node"]) for r in behind)
        return _fail("nodes", f"{len(behind)} of {len(rows)} nodes ({names}) do not hold the account's latest JWT: "
                              "a client connected there is judged by an older version (a change may not apply yet). "
                              "It usually catches up within seconds; staff can run 'fleet sync'.",
                     severity=WARNING, nodes=rows)
    if unknown:
        return _fail("nodes", f"{len(unknown)} of {len(rows)} nodes did not say which JWT they hold.",
                     severity=WARNING, nodes=rows)
    return _ok("nodes", f"All {len(rows)} nodes hold the account's latest JWT.", nodes=rows)
