"""Writes of the root of trust. Seeds are opened only here, and never leave except inside `.creds`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from core.errors import ApplicationError, Conflict, Internal
from operators import claims, creds, nkeys
from operators.keyring import keyring_get
from operators.models import IssuedAccountJwt, Operator, SealedSeed, SigningKey
from operators.nkeys import KeyPair, KeyType
from operators.selectors import account_jwt_latest_iat, operator_get, operator_signing_key_get
from operators.signals import account_jwt_issued, operator_ready

# ---------------------------------------------------------------------------------------------
# Sealed seeds
# ---------------------------------------------------------------------------------------------

def _sealed(keypair: KeyPair) -> SealedSeed:
    ring = keyring_get()
    return SealedSeed(public_key=keypair.public_key, key_type=keypair.key_type.letter, key_id=ring.current,
                      sealed=ring.seal(keypair.seed, public_key=keypair.public_key))


def seed_seal(*, keypair: KeyPair) -> SealedSeed:
    """Store a key pair's seed encrypted, bound to its public key."""
    sealed = _sealed(keypair)
    sealed.save(force_insert=True)
    return sealed


def seed_generate(*, key_type: KeyType) -> SealedSeed:
    """A new key pair of ``key_type`` whose seed is stored sealed."""
    return seed_seal(keypair=nkeys.generate(key_type))


def seed_prepare(*, key_type: KeyType) -> SealedSeed:
    """A new key pair of ``key_type``, its seed already sealed, not yet saved: the caller saves it in the
    transaction that stores what it belongs to (so the generation runs outside that transaction)."""
    return _sealed(nkeys.generate(key_type))


def _seed_open(sealed: SealedSeed) -> KeyPair:
    keypair = nkeys.from_seed(keyring_get().open(sealed.sealed, public_key=sealed.public_key))
    if keypair.public_key != sealed.public_key:  # pragma: no cover - AEAD binding makes this unreachable
        raise Internal("a sealed seed does not match its public key")
    return keypair


def seeds_rewrap(*, progress: Callable[[int, int], None] | None = None) -> int:
    """Re-seal every seed not sealed with the newest key; returns how many were re-sealed. ``progress(done,
    total)`` hears of each one (a command's progress bar)."""
    ring = keyring_get()
    stale = SealedSeed.objects.exclude(key_id=ring.current)
    total = stale.count() if progress is not None else 0
    count = 0
    for sealed in stale.iterator():
        with transaction.atomic():
            seed = ring.open(sealed.sealed, public_key=sealed.public_key)
            sealed.sealed = ring.seal(seed, public_key=sealed.public_key)
            sealed.key_id = ring.current
            sealed.save(update_fields=["sealed", "key_id"])
        count += 1
        if progress is not None:
            progress(count, max(total, count))
    return count


# ---------------------------------------------------------------------------------------------
# Operator
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatorInit:
    operator: Operator
    created: bool
    identity_seed_path: Path | None


def _write_secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


@transaction.atomic
def operator_init(*, name: str, identity_seed_out: Path | None, store_identity_key: bool = False) -> OperatorInit:
    """Create the operator, its signing key and the system account key, once.

    The identity seed signs only the operator JWT. By default it is written once to
    ``identity_seed_out`` (mode 0600) and not stored; accounts are signed by the operator signing
    key, with ``strict_signing_key_usage`` on.
    """
    existing = Operator.objects.order_by("id").first()
    if existing is not None:
        if existing.name != name:
            raise Conflict(f"an operator already exists: {existing.name!r}", code="operator_exists")
        operator_ready.send(sender=Operator, operator=existing)
        return OperatorInit(operator=existing, created=False, identity_seed_path=None)
    if not name or len(name) > 64:
        raise ApplicationError("the operator name must be 1 to 64 characters")
    if not store_identity_key:
        if identity_seed_out is None:
            raise ApplicationError("say where to write the operator identity seed, or --store-identity-key")
        if identity_seed_out.exists():
            raise ApplicationError(f"{identity_seed_out} exists; refusing to overwrite a seed file")
    identity = nkeys.generate(KeyType.OPERATOR)
    signing = nkeys.generate(KeyType.OPERATOR)
    system = seed_generate(key_type=KeyType.ACCOUNT)
    iat = int(time.time())
    token = claims.encode(
        claims.OPERATOR,
        subject=identity.public_key,
        name=name,
        signer=identity,
        iat=iat,
        nats=claims.operator_nats(
            signing_keys=[signing.public_key], system_account=system.public_key, strict_signing_key_usage=True
        ),
    )
    operator = Operator.objects.create(
        name=name,
        public_key=identity.public_key,
        identity_seed=seed_seal(keypair=identity) if store_identity_key else None,
        system_account=system.public_key,
        strict_signing_key_usage=True,
        jwt=token,
        iat=iat,
    )
    SigningKey.objects.create(
        owner_kind=SigningKey.OwnerKind.OPERATOR,
        owner_public_key=identity.public_key,
        seed=seed_seal(keypair=signing),
        public_key=signing.public_key,
        description="signs account JWTs",
    )
    path = None
    if not store_identity_key:
        assert identity_seed_out is not None
        _write_secret_file(identity_seed_out, identity.seed + "\n")
        path = identity_seed_out
    operator_ready.send(sender=Operator, operator=operator)
    return OperatorInit(operator=operator, created=True, identity_seed_path=path)


def system_account_seed_get(*, operator: Operator) -> SealedSeed:
    return SealedSeed.objects.get(public_key=operator.system_account)


# ---------------------------------------------------------------------------------------------
# Signing keys
# ---------------------------------------------------------------------------------------------


def signing_key_create(
    *, owner_public_key: str, role: str = "", template: dict[str, Any] | None = None, description: str = ""
) -> SigningKey:
    """A new signing key for an account (or the operator); scoped when it has a role and template."""
    owner_type = nkeys.key_type_of(owner_public_key)
    if owner_type not in (KeyType.OPERATOR, KeyType.ACCOUNT):
        raise ApplicationError("signing keys belong to an operator or an account")
    if bool(role) != (template is not None):
        raise ApplicationError("a scoped signing key needs both a role and a template")
    if role and SigningKey.objects.filter(owner_public_key=owner_public_key, role=role).exists():
        raise ApplicationError(f"a signing key with role {role!r} already exists", extra={"role": role})
    keypair = nkeys.generate(owner_type)
    return SigningKey.objects.create(
        owner_kind=SigningKey.OwnerKind.OPERATOR if owner_type is KeyType.OPERATOR else SigningKey.OwnerKind.ACCOUNT,
        owner_public_key=owner_public_key,
        seed=seed_seal(keypair=keypair),
        public_key=keypair.public_key,
        role=role,
        template=template,
        description=description,
    )


# ---------------------------------------------------------------------------------------------
# Issuing JWTs
# ---------------------------------------------------------------------------------------------


def account_jwt_issue(
    *, account_public_key: str, name: str, nats: dict[str, Any], exp: int | None = None
) -> IssuedAccountJwt:
    """Sign an account's whole state with the operator signing key, with a strictly higher ``iat``.

    The resolver's UPDATE overwrites without an age check, so an account's versions must be
    ordered by ``iat``; the caller holds the account row locked. Announced on commit.
    """
    operator = operator_get()
    signer = _seed_open(operator_signing_key_get(operator=operator).seed)
    iat = max(int(time.time()), account_jwt_latest_iat(account_public_key=account_public_key) + 1)
    signed = claims.encode_signed(claims.ACCOUNT, subject=account_public_key, name=name, nats=nats, signer=signer,
                                  iat=iat, exp=exp)
    issued = IssuedAccountJwt.objects.create(
        account_public_key=account_public_key, jwt=signed.token, jti=signed.jti, iat=signed.iat
    )
    transaction.on_commit(
        lambda: account_jwt_issued.send(
            sender=IssuedAccountJwt, account_public_key=account_public_key, jti=issued.jti, iat=iat
        )
    )
    return issued


def user_jwt_issue(
    *,
    signing_key: SigningKey,
    account_public_key: str,
    user_public_key: str,
    name: str,
    nats: dict[str, Any],
    iat: int | None = None,
    exp: int | None = None,
) -> str:
    """Sign a user JWT with one of the account's signing keys (``issuer_account`` names the account)."""
    if signing_key.owner_public_key != account_public_key:
        raise ApplicationError("the signing key does not belong to this account")
    signer = _seed_open(signing_key.seed)
    return claims.encode(claims.USER, subject=user_public_key, name=name, signer=signer, iat=iat, exp=exp,
                         nats={**nats, "issuer_account": account_public_key})


def activation_issue(
    *, exporter_seed: SealedSeed, target_public_key: str, subject: str, kind: str, exp: int | None = None
) -> claims.Signed:
    """An activation token, signed by the exporting account, letting ``target`` import ``subject``."""
    signer = _seed_open(exporter_seed)
    return claims.encode_signed(claims.ACTIVATION, subject=target_public_key, name=subject, signer=signer, exp=exp,
                         nats=claims.activation_nats(subject=subject, kind=kind))


def account_delete_claim_issue(*, account_public_keys: list[str]) -> str:
    """The generic JWT that deletes accounts from full resolvers, signed by the operator signing key."""
    signer = _seed_open(operator_signing_key_get(operator=operator_get()).seed)
    return claims.encode(claims.GENERIC, subject=signer.public_key, signer=signer,
                         nats=claims.delete_nats(account_public_keys))


def creds_render(*, user_seed: SealedSeed, jwt: str) -> str:
    """The `.creds` text of a user whose seed we hold. Never log or store the result."""
    return creds.format_creds(jwt, _seed_open(user_seed).seed)


def nonce_signer_get(*, user_seed: SealedSeed) -> Callable[[str], bytes]:
    """A callable that signs a server nonce for a user whose seed we hold (nats-py ``signature_cb``).

    The seed stays inside the closure, so connection code never handles it.
    """
    return _seed_open(user_seed).sign_nonce
