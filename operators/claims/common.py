"""What every NATS v2 JWT shares: the header, claim types, errors, encoding, decoding and times (pure, no Django).

Signing is done here, not by PyJWT: the header segment is constant, the payload gets a ``jti`` hashed over the
whole claim set, and the signature is the issuer nkey's own ed25519 signature (``KeyPair.sign``, PyNaCl through
``operators.nkeys``). PyJWT is used only to verify, in ``decode``: a private ``PyJWS`` instance with the
``ed25519-nkey`` algorithm registered (https://docs.nats.io/running-a-nats-service/nats_admin/security/jwt).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jwt as pyjwt
from jwt.algorithms import Algorithm
from jwt.api_jws import PyJWS

from operators import nkeys
from operators.nkeys import KeyPair, KeyType, NKeyError

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
# The ed25519-nkey algorithm, registered with PyJWT to verify signatures
# ---------------------------------------------------------------------------------------------


class NkeyAlgorithm(Algorithm):
    """ed25519 over an nkey: verifies with a public key string (``decode``); ``sign`` with a ``KeyPair`` only
    completes PyJWT's interface, since ``encode_signed`` signs with the key pair itself."""

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
# The header never changes, so its segment is computed once (PyJWS.encode would re-serialize it per call).
_HEADER_SEGMENT = base64.urlsafe_b64encode(
    json.dumps({"alg": ALGORITHM, "typ": "JWT"}, separators=(",", ":"), sort_keys=True).encode()
).rstrip(b"=")


def tags_json(tags: Iterable[str]) -> list[str]:
    """Tags as nats-io/jwt writes them: lower-cased, de-duplicated, sorted."""
    return sorted({t.strip().lower() for t in tags if t.strip()})


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
    signature = base64.urlsafe_b64encode(signer.sign(signing_input)).rstrip(b"=")
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
