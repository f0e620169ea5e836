"""Writes of an account's signing keys: add (optionally scoped to a role with a user template) and rotate."""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction

from accounts_service.models import Account, AuditEvent, NatsUser
from accounts_service.rights import owner_required
from accounts_service.services.audit import audit_record
from accounts_service.services.signing import account_lock, account_resign
from accounts_service.services.users import (
    PERMISSION_FIELDS,
    USER_DEFAULTS,
    USER_LIMIT_FIELDS,
    user_jwt,
    user_spec_check,
)
from accounts_service.validation import description_check, name_check
from core.errors import NotFound
from operators import services as op_services
from operators.models import SealedSeed, SigningKey

TEMPLATE_FIELDS = (*PERMISSION_FIELDS, "allow_responses", *USER_LIMIT_FIELDS)


def _template_check(template: dict[str, Any]) -> dict[str, Any]:
    """A scoped key's user template: the permission and limit fields of a user, by the same rule."""
    return {**{f: USER_DEFAULTS[f] for f in TEMPLATE_FIELDS}, **user_spec_check(template, allowed=TEMPLATE_FIELDS)}


@transaction.atomic
def account_signing_key_add(*, account: Account, actor: Any, role: str = "", template: dict[str, Any] | None = None,
                            description: str = "") -> SigningKey:
    """Add a signing key to the account (owners; scoped when ``role`` is set: its users get ``template``)."""
    owner_required(team=account.team_id, actor=actor)
    account = account_lock(account)
    if role:
        role = name_check(role, field="role")
        template = _template_check(template or {})
        template = {f: list(v) if isinstance(v, tuple) else v for f, v in template.items()}
    key = op_services.signing_key_create(
        owner_public_key=account.public_key, role=role, template=template if role else None,
        description=description_check(description),
    )
    account_resign(account=account)
    audit_record(action=AuditEvent.Action.KEY_ADD, actor=actor, team_id=account.team_id, target=key.public_key,
                 detail={"account": account.public_key, "role": role, **({"template": template} if role else {})})
    return key


@transaction.atomic
def account_signing_key_rotate(*, account: Account, public_key: str, actor: Any) -> SigningKey:
    """Replace one of the account's signing keys (owners; a leaked seed, a departing admin): a new key with the
    same role and template re-signs every active user of the old one, and the old key leaves the account JWT,
    so JWTs it signed stop working on every node. Users must fetch their new ``.creds``. Revoked users keep
    their old JWT: re-signing them would issue a JWT newer than their revocation, which NATS would accept.
    """
    owner_required(team=account.team_id, actor=actor)
    account = account_lock(account)
    old = SigningKey.objects.filter(owner_public_key=account.public_key, public_key=public_key).first()
    if old is None:
        raise NotFound(f"no signing key {public_key} in this account", extra={"signing_key": public_key})
    role, template, old_seed_id = old.role, old.template, old.seed_id
    if role:  # the role is unique per account: free it for the new key first
        SigningKey.objects.filter(pk=old.pk).update(role="", template=None)
    new = op_services.signing_key_create(owner_public_key=account.public_key, role=role,
                                         template=template if role else None, description=old.description)
    now = int(time.time())
    reissued = 0
    for user in NatsUser.objects.filter(signing_key=old).select_related("account"):
        user.signing_key = new
        if user.revoked_at is None:
            user.jwt_iat = max(now, user.jwt_iat + 1)
            user.jwt = user_jwt(user, iat=user.jwt_iat)
            reissued += 1
        user.save(update_fields=["signing_key", "jwt", "jwt_iat"])
    SigningKey.objects.filter(pk=old.pk).delete()
    SealedSeed.objects.filter(pk=old_seed_id).delete()
    account_resign(account=account)
    audit_record(action=AuditEvent.Action.KEY_ROTATE, actor=actor, team_id=account.team_id, target=new.public_key,
                 detail={"account": account.public_key, "old": public_key, "role": role, "users_reissued": reissued})
    return new
