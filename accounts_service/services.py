"""Writes of the tenant domain. Every change to an account re-signs its whole JWT with a higher ``iat``."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts_service.models import (
    LIMIT_FIELDS,
    Account,
    Activation,
    ApiToken,
    AuditEvent,
    Export,
    Import,
    NatsUser,
    PlanSpan,
    Revocation,
    Team,
    TeamMembership,
)
from accounts_service.plans import limits_within, plan_limits, team_room_check
from accounts_service.selectors import account_nats_build, export_covering_get, user_permissions
from accounts_service.signals import account_deleted, account_plan_changed
from accounts_service.validation import (
    description_check,
    limit_check,
    name_check,
    public_key_check,
    subject_check,
    subjects_check,
)
from core.errors import ApplicationError, Conflict, NotFound
from operators import claims
from operators import services as op_services
from operators.models import SealedSeed, SigningKey
from operators.nkeys import KeyType
from operators.selectors import operator_get
from operators.subjects import has_wildcards, is_subset, overlaps

# ------------------------------------------------------------------------------------------------
# Teams
# ------------------------------------------------------------------------------------------------


def _unique_slug(base: str) -> str:
    base = slugify(base)[:80] or "team"
    slug, n = base, 1
    while Team.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def team_create(*, name: str, owner=None, is_personal: bool = False, is_platform: bool = False) -> Team:
    name = name_check(name, field="team name", max_length=100)
    team = Team.objects.create(name=name, slug=_unique_slug(name), is_personal=is_personal, is_platform=is_platform)
    if owner is not None:
        TeamMembership.objects.create(team=team, user=owner, role=TeamMembership.Role.OWNER)
    return team


def team_personal_ensure(*, user) -> Team:
    """Every person has a personal team, however the person was created."""
    team = Team.objects.filter(is_personal=True, memberships__user=user).first()
    return team or team_create(name=user.get_username(), owner=user, is_personal=True)


def team_get_or_create(*, name: str) -> Team:
    """The team whose slug or name is ``name`` (the CLI's ``--team``), created if missing."""
    team = Team.objects.filter(slug=name).first() or Team.objects.filter(name=name).first()
    return team or team_create(name=name)


def platform_team_get() -> Team:
    team = Team.objects.filter(is_platform=True).first()
    return team or team_create(name="platform", is_platform=True)


def team_member_add(*, team: Team, user, role: str = TeamMembership.Role.MEMBER) -> TeamMembership:
    membership, _ = TeamMembership.objects.get_or_create(team=team, user=user, defaults={"role": role})
    return membership


# ------------------------------------------------------------------------------------------------
# Accounts
# ------------------------------------------------------------------------------------------------


def _lock(account: Account) -> Account:
    """Re-read the account under a row lock so its re-signs are serialized."""
    return Account.objects.select_for_update().get(pk=account.pk)


def account_resign(*, account: Account) -> Account:
    """Sign the account's whole current state; the new version supersedes every earlier one."""
    issued = op_services.account_jwt_issue(
        account_public_key=account.public_key, name=account.name, nats=account_nats_build(account)
    )
    account.jwt, account.jwt_iat, account.jwt_jti = issued.jwt, issued.iat, issued.jti
    account.version += 1
    account.save(update_fields=["jwt", "jwt_iat", "jwt_jti", "version", "updated_at"])
    return account


def _limits_apply(account: Account, limits: dict[str, Any]) -> None:
    unknown = set(limits) - set(LIMIT_FIELDS) - {"wildcard_exports"}
    if unknown:
        raise ApplicationError(f"unknown limits: {', '.join(sorted(unknown))}", extra={"fields": sorted(unknown)})
    for field, value in limits.items():
        if field == "wildcard_exports":
            if not isinstance(value, bool):
                raise ApplicationError("wildcard_exports must be true or false", extra={"field": field})
        else:
            value = limit_check(value, field=field)
        setattr(account, field, value)
    if account.plan:
        limits_within(plan=account.plan, limits={f: getattr(account, f) for f in limits if f in LIMIT_FIELDS})


@transaction.atomic
def account_create(
    *,
    team: Team,
    name: str,
    description: str = "",
    limits: dict[str, Any] | None = None,
    identity_seed: SealedSeed | None = None,
    is_system: bool = False,
    plan: str | None = None,
) -> Account:
    """A new account owned by ``team``, with a default signing key for its users, signed and recorded.

    A tenant's account has a ``plan``: it starts with the plan's allowance and its limits stay within the
    plan's ceilings. Without a plan (the operator's tooling, the system account) no ceiling applies."""
    name = name_check(name)
    if plan is not None:
        limits = {**plan_limits(plan), **(limits or {})}
        _team_room_check(team=team, plan=plan)
    description = description_check(description)
    if Account.objects.filter(team=team, name=name).exists():
        raise Conflict(f"the team already has an account named {name!r}", extra={"field": "name"})
    operator_get()  # fail early, with the how-to, when there is no operator
    seed = identity_seed or op_services.seed_generate(key_type=KeyType.ACCOUNT)
    account = Account(team=team, name=name, description=description, public_key=seed.public_key,
                      identity_seed=seed, is_system=is_system, plan=plan or "")
    _limits_apply(account, limits or {})
    account.save()
    op_services.signing_key_create(owner_public_key=account.public_key, description="signs this account's users")
    _usage_import_add(account)  # signed with everything else: version 1 already answers ngs.usage
    if account.plan:
        _plan_span(account)
    return account_resign(account=account)


def _plan_span(account: Account, *, plan: str | None = None) -> None:
    """Record that ``account`` is on ``plan`` (default: its own) from now on (the history invoices read)."""
    PlanSpan.objects.create(team_id=account.team_id, account_public_key=account.public_key,
                            account_name=account.name, plan=account.plan if plan is None else plan,
                            at=timezone.now())


def system_account_ensure() -> Account:
    """The operator's system account (its key was made by ``operator init``), as an Account row."""
    operator = operator_get()
    account = Account.objects.filter(public_key=operator.system_account).first()
    if account is not None:
        return account
    return account_create(
        team=platform_team_get(),
        name="SYS",
        description="system account",
        identity_seed=op_services.system_account_seed_get(operator=operator),
        is_system=True,
    )


@transaction.atomic
def account_update(
    *, account: Account, name: str | None = None, description: str | None = None, limits: dict[str, Any] | None = None
) -> Account:
    account = _lock(account)
    if name is not None:
        name = name_check(name)
        if Account.objects.filter(team=account.team, name=name).exclude(pk=account.pk).exists():
            raise Conflict(f"the team already has an account named {name!r}", extra={"field": "name"})
        account.name = name
    if description is not None:
        account.description = description_check(description)
    if limits:
        _limits_apply(account, limits)
    account.save()
    return account_resign(account=account)


@transaction.atomic
def account_plan_set(*, account: Account, plan: str) -> Account:
    """Move a tenant account to ``plan`` (billing calls this): its limits become the plan's allowance, and the
    account is re-signed and pushed. Called by billing, which owns plans (accounts_service never imports it)."""
    account = _lock(account)
    limits = plan_limits(plan)  # an unknown plan is a 400 naming the field
    if account.is_system:
        raise Conflict("the system account is not on a plan")
    if plan != account.plan:
        _team_room_check(team=account.team, plan=plan)
    previous, account.plan = account.plan, plan
    _limits_apply(account, {k: v for k, v in limits.items() if k in LIMIT_FIELDS})
    account.save()
    account = account_resign(account=account)
    if previous != plan:
        _plan_span(account)
        transaction.on_commit(lambda: account_plan_changed.send(sender=Account, account_id=account.pk,
                                                                previous=previous, plan=plan))
    return account


def _team_room_check(*, team: Team, plan: str) -> None:
    """A 409 when ``team`` already holds as many accounts on ``plan`` as the plan allows (the team row is locked,
    so two concurrent creations cannot both take the last place)."""
    Team.objects.select_for_update().filter(pk=team.pk).first()
    team_room_check(plan=plan, accounts_on_plan=Account.objects.filter(team=team, plan=plan).count())


@transaction.atomic
def account_suspend(*, account: Account, reason: str) -> Account:
    """Refuse the account's new connections (its JWT allows none) until ``account_resume``. Idempotent."""
    account = _lock(account)
    if account.is_system:
        raise Conflict("the system account cannot be suspended")
    if account.suspended_at is not None:
        return account
    account.suspended_at, account.suspended_reason = timezone.now(), reason[:200]
    account.save(update_fields=["suspended_at", "suspended_reason", "updated_at"])
    return account_resign(account=account)


@transaction.atomic
def account_resume(*, account: Account) -> Account:
    account = _lock(account)
    if account.suspended_at is None:
        return account
    account.suspended_at, account.suspended_reason = None, ""
    account.save(update_fields=["suspended_at", "suspended_reason", "updated_at"])
    return account_resign(account=account)


@transaction.atomic
def account_delete(*, account: Account) -> list[Account]:
    """Delete an account; importers of its exports lose those imports and are re-signed. Returns them."""
    account = _lock(account)
    if account.is_system:
        raise Conflict("the system account cannot be deleted")
    importers = list(Account.objects.filter(account_imports__export__account=account).exclude(pk=account.pk).distinct())
    Import.objects.filter(export__account=account).delete()
    seeds = [account.identity_seed_id, *NatsUser.objects.filter(account=account).values_list("seed_id", flat=True)]
    keys = list(SigningKey.objects.filter(owner_public_key=account.public_key))
    NatsUser.objects.filter(account=account).delete()
    if account.plan:
        _plan_span(account, plan="")  # its period's invoice still bills it
    account.delete()
    for key in keys:
        seeds.append(key.seed_id)
        key.delete()
    SealedSeed.objects.filter(pk__in=[s for s in seeds if s]).delete()
    public_key = account.public_key
    transaction.on_commit(lambda: account_deleted.send(sender=Account, account_public_key=public_key))
    return [account_resign(account=_lock(imp)) for imp in importers]


@transaction.atomic
def account_signing_key_add(
    *, account: Account, role: str = "", template: dict[str, Any] | None = None, description: str = ""
) -> SigningKey:
    """Add a signing key to the account (scoped when ``role`` is set: its users get ``template``)."""
    account = _lock(account)
    if role:
        role = name_check(role, field="role")
        template = _template_check(template or {})
    key = op_services.signing_key_create(
        owner_public_key=account.public_key, role=role, template=template if role else None,
        description=description_check(description),
    )
    account_resign(account=account)
    return key


@transaction.atomic
def account_signing_key_rotate(*, account: Account, public_key: str, actor=None) -> SigningKey:
    """Replace one of the account's signing keys (a leaked seed, a departing admin): a new key with the same
    role and template re-signs every active user of the old one, and the old key leaves the account JWT, so
    JWTs it signed stop working on every node. Users must fetch their new ``.creds``. Revoked users keep
    their old JWT: re-signing them would issue a JWT newer than their revocation, which NATS would accept.
    """
    account = _lock(account)
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
            user.jwt = _user_jwt(user, iat=user.jwt_iat)
            reissued += 1
        user.save(update_fields=["signing_key", "jwt", "jwt_iat"])
    SigningKey.objects.filter(pk=old.pk).delete()
    SealedSeed.objects.filter(pk=old_seed_id).delete()
    account_resign(account=account)
    audit_record(action=AuditEvent.Action.KEY_ROTATE, actor=actor, team=account.team, target=new.public_key,
                 detail={"account": account.public_key, "old": public_key, "role": role, "users_reissued": reissued})
    return new


def _template_check(template: dict[str, Any]) -> dict[str, Any]:
    allowed = {"pub_allow", "pub_deny", "sub_allow", "sub_deny", "allow_responses", "subs", "data", "payload"}
    unknown = set(template) - allowed
    if unknown:
        raise ApplicationError(f"unknown template fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {f: subjects_check(template.get(f), field=f)
                           for f in ("pub_allow", "pub_deny", "sub_allow", "sub_deny")}
    out["allow_responses"] = bool(template.get("allow_responses", False))
    for f in ("subs", "data", "payload"):
        out[f] = limit_check(template.get(f, -1), field=f)
    return out


# ------------------------------------------------------------------------------------------------
# Users
# ------------------------------------------------------------------------------------------------


def _user_jwt(user: NatsUser, *, iat: int) -> str:
    key = user.signing_key
    if key.scoped:
        nats = claims.user_nats(scoped=True)
    else:
        nats = claims.user_nats(
            permissions=user_permissions(
                pub_allow=user.pub_allow, pub_deny=user.pub_deny, sub_allow=user.sub_allow,
                sub_deny=user.sub_deny, allow_responses=user.allow_responses,
            ),
            limits=claims.UserLimits(subs=user.subs, data=user.data, payload=user.payload),
            bearer_token=user.bearer_token,
        )
    return op_services.user_jwt_issue(
        signing_key=key,
        account_public_key=user.account.public_key,
        user_public_key=user.public_key,
        name=user.name,
        nats=nats,
        iat=iat,
        exp=int(user.expires_at.timestamp()) if user.expires_at else None,
    )


def _signing_key_for(account: Account, role: str | None) -> SigningKey:
    # With its sealed seed (it signs next), and only the columns signing reads.
    qs = SigningKey.objects.filter(owner_public_key=account.public_key).select_related("seed").only(
        "id", "owner_public_key", "public_key", "role", "seed__id", "seed__public_key", "seed__sealed")
    key = qs.filter(role=role).first() if role else qs.filter(role="").order_by("id").first()
    if key is None:
        if role:
            raise ApplicationError(f"the account has no signing key with role {role!r}", extra={"field": "role"})
        raise Conflict("the account has no signing key")
    return key


def user_create(
    *,
    account: Account,
    name: str,
    pub_allow: Iterable[str] | None = None,
    pub_deny: Iterable[str] | None = None,
    sub_allow: Iterable[str] | None = None,
    sub_deny: Iterable[str] | None = None,
    allow_responses: bool = False,
    subs: int = -1,
    data: int = -1,
    payload: int = -1,
    bearer_token: bool = False,
    expires_at: dt.datetime | None = None,
    public_key: str | None = None,
    role: str | None = None,
) -> NatsUser:
    """A user of ``account``: we generate its key (and keep the seed sealed) unless ``public_key`` is given.

    With ``role`` the user is signed by that scoped signing key and carries no permissions of its own.
    Checks, key generation and sealing come first; the transaction (on SQLite, the time it holds the database's
    one write lock) reads the signing key, signs and inserts, so a concurrent key rotation is either before it
    (the new key signs) or after it (the rotation re-issues this user).
    """
    name = name_check(name)
    fields: dict[str, Any] = {
        "pub_allow": subjects_check(pub_allow, field="pub_allow"),
        "pub_deny": subjects_check(pub_deny, field="pub_deny"),
        "sub_allow": subjects_check(sub_allow, field="sub_allow"),
        "sub_deny": subjects_check(sub_deny, field="sub_deny"),
        "allow_responses": bool(allow_responses),
        "subs": limit_check(subs, field="subs"),
        "data": limit_check(data, field="data"),
        "payload": limit_check(payload, field="payload"),
        "bearer_token": bool(bearer_token),
    }
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at is in the past", extra={"field": "expires_at"})
    seed = None
    if public_key:
        public_key = public_key_check(public_key, key_type=KeyType.USER, field="public_key")
        if Revocation.objects.filter(public_key=public_key).exists():
            raise ApplicationError("this public key was revoked; generate a new key", extra={"field": "public_key"})
    else:
        seed = op_services.seed_prepare(key_type=KeyType.USER)  # generated and sealed, saved below
        public_key = seed.public_key
    with transaction.atomic():
        # The lock orders this against the account's re-signs, key rotations and deletion. On SQLite
        # select_for_update is a no-op, and the transaction (BEGIN IMMEDIATE) already holds the database lock.
        if connection.features.has_select_for_update:
            _lock(account)
        key = _signing_key_for(account, role)
        if key.scoped and any(fields[f] for f in ("pub_allow", "pub_deny", "sub_allow", "sub_deny")):
            raise ApplicationError("a user of a scoped signing key takes its permissions from the role",
                                   extra={"field": "role"})
        user = NatsUser(account=account, name=name, public_key=public_key, signing_key=key, expires_at=expires_at,
                        **fields)
        user.jwt_iat = int(time.time())
        user.jwt = _user_jwt(user, iat=user.jwt_iat)
        if seed is not None:
            seed.save(force_insert=True)
            user.seed = seed
        # The unique constraints (account + name, public key) decide; the conflict is looked up only when one
        # fails, rather than checked with two reads on every creation. The sealed seed goes with the rollback.
        try:
            with transaction.atomic():
                user.save(force_insert=True)
        except IntegrityError as exc:
            if NatsUser.objects.filter(account=account, name=name).exists():
                raise Conflict(f"the account already has a user named {name!r}", extra={"field": "name"}) from exc
            if NatsUser.objects.filter(public_key=public_key).exists():
                raise Conflict("a user with this public key already exists", extra={"field": "public_key"}) from exc
            raise
    return user


@transaction.atomic
def user_update(*, user: NatsUser, **changes: Any) -> NatsUser:
    """Change a user's permissions or limits: a new JWT is issued and every earlier one is revoked."""
    account = _lock(user.account)
    user = NatsUser.objects.select_for_update().get(pk=user.pk)
    if user.revoked_at:
        raise Conflict("the user is revoked")
    for field, value in changes.items():
        if field in ("pub_allow", "pub_deny", "sub_allow", "sub_deny"):
            if user.signing_key.scoped and value:
                raise ApplicationError("a user of a scoped signing key takes its permissions from the role")
            setattr(user, field, subjects_check(value, field=field))
        elif field in ("subs", "data", "payload"):
            setattr(user, field, limit_check(value, field=field))
        elif field in ("allow_responses", "bearer_token"):
            setattr(user, field, bool(value))
        elif field == "name":
            user.name = name_check(value)
            if NatsUser.objects.filter(account=account, name=user.name).exclude(pk=user.pk).exists():
                raise Conflict(f"the account already has a user named {user.name!r}", extra={"field": "name"})
        elif field == "expires_at":
            if value is not None and value <= timezone.now():
                raise ApplicationError("expires_at is in the past", extra={"field": "expires_at"})
            user.expires_at = value
        else:
            raise ApplicationError(f"unknown field {field!r}", extra={"field": field})
    # Revoke every JWT issued so far for this key, then issue one strictly newer than that.
    cutoff = user.jwt_iat
    Revocation.objects.update_or_create(account=account, public_key=user.public_key,
                                        defaults={"revoked_at_ts": cutoff})
    user.jwt_iat = max(int(time.time()), cutoff + 1)
    user.jwt = _user_jwt(user, iat=user.jwt_iat)
    user.save()
    account_resign(account=account)
    return user


@transaction.atomic
def user_revoke(*, user: NatsUser, actor=None) -> NatsUser:
    """Revoke a user: the account JWT revokes its key, so connected clients are dropped and refused.
    Idempotent; the first revocation by a person (``actor``) goes to the team's audit log."""
    account = _lock(user.account)
    user = NatsUser.objects.select_for_update().get(pk=user.pk)
    if user.revoked_at:
        return user
    now = timezone.now()
    ts = max(int(now.timestamp()), user.jwt_iat)
    Revocation.objects.update_or_create(account=account, public_key=user.public_key, defaults={"revoked_at_ts": ts})
    user.revoked_at = now
    user.save(update_fields=["revoked_at"])
    account_resign(account=account)
    if actor is not None:
        audit_record(action=AuditEvent.Action.USER_REVOKE, actor=actor, team=account.team, target=user.public_key,
                     detail={"account": account.public_key, "user": user.name})
    return user


@transaction.atomic
def user_delete(*, user: NatsUser) -> None:
    """Delete a user; it is revoked first, so its creds stop working everywhere."""
    user = user_revoke(user=user)
    seed_id = user.seed_id
    user.delete()
    if seed_id:
        SealedSeed.objects.filter(pk=seed_id).delete()


def user_creds_get(*, user: NatsUser) -> str:
    """The user's `.creds` text; only for users whose key we generated."""
    # Re-read what decides (revoked? which JWT?) together with the sealed seed: one query, not two.
    fresh = NatsUser.objects.select_related("seed").only("revoked_at", "jwt", "seed").get(pk=user.pk)
    user.revoked_at, user.jwt, user.seed = fresh.revoked_at, fresh.jwt, fresh.seed
    if user.revoked_at:
        raise Conflict("the user is revoked")
    if user.seed_id is None:
        raise Conflict(
            "this user was created with your own public key; we never saw its seed, "
            "so pair the user JWT with your seed",
        )
    return op_services.creds_render(user_seed=user.seed, jwt=user.jwt)


def user_creds_download(*, user: NatsUser, actor) -> str:
    """The ``.creds`` handed to a person (``actor``, a member of the owning team): recorded in the audit log."""
    text = user_creds_get(user=user)
    audit_record(action=AuditEvent.Action.CREDS_DOWNLOAD, actor=actor, team_id=user.account.team_id,
                 target=user.public_key, detail={"account": user.account.public_key, "user": user.name})
    return text


def creds_filename(name: str) -> str:
    """A safe attachment filename for a user's ``.creds``."""
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "user") + ".creds"


# ------------------------------------------------------------------------------------------------
# Exports, activations, imports
# ------------------------------------------------------------------------------------------------


@transaction.atomic
def export_create(
    *,
    account: Account,
    name: str,
    subject: str,
    type: str,
    private: bool = False,
    response_type: str = Export.ResponseType.SINGLETON,
    account_token_position: int = 0,
    advertise: bool = False,
    description: str = "",
) -> Export:
    """Offer a stream or a service to other accounts (public, or private with activation tokens)."""
    account = _lock(account)
    name = name_check(name)
    subject = subject_check(subject, wildcards=account.wildcard_exports)
    if type not in Export.Type.values:
        raise ApplicationError("type must be stream or service", extra={"field": "type"})
    if type == Export.Type.SERVICE and response_type not in Export.ResponseType.values:
        raise ApplicationError("response_type must be Singleton, Stream or Chunked", extra={"field": "response_type"})
    tokens = subject.split(".")
    if account_token_position:
        if not 0 < account_token_position <= len(tokens) or tokens[account_token_position - 1] != "*":
            raise ApplicationError("account_token_position must point at a '*' token of the subject",
                                   extra={"field": "account_token_position"})
    for other in Export.objects.filter(account=account):
        if other.name == name:
            raise Conflict(f"an export named {name!r} exists", extra={"field": "name"})
        if overlaps(other.subject, subject):
            raise ApplicationError(f"the subject overlaps the export {other.subject!r}", extra={"field": "subject"})
    if account.exports != -1 and Export.objects.filter(account=account).count() >= account.exports:
        raise Conflict(f"the account allows {account.exports} exports")
    export = Export.objects.create(
        account=account, name=name, subject=subject, type=type, token_req=bool(private),
        response_type=response_type if type == Export.Type.SERVICE else Export.ResponseType.SINGLETON,
        account_token_position=account_token_position, advertise=bool(advertise),
        description=description_check(description),
    )
    account_resign(account=account)
    return export


@transaction.atomic
def export_delete(*, export: Export) -> None:
    """Withdraw an export; importing accounts lose the import and are re-signed."""
    account = _lock(export.account)
    importers = list(Account.objects.filter(account_imports__export=export).distinct())
    export.delete()
    account_resign(account=account)
    for importer in importers:
        account_resign(account=_lock(importer))


@transaction.atomic
def activation_create(
    *, export: Export, target_public_key: str, subject: str | None = None, expires_at: dt.datetime | None = None
) -> Activation:
    """An activation token for one importing account of a private export."""
    _lock(export.account)
    target = public_key_check(target_public_key, key_type=KeyType.ACCOUNT, field="target")
    if not export.token_req:
        raise ApplicationError("the export is public; importers need no activation", extra={"field": "export"})
    if target == export.account.public_key:
        raise ApplicationError("an account cannot activate its own export", extra={"field": "target"})
    subject = subject_check(subject, field="subject") if subject else export.subject
    if not is_subset(subject, export.subject):
        raise ApplicationError(f"{subject!r} is not within the export {export.subject!r}", extra={"field": "subject"})
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at is in the past", extra={"field": "expires_at"})
    signed = op_services.activation_issue(
        exporter_seed=export.account.identity_seed, target_public_key=target, subject=subject, kind=export.type,
        exp=int(expires_at.timestamp()) if expires_at else None,
    )
    return Activation.objects.create(export=export, target_public_key=target, subject=subject, token=signed.token,
                                     jti=signed.jti, iat=signed.iat, expires_at=expires_at)


@transaction.atomic
def activation_revoke(*, activation: Activation) -> Activation:
    """Revoke an activation: the exporter's JWT lists the importer in the export's revocations."""
    account = _lock(activation.export.account)
    if activation.revoked_at is None:
        activation.revoked_at = timezone.now()
        activation.save(update_fields=["revoked_at"])
        account_resign(account=account)
    return activation


def _activation_check(*, token: str, export: Export, importer: Account, subject: str) -> None:
    try:
        act = claims.decode(token, expected_type=claims.ACTIVATION, check_times=True)
    except claims.JwtError as exc:
        raise ApplicationError(f"the activation token is invalid: {exc}", extra={"field": "token"}) from exc
    exporter = export.account
    issuer_ok = act.issuer == exporter.public_key or (
        act.issuer_account == exporter.public_key
        and SigningKey.objects.filter(owner_public_key=exporter.public_key, public_key=act.issuer).exists()
    )
    if not issuer_ok:
        raise ApplicationError("the activation token was not issued by the exporting account", extra={"field": "token"})
    if act.subject != importer.public_key:
        raise ApplicationError("the activation token is for another account", extra={"field": "token"})
    if act.nats.get("kind") != export.type:
        raise ApplicationError("the activation token is for another kind of export", extra={"field": "token"})
    if not is_subset(subject, act.nats.get("subject", "")):
        raise ApplicationError("the activation token does not cover this subject", extra={"field": "token"})
    if Activation.objects.filter(jti=act.jti, revoked_at__isnull=False).exists():
        raise ApplicationError("the activation token was revoked", extra={"field": "token"})


@transaction.atomic
def import_create(
    *,
    account: Account,
    exporter_public_key: str,
    subject: str,
    local_subject: str | None = None,
    token: str | None = None,
    name: str | None = None,
    share: bool = False,
) -> Import:
    """Import another account's export; a private export needs a valid activation token."""
    account = _lock(account)
    exporter_key = public_key_check(exporter_public_key, key_type=KeyType.ACCOUNT, field="from")
    subject = subject_check(subject)
    if exporter_key == account.public_key:
        raise ApplicationError("an account cannot import its own export", extra={"field": "from"})
    exporter = Account.objects.filter(public_key=exporter_key).first()
    if exporter is None:
        raise ApplicationError("no account with that public key exports anything", extra={"field": "from"})
    export = export_covering_get(account=exporter, subject=subject)
    if export.type == Export.Type.SERVICE and has_wildcards(subject) and not export.account_token_position:
        raise ApplicationError("a service import names a literal subject", extra={"field": "subject"})
    if export.token_req:
        if not token:
            raise ApplicationError("the export is private: an activation token is required", extra={"field": "token"})
        _activation_check(token=token.strip(), export=export, importer=account, subject=subject)
        token = token.strip()
    else:
        token = ""
    local = subject_check(local_subject, field="local_subject") if local_subject else subject
    if has_wildcards(local) and not has_wildcards(subject):
        raise ApplicationError("local_subject may not add wildcards", extra={"field": "local_subject"})
    for other in Import.objects.filter(account=account):
        if overlaps(other.local_subject, local):
            raise ApplicationError(f"the local subject overlaps the import of {other.local_subject!r}",
                                   extra={"field": "local_subject"})
    if account.imports != -1 and Import.objects.filter(account=account).count() >= account.imports:
        raise Conflict(f"the account allows {account.imports} imports")
    try:
        with transaction.atomic():
            imp = Import.objects.create(account=account, export=export, name=name_check(name or subject[:64]),
                                        subject=subject, local_subject=local, token=token, share=bool(share))
    except IntegrityError as exc:
        raise ApplicationError("the import conflicts with an existing one", extra={"field": "local_subject"}) from exc
    account_resign(account=account)
    return imp


@transaction.atomic
def import_delete(*, imp: Import) -> None:
    account = _lock(imp.account)
    imp.delete()
    account_resign(account=account)


# ------------------------------------------------------------------------------------------------
# API tokens
# ------------------------------------------------------------------------------------------------

API_TOKEN_PREFIX = "nct_"


def api_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str = "") -> tuple[ApiToken, str]:
    """A new API token for ``user``; the token itself is returned once and only its digest is stored."""
    if not user.is_active:
        raise ApplicationError("the user is inactive")
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken.objects.create(user=user, name=description_check(name, field="name")[:64],
                                     prefix=token[: len(API_TOKEN_PREFIX) + 6], digest=api_token_digest(token))
    audit_record(action=AuditEvent.Action.TOKEN_CREATE, actor=user, team=team_personal_ensure(user=user),
                 target=record.prefix, detail={"name": record.name})
    return record, token


@transaction.atomic
def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action=AuditEvent.Action.TOKEN_REVOKE, actor=token.user,
                     team=team_personal_ensure(user=token.user), target=token.prefix, detail={"name": token.name})
    return token


def django_user_get(*, username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


# ------------------------------------------------------------------------------------------------
# Audit log
# ------------------------------------------------------------------------------------------------


def audit_record(*, action: str, actor=None, team: Team | None = None, team_id: int | None = None, target: str = "",
                 detail: dict[str, Any] | None = None) -> AuditEvent:
    """Append a security action to the team's audit log (never a seed, a token or creds in ``detail``).
    ``team_id`` names the team without loading it (e.g. ``account.team_id``)."""
    if action not in AuditEvent.Action.values:
        raise ApplicationError(f"unknown audit action {action!r}")
    by_team = {"team": team} if team is not None or team_id is None else {"team_id": team_id}
    return AuditEvent.objects.create(
        action=action, **by_team, actor=actor if getattr(actor, "pk", None) else None,
        actor_name=getattr(actor, "get_username", lambda: "")() if actor is not None else "",
        target=target[:128], detail=detail or {},
    )


# ------------------------------------------------------------------------------------------------
# The platform's ngs.usage service: a public service export every tenant account imports
# ------------------------------------------------------------------------------------------------

USAGE_ACCOUNT = "ngs"
USAGE_LOCAL_SUBJECT = "ngs.usage"
USAGE_EXPORT_SUBJECT = "ngs.usage.*"  # the importing account's own key in the third token


def usage_export_get() -> Export | None:
    return (Export.objects.select_related("account")
            .filter(account__team__is_platform=True, subject=USAGE_EXPORT_SUBJECT).first())


def _usage_import_add(account: Account) -> bool:
    """Give a tenant account its ``ngs.usage`` import (once the platform offers the service). The export's
    account token position makes the servers accept only ``ngs.usage.<the importer's own key>``."""
    export = usage_export_get()
    if (export is None or account.is_system or account.team.is_platform
            or Import.objects.filter(account=account, local_subject=USAGE_LOCAL_SUBJECT).exists()):
        return False
    Import.objects.create(account=account, export=export, name="ngs.usage", local_subject=USAGE_LOCAL_SUBJECT,
                          subject=f"ngs.usage.{account.public_key}")
    return True


@transaction.atomic
def usage_service_ensure() -> Account:
    """The platform account exporting ``ngs.usage.*``; every tenant account without the import gets it (and is
    re-signed). Idempotent: ``make up``, the collector and a data migration call it."""
    team = platform_team_get()
    account = Account.objects.filter(team=team, name=USAGE_ACCOUNT).first() or account_create(
        team=team, name=USAGE_ACCOUNT, description="platform services: ngs.usage"
    )
    if usage_export_get() is None:
        export_create(account=account, name="ngs.usage", subject=USAGE_EXPORT_SUBJECT, type=Export.Type.SERVICE,
                      account_token_position=3, description="your account's own usage: request ngs.usage")
    for tenant in Account.objects.filter(is_system=False, team__is_platform=False).exclude(
            account_imports__local_subject=USAGE_LOCAL_SUBJECT).select_related("team"):
        locked = _lock(tenant)
        if _usage_import_add(locked):
            account_resign(account=locked)
    return account
