"""Seed encryption at rest: AES-256-GCM with a key id, bound to the row by associated data (pure).

A sealed seed is ``<key id>$<base64(nonce || ciphertext+tag)>``. The associated data names the
seed's public key, so a ciphertext copied onto another row fails to decrypt there.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Keyring", "SealError", "associated_data", "generate_key_spec"]

_NONCE = 12


class SealError(ValueError):
    """A key ring that is misconfigured, or a sealed seed that does not open."""


def associated_data(public_key: str) -> bytes:
    return b"natsctl-seed:v1:" + public_key.encode("ascii")


def generate_key_spec(key_id: str | None = None) -> str:
    """A new ``<id>:<base64 32-byte key>`` entry for ``SEED_ENCRYPTION_KEYS``."""
    key_id = key_id or "k" + secrets.token_hex(4)
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode('ascii')}"


@dataclass(frozen=True)
class Keyring:
    """Encryption keys by id; the first one listed is the newest and seals new seeds."""

    keys: dict[str, bytes] = field(repr=False)
    current: str

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Parse ``id:base64key[,id:base64key...]`` (newest first)."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            key_id, sep, b64 = item.partition(":")
            if not sep or not key_id or "$" in key_id:
                raise SealError("each SEED_ENCRYPTION_KEYS entry is <id>:<base64 key>")
            try:
                key = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SealError(f"seed encryption key {key_id!r} is not base64") from exc
            if len(key) != 32:
                raise SealError(f"seed encryption key {key_id!r} must be 32 bytes (AES-256)")
            if key_id in keys:
                raise SealError(f"seed encryption key id {key_id!r} is listed twice")
            keys[key_id] = key
            order.append(key_id)
        if not order:
            raise SealError("SEED_ENCRYPTION_KEYS holds no key")
        return cls(keys=keys, current=order[0])

    def seal(self, seed: str, *, public_key: str) -> str:
        nonce = os.urandom(_NONCE)
        ct = AESGCM(self.keys[self.current]).encrypt(nonce, seed.encode("ascii"), associated_data(public_key))
        return f"{self.current}${base64.b64encode(nonce + ct).decode('ascii')}"

    def open(self, sealed: str, *, public_key: str) -> str:
        key_id, sep, b64 = sealed.partition("$")
        if not sep:
            raise SealError("not a sealed seed")
        key = self.keys.get(key_id)
        if key is None:
            raise SealError(f"seed sealed with unknown key id {key_id!r}")
        try:
            blob = base64.b64decode(b64, validate=True)
            return AESGCM(key).decrypt(blob[:_NONCE], blob[_NONCE:], associated_data(public_key)).decode("ascii")
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise SealError("the sealed seed does not open for this key (wrong row or wrong key)") from exc

    @staticmethod
    def key_id_of(sealed: str) -> str:
        return sealed.partition("$")[0]
