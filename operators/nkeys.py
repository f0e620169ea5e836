"""NATS nkeys over PyNaCl: ed25519 key pairs encoded as NATS public keys and seeds (pure, no Django).

Encoding (nats-io/nkeys): base32 without padding of ``prefix || payload || crc16``, the CRC being
CRC-16/XMODEM appended little-endian. A seed packs the seed prefix and the key type in two bytes.
"""

from __future__ import annotations

import base64
import binascii
import enum
import secrets
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.signing

__all__ = [
    "KeyPair",
    "KeyType",
    "NKeyError",
    "decode_public_key",
    "from_seed",
    "generate",
    "is_valid_public_key",
    "key_type_of",
    "public_key_from_raw",
    "validate_public_key",
    "verify",
]

PREFIX_SEED = 18 << 3  # 'S'
PREFIX_PRIVATE = 15 << 3  # 'P'


class NKeyError(ValueError):
    """A key or seed that is malformed, of the wrong type, or fails its checksum or signature."""


class KeyType(enum.IntEnum):
    """The nkey prefix byte of each key type (its first base32 character)."""

    ACCOUNT = 0  # 'A'
    CLUSTER = 2 << 3  # 'C'
    SERVER = 13 << 3  # 'N'
    OPERATOR = 14 << 3  # 'O'
    USER = 20 << 3  # 'U'

    @property
    def letter(self) -> str:
        return {0: "A", 16: "C", 104: "N", 112: "O", 160: "U"}[int(self)]

    @property
    def label(self) -> str:
        return self.name.lower()


_BY_PREFIX = {int(k): k for k in KeyType}
_BY_LETTER = {k.letter: k for k in KeyType}


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM (poly 0x1021, init 0), as nkeys uses; binascii's CRC-CCITT is the same CRC, in C."""
    return binascii.crc_hqx(data, 0)


_B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_TO_HEX = str.maketrans(_B32_ALPHABET, "0123456789ABCDEFGHIJKLMNOPQRSTUV")
_B32_CHARS = frozenset(_B32_ALPHABET)


def _encode(raw: bytes) -> str:
    crc = crc16(raw)
    return base64.b32encode(raw + bytes((crc & 0xFF, crc >> 8))).decode("ascii").rstrip("=")


def _decode(text: str | bytes, what: str) -> bytes:
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise NKeyError(f"{what} is not ASCII") from exc
    if not isinstance(text, str) or not text:
        raise NKeyError(f"{what} is empty")
    if len(text) == 56 and _B32_CHARS.issuperset(text):
        # Fast path for public keys: 56 base32 characters are exactly 35 bytes, no padding bits.
        raw = int(text.translate(_B32_TO_HEX), 32).to_bytes(35, "big")
    else:
        try:
            raw = base64.b32decode(text + "=" * (-len(text) % 8), casefold=False)
        except (binascii.Error, ValueError) as exc:
            raise NKeyError(f"{what} is not valid base32") from exc
        if len(raw) < 4:
            raise NKeyError(f"{what} is too short")
    body, crc_bytes = raw[:-2], raw[-2:]
    if crc16(body) != (crc_bytes[0] | crc_bytes[1] << 8):
        raise NKeyError(f"{what} has a bad checksum")
    return body


def public_key_from_raw(key_type: KeyType, raw: bytes) -> str:
    """Encode a raw 32-byte ed25519 public key as a NATS public key of ``key_type``."""
    if len(raw) != 32:
        raise NKeyError("a raw ed25519 public key is 32 bytes")
    return _encode(bytes((int(key_type),)) + raw)


def decode_public_key(public_key: str | bytes, expected: KeyType | None = None) -> tuple[KeyType, bytes]:
    """Decode a NATS public key into its type and raw 32 bytes; check the type if ``expected``."""
    if isinstance(public_key, str | bytes) and len(public_key) == 58:
        try:
            _decode_seed(public_key)
        except NKeyError:
            pass
        else:
            raise NKeyError("this is a seed, not a public key")
    if isinstance(public_key, str) and len(public_key) != 56:
        raise NKeyError(f"a public key is 56 characters, got {len(public_key)}")
    body = _decode(public_key, "public key")
    if len(body) != 33:
        raise NKeyError("a public key holds 32 bytes of key")
    key_type = _BY_PREFIX.get(body[0])
    if key_type is None:
        if body[0] == PREFIX_SEED:
            raise NKeyError("this is a seed, not a public key")
        raise NKeyError("unknown public key prefix")
    if expected is not None and key_type is not expected:
        raise NKeyError(f"expected {expected.label} public key, got {key_type.label} public key")
    return key_type, body[1:]


def key_type_of(public_key: str) -> KeyType:
    """The type of a public key, or NKeyError."""
    return decode_public_key(public_key)[0]


def validate_public_key(public_key: str, expected: KeyType) -> str:
    """Return ``public_key`` if it is a valid public key of ``expected`` type, else raise NKeyError."""
    decode_public_key(public_key, expected)
    return public_key


def is_valid_public_key(public_key: str, expected: KeyType | None = None) -> bool:
    try:
        decode_public_key(public_key, expected)
    except NKeyError:
        return False
    return True


def _decode_seed(seed: str | bytes) -> tuple[KeyType, bytes]:
    if isinstance(seed, str) and len(seed) != 58:
        raise NKeyError(f"a seed is 58 characters, got {len(seed)}")
    body = _decode(seed, "seed")
    if len(body) != 34:
        raise NKeyError("a seed holds 32 bytes of key")
    b1, b2 = body[0], body[1]
    if b1 & 0xF8 != PREFIX_SEED:
        raise NKeyError("not a seed (missing the seed prefix)")
    prefix = ((b1 & 7) << 5) | ((b2 & 0xF8) >> 3)
    key_type = _BY_PREFIX.get(prefix)
    if key_type is None:
        raise NKeyError("unknown seed key type")
    return key_type, body[2:]


def _encode_seed(key_type: KeyType, raw_seed: bytes) -> str:
    prefix = int(key_type)
    b1 = PREFIX_SEED | (prefix >> 5)
    b2 = (prefix & 31) << 3
    return _encode(bytes((b1, b2)) + raw_seed)


@dataclass(frozen=True)
class KeyPair:
    """An ed25519 key pair of one nkey type. Its ``repr`` never shows the seed."""

    key_type: KeyType
    public_key: str
    _seed: str = field(repr=False)
    _signer: nacl.signing.SigningKey = field(repr=False, compare=False)

    @property
    def seed(self) -> str:
        """The encoded seed (``S`` + type letter + ...). Handle as a secret."""
        return self._seed

    def sign(self, data: bytes) -> bytes:
        """Raw 64-byte ed25519 signature of ``data``."""
        return self._signer.sign(data).signature

    def sign_nonce(self, nonce: str) -> bytes:
        """The server nonce signed the way the NATS CONNECT ``sig`` field wants it (standard base64)."""
        return base64.b64encode(self.sign(nonce.encode("ascii")))

    def verify(self, data: bytes, signature: bytes) -> bool:
        return verify(self.public_key, data, signature)


def from_seed(seed: str | bytes, expected: KeyType | None = None) -> KeyPair:
    """Rebuild a key pair from its encoded seed; check its type if ``expected``."""
    if isinstance(seed, bytes):
        seed = seed.decode("ascii", errors="replace")
    seed = seed.strip()
    key_type, raw = _decode_seed(seed)
    if expected is not None and key_type is not expected:
        raise NKeyError(f"expected {expected.label} seed, got {key_type.label} seed")
    signer = nacl.signing.SigningKey(raw)
    public = public_key_from_raw(key_type, bytes(signer.verify_key))
    return KeyPair(key_type=key_type, public_key=public, _seed=seed, _signer=signer)


def generate(key_type: KeyType) -> KeyPair:
    """A fresh random key pair of ``key_type``."""
    raw = secrets.token_bytes(32)
    signer = nacl.signing.SigningKey(raw)
    return KeyPair(
        key_type=key_type,
        public_key=public_key_from_raw(key_type, bytes(signer.verify_key)),
        _seed=_encode_seed(key_type, raw),
        _signer=signer,
    )


_VERIFY_CACHE: dict[str, nacl.signing.VerifyKey] = {}


def verify(public_key: str, data: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s ed25519 signature of ``data``; NKeyError on a bad key."""
    verify_key = _VERIFY_CACHE.get(public_key)
    if verify_key is None:
        _, raw = decode_public_key(public_key)
        verify_key = nacl.signing.VerifyKey(raw)
        if len(_VERIFY_CACHE) > 4096:
            _VERIFY_CACHE.clear()
        _VERIFY_CACHE[public_key] = verify_key
    try:
        verify_key.verify(data, signature)
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False
    return True


def letter_type(letter: str) -> KeyType | None:
    """The key type a public key's first letter names, if any."""
    return _BY_LETTER.get(letter)
