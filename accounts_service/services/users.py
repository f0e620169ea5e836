"""Writes of NATS users: create, change, revoke, delete, ``.creds``; and the platform's own service users.

One rule for a user's fields (``UserSpec``, checked by ``user_spec_check``) serves creation, updates and the
templates of scoped signing keys.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypedDict, Unpack

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts_service import issuance_reads
from accounts_service.models import Account, AuditEvent, NatsUser, Revocation
from accounts_service.rights import PLATFORM, member_required
from accounts_service.selectors import user_permissions
from accounts_service.services.audit import audit_changes, audit_record
from accounts_service.services.signing import account_lock, account_resign
from accounts_service.validation import future_check, limit_check, name_check, public_key_check, subjects_check
from core.db import row_insert
from core.errors import Conflict, Invalid
from operators import claims, creds
from operators import services as op_services
from operators.models import SealedSeed, SigningKey
from operators.nkeys import KeyType

# ------------------------------------------------------------------------------------------------
# The one rule for a user's fields
# ------------------------------------------------------------------------------------------------


class UserSpec(TypedDict, total=False):
    """What a person may set on a user; every key optional (an update names only what changes)."""

    name: str
    pub_allow: Iterable[str]
    pub_deny: Iterable[str]
    sub_allow: Iterable[str]
    sub_deny: Iterable[str]
    allow_responses: bool
    subs: int
    data: int
    payload: int
    bearer_token: bool
    expires_at: dt.datetime | None
    tags: Iterable[str]


PERMISSION_FIELDS = ("pub_allow", "pub_deny", "sub_allow", "sub_deny")
USER_LIMIT_FIELDS = ("subs", "data", "payload")
# A new user's value of each field it is not given (name has none: it is required).
USER_DEFAULTS: dict[str, Any] = {**dict.fromkeys(PERMISSION_FIELDS, ()), "allow_responses": False,
                                 **dict.fromkeys(USER_LIMIT_FIELDS, -1), "bearer_token": False, "expires_at": None,
                                 "tags": ()}
MAX_TAGS, MAX_TAG_LENGTH = 32, 128
_TAG = re.compile(r"^[^\s:]+(:[^\s]+)?$")


def tags_check(value: Iterable[str], field: str = "tags") -> list[str]:
    """Tags as the JWT carries them: lower case (nats-server and nsc fold them), sorted, no duplicates; each
    ``name`` or ``name:value``, the form a template's ``{{tag(name)}}`` reads."""
    if isinstance(value, str):
        raise Invalid("tags is a list of name:value strings", extra={"field": field})
    tags = sorted({str(t).strip().lower() for t in value})
    if len(tags) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags", extra={"field": field})
    for tag in tags:
        if not _TAG.match(tag) or len(tag) > MAX_TAG_LENGTH:
            raise Invalid(f"tag {tag!r} is not name or name:value (no spaces, at most {MAX_TAG_LENGTH} characters)",
                          extra={"field": field})
    return tags


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "name": lambda v, f: name_check(v, field=f),
    **{f: (lambda v, f: subjects_check(v, field=f)) for f in PERMISSION_FIELDS},
    **{f: (lambda v, f: limit_check(v, field=f)) for f in USER_LIMIT_FIELDS},
    "allow_responses": lambda v, f: bool(v),
    "bearer_token": lambda v, f: bool(v),
    "expires_at": lambda v, f: future_check(v, field=f),
    "tags": tags_check,
}


def user_spec_check(spec: Mapping[str, Any], *, allowed: Iterable[str] = _CHECKS, scoped: bool = False) -> dict:
    """``spec`` with every value checked and normalized; an unknown field, or permissions on a user whose scoped
    signing key decides them, is a 400 naming the field."""
    allowed = set(allowed)
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise Invalid(f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
                      extra={"field": unknown[0], "fields": unknown}, code="field_unknown")
    out = {field: _CHECKS[field](value, field) for field, value in spec.items()}
    if scoped and any(out.get(f) for f in PERMISSION_FIELDS):
        raise Invalid("a user of a scoped signing key takes its permissions from the role", extra={"field": "role"},
                      code="scoped_user_permissions")
    return out


# ------------------------------------------------------------------------------------------------
# Signing
# ------------------------------------------------------------------------------------------------


def user_jwt(user: NatsUser, *, iat: int) -> str:
    """The user's JWT as it stands, signed by its signing key at ``iat``."""
    key = user.signing_key
    if key.scoped:
        nats = claims.user_nats(scoped=True, tags=user.tags)
    else:
        nats = claims.user_nats(
            permissions=user_permissions(
                pub_allow=user.pub_allow, pub_deny=user.pub_deny, sub_allow=user.sub_allow,
                sub_deny=user.sub_deny, allow_responses=user.allow_responses,
            ),
            limits=claims.UserLimits(subs=user.subs, data=user.data, payload=user.payload),
            bearer_token=user.bearer_token, tags=user.tags,
        )
    return op_services.user_jwt_issue(
        signing_key=key, account_public_key=user.account.public_key, user_public_key=user.public_key,
        name=user.name, nats=nats, iat=iat, exp=int(user.expires_at.timestamp()) if user.expires_at else None,
    )


def _signing_key_for(account: Account, role: str | None) -> SigningKey:
    # With its sealed seed (it signs next), and only the columns signing reads (one plain-SQL read: the hot path).
    key = issuance_reads.signing_key_for(owner_public_key=account.public_key, role=role or "")
    if key is None:
        if role:
            raise Invalid(f"the account has no signing key with role {role!r}", extra={"field": "role"},
                          code="role_unknown")
        raise Conflict("the account has no signing key", code="no_signing_key")
    return key


# ------------------------------------------------------------------------------------------------
# Writes
# ------------------------------------------------------------------------------------------------


def _audited(user: NatsUser) -> dict[str, Any]:
    """What an audit row shows of a user: its name, permissions, limits and expiry."""
    return {f: getattr(user, f) for f in ("name", *USER_DEFAULTS)}


def _user_insert(*, account: Account, actor: Any, role: str | None, fields: dict[str, Any], public_key: str,
                 seed, creds_via: str = "") -> tuple[NatsUser, str]:
    """user_create's transaction: sign with the account's key and insert the user, its sealed seed and the audit
    row; with ``creds_via`` also its ``.creds`` text and their download's audit row (same transaction)."""
    # The lock orders this against the account's re-signs, key rotations and deletion. On SQLite
    # select_for_update is a no-op, and the transaction (BEGIN IMMEDIATE) already holds the database lock.
    if connection.features.has_select_for_update:
        issuance_reads.account_row_lock(account_id=account.pk)  # (account_lock's lock, without the row's JWT)
    key = _signing_key_for(account, role)
    user_spec_check({f: fields[f] for f in PERMISSION_FIELDS}, scoped=key.scoped)
    user = NatsUser(account=account, public_key=public_key, signing_key=key, **fields)
    user.jwt_iat = int(time.time())
    user.jwt = user_jwt(user, iat=user.jwt_iat)
    if seed is not None:
        row_insert(seed)  # (Model.save's INSERT without compiling it: core/db.py)
        user.seed = seed
    row_insert(user)
    audit_record(action=AuditEvent.Action.USER_CREATE, actor=actor, team_id=account.team_id,
                 target=user.public_key, detail={"account": account.public_key, "user": user.name,
                                                 "role": key.role, "own_key": seed is None,
                                                 "permissions": audit_changes({}, _audited(user))})
    text = ""
    if creds_via:
        text = op_services.creds_render(user_seed=seed, jwt=user.jwt)
        audit_record(action=AuditEvent.Action.CREDS_DOWNLOAD, actor=actor, team_id=account.team_id,
                     target=user.public_key, detail={"account": account.public_key, "user": user.name,
                                                     "via": creds_via})
    return user, text


def user_create(*, account: Account, actor: Any, public_key: str | None = None, role: str | None = None,
                **spec: Unpack[UserSpec]) -> NatsUser:
    """A user of ``account`` (any member): we generate its key (and keep the seed sealed) unless ``public_key``
    is given. With ``role`` the user is signed by that scoped signing key and carries no permissions of its own.

    Checks, key generation and sealing come first; the transaction (on SQLite, the time it holds the database's
    one write lock) reads the signing key, signs and inserts, so a concurrent key rotation is either before it
    (the new key signs) or after it (the rotation re-issues this user).
    """
    return _user_create(account=account, actor=actor, public_key=public_key, role=role, spec=spec)[0]


def user_create_with_creds(*, account: Account, actor: Any, role: str | None = None, via: str = "create",
                           **spec: Unpack[UserSpec]) -> tuple[NatsUser, str]:
    """A new user and its ``.creds`` in one step (``nsc add user`` then ``nsc generate creds``): the same checks as
    ``user_create``; the key is always ours (a user of your own public key has no ``.creds`` here). Two audit rows,
    the creation and the download (``via``), in the creation's one transaction: either both or neither."""
    if spec.pop("public_key", None):  # (blank: none, as for user_create)
        raise Invalid("a user created from your own public key has no .creds here (we never see its seed): "
                      "create it without asking for the .creds", extra={"field": "public_key"},
                      code="creds_seed_unknown")
    return _user_create(account=account, actor=actor, public_key=None, role=role, spec=spec, creds_via=via)


def _user_create(*, account: Account, actor: Any, public_key: str | None, role: str | None, spec: dict[str, Any],
                 creds_via: str = "") -> tuple[NatsUser, str]:
    # user_create and user_create_with_creds: checks, key and sealing first, then the one transaction.
    member_required(team=account.team_id, actor=actor)
    if "name" not in spec:
        raise Invalid("name is required", extra={"field": "name"})
    fields = {**USER_DEFAULTS, **user_spec_check(spec)}
    seed = None
    if public_key:
        public_key = public_key_check(public_key, key_type=KeyType.USER, field="public_key")
        if Revocation.objects.filter(public_key=public_key).exists():
            raise Conflict("this public key was revoked; generate a new key", extra={"field": "public_key"},
                           code="public_key_revoked")
    else:
        seed = op_services.seed_prepare(key_type=KeyType.USER)  # generated and sealed, saved below
        public_key = seed.public_key
    try:
        with transaction.atomic():
            user, text = _user_insert(account=account, actor=actor, role=role, fields=fields,
                                      public_key=public_key, seed=seed, creds_via=creds_via)
    except IntegrityError as exc:
        # The unique constraints (account + name, public key) decide; the conflict is looked up only when one
        # failed (the transaction, sealed seed included, is rolled back by then), rather than checked with two
        # reads on every creation.
        if NatsUser.objects.filter(account=account, name=fields["name"]).exists():
            raise Conflict(f"the account already has a user named {fields['name']!r}", extra={"field": "name"},
                           code="user_name_taken") from exc
        if NatsUser.objects.filter(public_key=public_key).exists():
            raise Conflict("a user with this public key already exists", extra={"field": "public_key"},
                           code="public_key_taken") from exc
        raise
    return user, text


@transaction.atomic
def user_update(*, user: NatsUser, actor: Any, **changes: Unpack[UserSpec]) -> NatsUser:
    """Change a user's name, permissions, limits or expiry (any member): a new JWT is issued and every earlier
    one is revoked."""
    member_required(team=user.account.team_id, actor=actor)
    account = account_lock(user.account)
    user = NatsUser.objects.select_for_update().get(pk=user.pk)
    if user.revoked_at:
        raise Conflict("the user is revoked", code="user_revoked")
    checked = user_spec_check(changes, scoped=user.signing_key.scoped)
    if "name" in checked and NatsUser.objects.filter(account=account, name=checked["name"]).exclude(
            pk=user.pk).exists():
        raise Conflict(f"the account already has a user named {checked['name']!r}", extra={"field": "name"},
                       code="user_name_taken")
    before = _audited(user)
    for field, value in checked.items():
        setattr(user, field, value)
    changed = audit_changes(before, _audited(user))
    # Revoke every JWT issued so far for this key, then issue one strictly newer than that.
    cutoff = user.jwt_iat
    Revocation.objects.update_or_create(account=account, public_key=user.public_key,
                                        defaults={"revoked_at_ts": cutoff})
    user.jwt_iat = max(int(time.time()), cutoff + 1)
    user.jwt = user_jwt(user, iat=user.jwt_iat)
    user.save()
    account_resign(account=account)
    if changed:
        audit_record(action=AuditEvent.Action.USER_UPDATE, actor=actor, team_id=account.team_id,
                     target=user.public_key, detail={"account": account.public_key, "user": user.name,
                                                     "changes": changed})
    return user


@transaction.atomic
def user_revoke(*, user: NatsUser, actor: Any) -> NatsUser:
    """Revoke a user (any member; audited): the account JWT revokes its key, so connected clients are dropped and
    refused. Idempotent."""
    member_required(team=user.account.team_id, actor=actor)
    account = account_lock(user.account)
    user = NatsUser.objects.select_for_update().get(pk=user.pk)
    if user.revoked_at:
        return user
    now = timezone.now()
    ts = max(int(now.timestamp()), user.jwt_iat)
    Revocation.objects.update_or_create(account=account, public_key=user.public_key, defaults={"revoked_at_ts": ts})
    user.revoked_at = now
    user.save(update_fields=["revoked_at"])
    account_resign(account=account)
    audit_record(action=AuditEvent.Action.USER_REVOKE, actor=actor, team_id=account.team_id, target=user.public_key,
                 detail={"account": account.public_key, "user": user.name})
    return user


@transaction.atomic
def user_delete(*, user: NatsUser, actor: Any) -> None:
    """Delete a user (any member; audited); it is revoked first, so its creds stop working everywhere."""
    user = user_revoke(user=user, actor=actor)
    audit_record(action=AuditEvent.Action.USER_DELETE, actor=actor, team_id=user.account.team_id,
                 target=user.public_key, detail={"account": user.account.public_key, "user": user.name})
    seed_id = user.seed_id
    user.delete()
    if seed_id:
        SealedSeed.objects.filter(pk=seed_id).delete()


CREDS_FIELDS = ("revoked_at", "jwt", "seed")  # what a .creds is made of and who may have one: read fresh


def user_creds_get(*, user: NatsUser, revoked_ok: bool = False, fresh: bool = False) -> str:
    """The user's `.creds` text; only for users whose key we generated (callers check the actor). ``revoked_ok``:
    also for a revoked user (the connection test, which shows the servers refusing it). ``fresh``: ``user`` was
    read with CREDS_FIELDS (and its seed) by the caller just now, in this request; otherwise they are read again."""
    if not fresh:  # what decides (revoked? which JWT?) together with the sealed seed: one query, not two
        again = NatsUser.objects.select_related("seed").only(*CREDS_FIELDS).get(pk=user.pk)
        user.revoked_at, user.jwt, user.seed = again.revoked_at, again.jwt, again.seed
    if user.revoked_at and not revoked_ok:
        raise Conflict("the user is revoked", code="user_revoked")
    if user.seed_id is None:
        jwt_path = user_jwt_path(user=user)
        raise Conflict(f"this user was created with your own public key, so we never saw its seed and cannot write "
                       f"its .creds: get its JWT from GET {jwt_path} (or a .creds template to fill in with your seed "
                       f"from GET {jwt_path.removesuffix('/jwt')}/creds-template, or the user's page in the console)",
                       extra={"jwt": jwt_path}, code="creds_seed_unknown")
    return op_services.creds_render(user_seed=user.seed, jwt=user.jwt)


def user_jwt_path(*, user: NatsUser) -> str:
    """The API route of a user's JWT (named in refusals that send a person there)."""
    return f"/api/v1/accounts/{user.account.public_key}/users/{user.public_key}/jwt"


def user_jwt_download(*, user: NatsUser, actor: Any, template: bool = False, via: str = "") -> str:
    """The user's current JWT for a member of its team, or with ``template`` the ``.creds`` layout holding it and a
    placeholder for the seed (for users created from the tenant's own key). Audited like a ``.creds`` download:
    public material, except that a bearer-token user's JWT alone connects."""
    member_required(team=user.account.team_id, actor=actor)
    fresh = NatsUser.objects.only("revoked_at", "jwt").get(pk=user.pk)
    if fresh.revoked_at:
        raise Conflict("the user is revoked", code="user_revoked")
    text = creds.format_creds_template(fresh.jwt) if template else fresh.jwt
    audit_record(action=AuditEvent.Action.JWT_DOWNLOAD, actor=actor, team_id=user.account.team_id,
                 target=user.public_key, detail={"account": user.account.public_key, "user": user.name,
                                                 "template": template, **({"via": via} if via else {})})
    return text


def user_creds_pairing(*, user: NatsUser) -> dict[str, str]:
    """File names and the shell one-liner that turn a downloaded creds template and the tenant's seed file into
    the user's ``.creds`` (no secret in it)."""
    filename = creds_filename(user.name)
    stem = filename.removesuffix(".creds")
    names = {"creds": filename, "template": f"{stem}.creds.template", "seed_file": f"{stem}.nk", "jwt": f"{stem}.jwt"}
    return {**names, "command": creds.creds_pairing_command(template=names["template"], seed_file=names["seed_file"],
                                                            creds=names["creds"])}


def user_creds_download(*, user: NatsUser, actor: Any, fresh: bool = False) -> str:
    """The ``.creds`` handed to a person (a member of the owning team): recorded in the audit log. ``fresh`` as
    for ``user_creds_get``."""
    member_required(team=user.account.team_id, actor=actor)
    text = user_creds_get(user=user, fresh=fresh)
    audit_record(action=AuditEvent.Action.CREDS_DOWNLOAD, actor=actor, team_id=user.account.team_id,
                 target=user.public_key, detail={"account": user.account.public_key, "user": user.name})
    return text


def creds_filename(name: str) -> str:
    """A safe attachment filename for a user's ``.creds``."""
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "user") + ".creds"


@transaction.atomic
def service_user_ensure(*, account: Account, name: str, **spec: Unpack[UserSpec]) -> NatsUser:
    """The platform's own user ``name`` of ``account`` (the control plane, the collector, the usage responder)
    with exactly the permissions in ``spec``: created if missing, updated if an older release made it with
    others, made anew if it was revoked (its revocation stays in the account JWT)."""
    user = NatsUser.objects.filter(account=account, name=name).first()
    if user is not None and user.revoked_at is not None:
        seed_id = user.seed_id
        user.delete()
        SealedSeed.objects.filter(pk=seed_id).delete()
        user = None
    if user is None:
        return user_create(account=account, actor=PLATFORM, name=name, **spec)
    wanted = {**{f: USER_DEFAULTS[f] for f in spec if f in USER_DEFAULTS}, **user_spec_check(spec)}
    if any(getattr(user, f) != (list(v) if isinstance(v, tuple) else v) for f, v in wanted.items()):
        user = user_update(user=user, actor=PLATFORM, **spec)
    return user
