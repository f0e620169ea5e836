"""NATS JWT v2: build, sign, decode and verify operator, account, user, activation and generic claims.

Pure code, no Django. Signing goes through PyJWT with a private ``PyJWS`` instance that has the
``ed25519-nkey`` algorithm registered (https://docs.nats.io/running-a-nats-service/nats_admin/security/jwt).
Limits are always written explicitly: in a NATS JWT an omitted limit means 0, not unlimited.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jwt as pyjwt
from jwt.algorithms import Algorithm
from jwt.api_jws import PyJWS

from operators import nkeys
from operators.nkeys import KeyPair, KeyType, NKeyError

__all__ = [
    "ALGORITHM",
    "UNLIMITED",
    "AccountLimits",
    "Export",
    "Import",
    "JetStreamLimits",
    "Jwt",
    "JwtError",
    "Permission",
    "Permissions",
    "ResponsePermission",
    "TimeRange",
    "UserLimits",
    "UserScope",
    "WeightedMapping",
    "account_nats",
    "activation_nats",
    "decode",
    "delete_nats",
    "encode",
    "encode_signed",
    "operator_nats",
    "user_nats",
]

ALGORITHM = "ed25519-nkey"
UNLIMITED = -1
LIB_VERSION = 2

OPERATOR, ACCOUNT, USER, ACTIVATION, GENERIC = "operator", "account", "user", "activation", "generic"
CLAIM_TYPES = (OPERATOR, ACCOUNT, USER, ACTIVATION, GENERIC)

# Who may sign which claim type (the issuer key's type) and what its subject is.
_ISSUER_TYPES = {
    OPERATOR: (KeyType.OPERATOR,),
    ACCOUNT: (KeyType.OPERATOR, KeyType.ACCOUNT),
    USER: (KeyType.ACCOUNT,),
    ACTIVATION: (KeyType.ACCOUNT,),
    GENERIC: (KeyType.OPERATOR, KeyType.ACCOUNT),
}
_SUBJECT_TYPES = {
    OPERATOR: (KeyType.OPERATOR,),
    ACCOUNT: (KeyType.ACCOUNT,),
    USER: (KeyType.USER,),
    ACTIVATION: (KeyType.ACCOUNT,),
    GENERIC: None,  # any string
}


class JwtError(ValueError):
    """A JWT that cannot be built, decoded or trusted, with the reason."""


# ---------------------------------------------------------------------------------------------
# The ed25519-nkey algorithm for PyJWT
# ---------------------------------------------------------------------------------------------


class NkeyAlgorithm(Algorithm):
    """ed25519 over an nkey: signs with a ``KeyPair``, verifies with a public key string."""

    def prepare_key(self, key: Any) -> Any:
        if isinstance(key, KeyPair):
            return key
        if isinstance(key, bytes):
            key = key.decode("ascii")
        if isinstance(key, str):
            nkeys.decode_public_key(key)
            return key
        raise JwtError("an ed25519-nkey key is a KeyPair (to sign) or a public key (to verify)")

    def sign(self, msg: bytes, key: KeyPair) -> bytes:
        return key.sign(msg)

    def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
        public = key.public_key if isinstance(key, KeyPair) else key
        return nkeys.verify(public, msg, sig)

    @staticmethod
    def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:  # pragma: no cover - not used by NATS
        raise NotImplementedError("nkeys have no JWK form")

    @staticmethod
    def from_jwk(jwk: Any) -> Any:  # pragma: no cover - not used by NATS
        raise NotImplementedError("nkeys have no JWK form")


_jws = PyJWS(algorithms=[])
_jws.register_algorithm(ALGORITHM, NkeyAlgorithm())
_ALG = _jws.get_algorithm_by_name(ALGORITHM)
# The header never changes, so its segment is computed once (PyJWS.encode would re-serialize it per call).
_HEADER_SEGMENT = base64.urlsafe_b64encode(
    json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":"), sort_keys=True).encode()
).rstrip(b"=")

# ---------------------------------------------------------------------------------------------
# Claim building blocks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Permission:
    """Subjects allowed and denied for publish or subscribe."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if self.allow:
            out["allow"] = list(self.allow)
        if self.deny:
            out["deny"] = list(self.deny)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Permission:
        data = data or {}
        return cls(allow=tuple(data.get("allow") or ()), deny=tuple(data.get("deny") or ()))


@dataclass(frozen=True)
class ResponsePermission:
    """Allow publishing to reply subjects of received requests: ``max`` replies within ``ttl_ns``."""

    max: int = 1
    ttl_ns: int = 0

    def to_json(self) -> dict[str, int]:
        return {"max": self.max, "ttl": self.ttl_ns}


@dataclass(frozen=True)
class Permissions:
    pub: Permission = Permission()
    sub: Permission = Permission()
    resp: ResponsePermission | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pub": self.pub.to_json(), "sub": self.sub.to_json()}
        if self.resp is not None:
            out["resp"] = self.resp.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Permissions:
        data = data or {}
        resp = data.get("resp")
        return cls(
            pub=Permission.from_json(data.get("pub")),
            sub=Permission.from_json(data.get("sub")),
            resp=ResponsePermission(max=resp.get("max", 0), ttl_ns=resp.get("ttl", 0)) if resp else None,
        )


@dataclass(frozen=True)
class TimeRange:
    """A daily window (``HH:MM:SS``) in which a user may connect."""

    start: str
    end: str

    def to_json(self) -> dict[str, str]:
        return {"start": self.start, "end": self.end}


@dataclass(frozen=True)
class UserLimits:
    """Per-connection limits of a user (-1 = unlimited) and where and when it may connect from."""

    subs: int = UNLIMITED
    data: int = UNLIMITED
    payload: int = UNLIMITED
    src: tuple[str, ...] = ()
    times: tuple[TimeRange, ...] = ()
    times_location: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subs": self.subs, "data": self.data, "payload": self.payload}
        if self.src:
            out["src"] = list(self.src)
        if self.times:
            out["times"] = [t.to_json() for t in self.times]
        if self.times_location:
            out["times_location"] = self.times_location
        return out


@dataclass(frozen=True)
class JetStreamLimits:
    """JetStream limits of an account; storage of 0 in both memory and disk leaves JetStream off."""

    mem_storage: int = 0
    disk_storage: int = 0
    streams: int = 0
    consumer: int = 0
    max_ack_pending: int = 0
    mem_max_stream_bytes: int = 0
    disk_max_stream_bytes: int = 0
    max_bytes_required: bool = False

    @property
    def enabled(self) -> bool:
        return self.mem_storage != 0 or self.disk_storage != 0

    def to_json(self) -> dict[str, Any]:
        return {
            "mem_storage": self.mem_storage,
            "disk_storage": self.disk_storage,
            "streams": self.streams,
            "consumer": self.consumer,
            "max_ack_pending": self.max_ack_pending,
            "mem_max_stream_bytes": self.mem_max_stream_bytes,
            "disk_max_stream_bytes": self.disk_max_stream_bytes,
            "max_bytes_required": self.max_bytes_required,
        }


@dataclass(frozen=True)
class AccountLimits:
    """Account limits as the operator sets them; every key is written, -1 meaning unlimited."""

    subs: int = UNLIMITED
    data: int = UNLIMITED
    payload: int = UNLIMITED
    imports: int = UNLIMITED
    exports: int = UNLIMITED
    wildcards: bool = True
    disallow_bearer: bool = False
    conn: int = UNLIMITED
    leaf: int = UNLIMITED
    jetstream: JetStreamLimits = JetStreamLimits()
    tiered: Mapping[str, JetStreamLimits] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subs": self.subs,
            "data": self.data,
            "payload": self.payload,
            "imports": self.imports,
            "exports": self.exports,
            "wildcards": self.wildcards,
            "disallow_bearer": self.disallow_bearer,
            "conn": self.conn,
            "leaf": self.leaf,
        }
        if self.tiered:
            if self.jetstream.enabled:
                raise JwtError("JetStream limits and tiered JetStream limits are mutually exclusive")
            out.update(JetStreamLimits().to_json())
            out["tiered_limits"] = {tier: lim.to_json() for tier, lim in sorted(self.tiered.items())}
        else:
            out.update(self.jetstream.to_json())
        return out


@dataclass(frozen=True)
class Export:
    """A stream or service an account offers; ``token_req`` makes it private (activation needed)."""

    subject: str
    type: str = "stream"
    name: str = ""
    token_req: bool = False
    revocations: Mapping[str, int] = field(default_factory=dict)
    response_type: str = ""
    response_threshold_ns: int = 0
    account_token_position: int = 0
    advertise: bool = False
    description: str = ""
    info_url: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name or self.subject, "subject": self.subject, "type": self.type}
        if self.token_req:
            out["token_req"] = True
        if self.revocations:
            out["revocations"] = dict(sorted(self.revocations.items()))
        if self.type == "service":
            out["response_type"] = self.response_type or "Singleton"
            if self.response_threshold_ns:
                out["response_threshold"] = self.response_threshold_ns
        if self.account_token_position:
            out["account_token_position"] = self.account_token_position
        if self.advertise:
            out["advertise"] = True
        if self.description:
            out["description"] = self.description
        if self.info_url:
            out["info_url"] = self.info_url
        return out


@dataclass(frozen=True)
class Import:
    """Another account's export brought in, optionally under ``local_subject``, with a token if private."""

    subject: str
    account: str
    type: str = "stream"
    name: str = ""
    token: str = ""
    local_subject: str = ""
    share: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name or self.subject,
            "subject": self.subject,
            "account": self.account,
            "type": self.type,
        }
        if self.token:
            out["token"] = self.token
        if self.local_subject:
            out["local_subject"] = self.local_subject
        if self.share:
            out["share"] = True
        return out


@dataclass(frozen=True)
class UserScope:
    """A scoped signing key: users it signs get the template's permissions and limits, none of their own."""

    key: str
    role: str
    permissions: Permissions = Permissions()
    limits: UserLimits = UserLimits()
    bearer_token: bool = False
    allowed_connection_types: tuple[str, ...] = ()
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        template: dict[str, Any] = {**self.permissions.to_json(), **self.limits.to_json()}
        if self.bearer_token:
            template["bearer_token"] = True
        if self.allowed_connection_types:
            template["allowed_connection_types"] = list(self.allowed_connection_types)
        out: dict[str, Any] = {"kind": "user_scope", "key": self.key, "role": self.role, "template": template}
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class WeightedMapping:
    """One destination of a subject mapping."""

    subject: str
    weight: int = 100
    cluster: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"subject": self.subject, "weight": self.weight}
        if self.cluster:
            out["cluster"] = self.cluster
        return out


def _tags(tags: Iterable[str]) -> list[str]:
    # nats-io/jwt lower-cases and de-duplicates tags.
    return sorted({t.strip().lower() for t in tags if t.strip()})


# ---------------------------------------------------------------------------------------------
# The ``nats`` section of each claim type
# ---------------------------------------------------------------------------------------------


def operator_nats(
    *,
    signing_keys: Iterable[str] = (),
    system_account: str = "",
    account_server_url: str = "",
    operator_service_urls: Iterable[str] = (),
    strict_signing_key_usage: bool = False,
    assert_server_version: str = "",
    tags: Iterable[str] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = sorted(signing_keys)
    if keys:
        out["signing_keys"] = keys
    if account_server_url:
        out["account_server_url"] = account_server_url
    urls = list(operator_service_urls)
    if urls:
        out["operator_service_urls"] = urls
    if system_account:
        out["system_account"] = system_account
    if assert_server_version:
        out["assert_server_version"] = assert_server_version
    if strict_signing_key_usage:
        out["strict_signing_key_usage"] = True
    if tags:
        out["tags"] = _tags(tags)
    return out


def account_nats(
    *,
    limits: AccountLimits,
    exports: Iterable[Export] = (),
    imports: Iterable[Import] = (),
    revocations: Mapping[str, int] | None = None,
    signing_keys: Iterable[str | UserScope] = (),
    default_permissions: Permissions | None = None,
    mappings: Mapping[str, Iterable[WeightedMapping]] | None = None,
    description: str = "",
    info_url: str = "",
    tags: Iterable[str] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    exp = sorted(exports, key=lambda e: (e.subject, e.type))
    if exp:
        out["exports"] = [e.to_json() for e in exp]
    imp = sorted(imports, key=lambda i: (i.local_subject or i.subject, i.account, i.subject))
    if imp:
        out["imports"] = [i.to_json() for i in imp]
    out["limits"] = limits.to_json()
    keys = sorted(signing_keys, key=lambda k: k if isinstance(k, str) else k.key)
    if keys:
        out["signing_keys"] = [k if isinstance(k, str) else k.to_json() for k in keys]
    if revocations:
        out["revocations"] = dict(sorted(revocations.items()))
    if default_permissions is not None:
        out["default_permissions"] = default_permissions.to_json()
    if mappings:
        out["mappings"] = {src: [m.to_json() for m in dests] for src, dests in sorted(mappings.items())}
    if description:
        out["description"] = description
    if info_url:
        out["info_url"] = info_url
    if tags:
        out["tags"] = _tags(tags)
    return out


def user_nats(
    *,
    permissions: Permissions | None = None,
    limits: UserLimits | None = None,
    bearer_token: bool = False,
    issuer_account: str = "",
    allowed_connection_types: Iterable[str] = (),
    scoped: bool = False,
    tags: Iterable[str] = (),
) -> dict[str, Any]:
    """A user's ``nats`` section. ``scoped`` users (signed by a scoped key) carry no permissions or limits."""
    out: dict[str, Any] = {}
    if not scoped:
        out.update((permissions or Permissions()).to_json())
        out.update((limits or UserLimits()).to_json())
        if bearer_token:
            out["bearer_token"] = True
        types = list(allowed_connection_types)
        if types:
            out["allowed_connection_types"] = types
    elif permissions is not None or limits is not None or bearer_token:
        raise JwtError("a user of a scoped signing key carries no permissions or limits of its own")
    if issuer_account:
        out["issuer_account"] = issuer_account
    if tags:
        out["tags"] = _tags(tags)
    return out


def activation_nats(*, subject: str, kind: str, issuer_account: str = "", tags: Iterable[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": subject, "kind": kind}
    if issuer_account:
        out["issuer_account"] = issuer_account
    if tags:
        out["tags"] = _tags(tags)
    return out


def delete_nats(accounts: Iterable[str]) -> dict[str, Any]:
    """The generic claim that tells the full resolver to delete accounts (``$SYS.REQ.CLAIMS.DELETE``)."""
    return {"accounts": sorted(accounts)}


# ---------------------------------------------------------------------------------------------
# Encode
# ---------------------------------------------------------------------------------------------


_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SHA512_256 = hashlib.new("sha512_256")  # copied per use: cheaper than looking the algorithm up each time
_B32_PAIRS = [a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"]


def _b32_nopad(digest: bytes) -> str:
    """Base32 without padding of a 32-byte digest (as ``base64.b32encode``, which is pure Python and slow)."""
    n = int.from_bytes(digest + b"\0\0\0", "big")  # 280 bits = 28 groups of 10 bits
    return "".join([_B32_PAIRS[(n >> s) & 1023] for s in range(270, -1, -10)])[:52]


def _check_key(value: str, allowed: tuple[KeyType, ...], what: str) -> None:
    try:
        key_type = nkeys.key_type_of(value)
    except NKeyError as exc:
        raise JwtError(f"{what} {value!r}: {exc}") from exc
    if key_type not in allowed:
        names = " or ".join(t.label for t in allowed)
        raise JwtError(f"{what} must be a {names} key, got a {key_type.label} key")


class Signed(NamedTuple):
    """A freshly signed JWT with the ``jti`` and ``iat`` it carries (no need to decode it again)."""

    token: str
    jti: str
    iat: int


def encode(claim_type: str, **kwargs: Any) -> str:
    """Sign a claim of ``claim_type`` and return the JWT; see ``encode_signed``."""
    return encode_signed(claim_type, **kwargs).token


def encode_signed(
    claim_type: str,
    *,
    subject: str,
    nats: Mapping[str, Any],
    signer: KeyPair,
    iat: int | None = None,
    name: str = "",
    exp: int | None = None,
    nbf: int | None = None,
    aud: str = "",
) -> Signed:
    """Sign a claim of ``claim_type``; ``jti`` is the SHA-512/256 of the whole claim set."""
    if claim_type not in CLAIM_TYPES:
        raise JwtError(f"unknown claim type {claim_type!r}")
    subject_types = _SUBJECT_TYPES[claim_type]
    if subject_types is not None:
        _check_key(subject, subject_types, f"the subject of a {claim_type} JWT")
    elif not subject:
        raise JwtError("a JWT needs a subject")
    if signer.key_type not in _ISSUER_TYPES[claim_type]:
        names = " or ".join(t.label for t in _ISSUER_TYPES[claim_type])
        raise JwtError(f"a {claim_type} JWT is signed by a {names} key, not a {signer.key_type.label} key")
    body: dict[str, Any] = {}
    if aud:
        body["aud"] = aud
    if exp is not None:
        body["exp"] = int(exp)
    body["iat"] = int(time.time()) if iat is None else int(iat)
    body["iss"] = signer.public_key
    body["name"] = name or subject
    if nbf is not None:
        body["nbf"] = int(nbf)
    body["sub"] = subject
    body["nats"] = {**nats, "type": claim_type, "version": LIB_VERSION}
    rest = _JSON.encode(body)
    try:
        rest_bytes = rest.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise JwtError("the claims hold text that is not valid Unicode (a lone surrogate)") from exc
    digest = _SHA512_256.copy()
    digest.update(rest_bytes)
    jti = _b32_nopad(digest.digest())
    payload = b'{"jti":"' + jti.encode("ascii") + b'",' + rest_bytes[1:]
    signing_input = _HEADER_SEGMENT + b"." + base64.urlsafe_b64encode(payload).rstrip(b"=")
    signature = base64.urlsafe_b64encode(_ALG.sign(signing_input, signer)).rstrip(b"=")
    return Signed(token=(signing_input + b"." + signature).decode("ascii"), jti=jti, iat=body["iat"])


# ---------------------------------------------------------------------------------------------
# Decode and verify
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Jwt:
    """A decoded NATS JWT whose signature has been checked against its issuer."""

    token: str
    header: dict[str, Any]
    claims: dict[str, Any]

    @property
    def type(self) -> str:
        return self.nats.get("type", "")

    @property
    def nats(self) -> dict[str, Any]:
        return self.claims.get("nats") or {}

    @property
    def subject(self) -> str:
        return self.claims.get("sub", "")

    @property
    def issuer(self) -> str:
        return self.claims.get("iss", "")

    @property
    def issuer_account(self) -> str:
        return self.nats.get("issuer_account", "")

    @property
    def name(self) -> str:
        return self.claims.get("name", "")

    @property
    def iat(self) -> int:
        return int(self.claims.get("iat", 0))

    @property
    def exp(self) -> int | None:
        return self.claims.get("exp")

    @property
    def jti(self) -> str:
        return self.claims.get("jti", "")

    def signing_keys(self) -> dict[str, dict[str, Any] | None]:
        """Signing keys of an operator or account: key → its scope (None if unscoped)."""
        out: dict[str, dict[str, Any] | None] = {}
        for item in self.nats.get("signing_keys") or ():
            if isinstance(item, str):
                out[item] = None
            elif isinstance(item, dict) and "key" in item:
                out[item["key"]] = item
        return out

    def expired(self, now: float | None = None) -> bool:
        return self.exp is not None and self.exp <= (time.time() if now is None else now)

    def not_yet_valid(self, now: float | None = None) -> bool:
        nbf = self.claims.get("nbf")
        return nbf is not None and nbf > (time.time() if now is None else now)


def _b64_json(part: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise JwtError(f"the JWT {what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise JwtError(f"the JWT {what} is not a JSON object")
    return value


def decode(token: str | bytes, *, expected_type: str | None = None, check_times: bool = False) -> Jwt:
    """Decode a NATS v2 JWT and verify its signature against its ``iss``; JwtError says why not."""
    if isinstance(token, bytes):
        token = token.decode("ascii", errors="replace")
    token = token.strip()
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        raise JwtError("a JWT has three non-empty dot-separated parts")
    header = _b64_json(parts[0], "header")
    if header.get("alg") != ALGORITHM:
        if header.get("alg") == "ed25519":
            raise JwtError("this is a NATS v1 JWT; only v2 (alg ed25519-nkey) is supported")
        raise JwtError(f"unsupported JWT algorithm {header.get('alg')!r}")
    if str(header.get("typ", "")).upper() != "JWT":
        raise JwtError(f"unsupported JWT typ {header.get('typ')!r}")
    claims = _b64_json(parts[1], "payload")
    nats = claims.get("nats")
    if not isinstance(nats, dict):
        raise JwtError("the JWT has no nats section")
    if nats.get("version") != LIB_VERSION:
        raise JwtError(f"the JWT is version {nats.get('version')!r}; version 2 is required")
    claim_type = nats.get("type")
    if claim_type not in CLAIM_TYPES:
        raise JwtError(f"unknown claim type {claim_type!r}")
    if expected_type is not None and claim_type != expected_type:
        raise JwtError(f"expected a {expected_type} JWT, got a {claim_type} JWT")
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise JwtError("the JWT has no issuer")
    _check_key(issuer, _ISSUER_TYPES[claim_type], f"the issuer of a {claim_type} JWT")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise JwtError("the JWT has no subject")
    if _SUBJECT_TYPES[claim_type] is not None:
        _check_key(subject, _SUBJECT_TYPES[claim_type], f"the subject of a {claim_type} JWT")
    try:
        _jws.decode_complete(token, key=issuer, algorithms=[ALGORITHM])
    except pyjwt.InvalidSignatureError as exc:
        raise JwtError("the JWT signature does not verify against its issuer") from exc
    except pyjwt.PyJWTError as exc:
        raise JwtError(f"the JWT is malformed: {exc}") from exc
    decoded = Jwt(token=token, header=header, claims=claims)
    if check_times:
        if decoded.expired():
            raise JwtError("the JWT has expired")
        if decoded.not_yet_valid():
            raise JwtError("the JWT is not valid yet")
    return decoded


def issuer_problems(child: Jwt, parent: Jwt) -> list[str]:
    """Why ``parent`` (operator or account JWT) does not vouch for ``child``; empty if it does.

    An account JWT is trusted if signed by the operator's identity key or one of its signing keys
    (only the latter under ``strict_signing_key_usage``). A user or activation JWT is trusted if
    signed by the account, or by one of its signing keys with ``issuer_account`` naming it.
    """
    problems: list[str] = []
    keys = parent.signing_keys()
    if parent.type == OPERATOR and child.type in (ACCOUNT, GENERIC):
        if child.issuer == parent.subject:
            if parent.nats.get("strict_signing_key_usage"):
                problems.append("signed by the operator identity key, refused under strict_signing_key_usage")
        elif child.issuer not in keys:
            problems.append("not signed by the operator or one of its signing keys")
    elif parent.type == ACCOUNT and child.type in (USER, ACTIVATION):
        if child.issuer == parent.subject:
            if child.issuer_account and child.issuer_account != parent.subject:
                problems.append("issuer_account does not name this account")
        elif child.issuer not in keys:
            problems.append("not signed by the account or one of its signing keys")
        elif child.issuer_account != parent.subject:
            problems.append("signed by an account signing key but issuer_account is not the account")
        elif child.type == USER and keys.get(child.issuer) is not None:
            own = {k for k in ("pub", "sub", "resp", "subs", "data", "payload", "bearer_token", "src", "times")}
            if own & set(child.nats):
                problems.append("a scoped signing key's user carries permissions or limits of its own")
    else:
        problems.append(f"a {parent.type} JWT does not issue {child.type} JWTs")
    if child.expired():
        problems.append("expired")
    return problems
