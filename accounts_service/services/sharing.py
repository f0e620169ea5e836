"""Writes of sharing between accounts: exports (streams and services), activation tokens, imports."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts_service.models import Account, Activation, AuditEvent, Export, Import
from accounts_service.rights import member_required
from accounts_service.selectors import export_covering_get
from accounts_service.services.audit import audit_record
from accounts_service.services.signing import account_lock, account_resign
from accounts_service.services.usage import import_is_builtin
from accounts_service.validation import description_check, future_check, name_check, public_key_check, subject_check
from core.errors import Conflict, Invalid
from operators import claims
from operators import services as op_services
from operators.models import SigningKey
from operators.nkeys import KeyType
from operators.subjects import has_wildcards, is_subset, overlaps

# With an account token position nats-server admits an import by the importer's key in that token alone and never
# reads the activation: not its signature, not its expiry, not the export's revocations (server/accounts.go,
# Account.checkAuth: `if ea.accountPos > 0 { return ... tokens[ea.accountPos-1] == account.Name }` comes before
# `if ea.tokenReq { return a.checkActivation(...) }`). So we neither demand a token there nor offer an expiry or a
# revocation that no server would enforce; a private export without a token position is the one whose activations
# (expiry, revocation) the servers do enforce.
NOT_ENFORCED = ("nats-server does not read activation tokens for an export with an account token position: the"
                " importer's own key in token {position} is all it checks")
INSTEAD = ("To cut an importer off, delete the export (every importer loses it), or offer a private export without"
           " a token position, whose activations' expiry and revocation the servers enforce.")

# First tokens only the platform's accounts export: the system account's subjects and the platform's own services
# (ngs.usage), so no tenant can offer a look-alike of either.
RESERVED_NAMESPACES = ("$SYS", "ngs")


@transaction.atomic
def export_create(
    *,
    account: Account,
    actor: Any,
    name: str,
    subject: str,
    type: str,
    private: bool = False,
    response_type: str = Export.ResponseType.SINGLETON,
    account_token_position: int = 0,
    advertise: bool = False,
    description: str = "",
) -> Export:
    """Offer a stream or a service to other accounts (any member; public, or private with activation tokens)."""
    member_required(team=account.team_id, actor=actor)
    account = account_lock(account)
    name = name_check(name)
    subject = subject_check(subject, wildcards=account.wildcard_exports)
    if type not in Export.Type.values:
        raise Invalid("type must be stream or service", extra={"field": "type"})
    if type == Export.Type.SERVICE and response_type not in Export.ResponseType.values:
        raise Invalid("response_type must be Singleton, Stream or Chunked", extra={"field": "response_type"})
    tokens = subject.split(".")
    if tokens[0] in RESERVED_NAMESPACES and not account.team.is_platform:
        raise Invalid(f"subjects under {tokens[0]}. are the platform's: choose another first token",
                      extra={"field": "subject"}, code="subject_reserved")
    if account_token_position:
        if not 0 < account_token_position <= len(tokens) or tokens[account_token_position - 1] != "*":
            raise Invalid("account_token_position must point at a '*' token of the subject",
                                   extra={"field": "account_token_position"})
    for other in Export.objects.filter(account=account):
        if other.name == name:
            raise Conflict(f"an export named {name!r} exists", extra={"field": "name"}, code="export_name_taken")
        if overlaps(other.subject, subject):
            raise Invalid(f"the subject overlaps the export {other.subject!r}", extra={"field": "subject"})
    if account.exports != -1 and Export.objects.filter(account=account).count() >= account.exports:
        raise Conflict(f"the account allows {account.exports} exports", code="exports_limit")
    export = Export.objects.create(
        account=account, name=name, subject=subject, type=type, token_req=bool(private),
        response_type=response_type if type == Export.Type.SERVICE else Export.ResponseType.SINGLETON,
        account_token_position=account_token_position, advertise=bool(advertise),
        description=description_check(description),
    )
    account_resign(account=account)
    audit_record(action=AuditEvent.Action.EXPORT_CREATE, actor=actor, team_id=account.team_id,
                 target=account.public_key, detail={"export": export.name, "subject": export.subject,
                                                    "type": export.type, "private": export.token_req,
                                                    "account_token_position": export.account_token_position})
    return export


def _deletion_start(*, account: Account, actor: Any, action: str, detail: dict[str, Any]) -> Account:
    """A member removes something of ``account``: checked, the account locked for its re-sign, and audited."""
    member_required(team=account.team_id, actor=actor)
    account = account_lock(account)
    audit_record(action=action, actor=actor, team_id=account.team_id, target=account.public_key, detail=detail)
    return account


@transaction.atomic
def export_delete(*, export: Export, actor: Any) -> None:
    """Withdraw an export (any member; audited); importing accounts lose the import and are re-signed."""
    account = _deletion_start(account=export.account, actor=actor, action=AuditEvent.Action.EXPORT_DELETE,
                              detail={"export": export.name, "subject": export.subject})
    importers = list(Account.objects.filter(account_imports__export=export).distinct())
    export.delete()
    account_resign(account=account)
    for importer in importers:
        account_resign(account=account_lock(importer))


@transaction.atomic
def activation_create(
    *, export: Export, actor: Any, target_public_key: str, subject: str | None = None,
    expires_at: dt.datetime | None = None,
) -> Activation:
    """An activation token for one importing account of a private export (any member of the exporter's team)."""
    member_required(team=export.account.team_id, actor=actor)
    account_lock(export.account)
    target = public_key_check(target_public_key, key_type=KeyType.ACCOUNT, field="target")
    if not export.token_req:
        raise Invalid("the export is public; importers need no activation", extra={"field": "export"})
    if target == export.account.public_key:
        raise Invalid("an account cannot activate its own export", extra={"field": "target"})
    subject = subject_check(subject, field="subject") if subject else export.subject
    if not is_subset(subject, export.subject):
        raise Invalid(f"{subject!r} is not within the export {export.subject!r}", extra={"field": "subject"})
    expires_at = future_check(expires_at, field="expires_at")
    if expires_at and export.account_token_position:
        raise Invalid(NOT_ENFORCED.format(position=export.account_token_position) + ", so this expiry would not be"
                      " enforced. " + INSTEAD, extra={"field": "expires_at"}, code="activation_not_enforced")
    signed = op_services.activation_issue(
        exporter_seed=export.account.identity_seed, target_public_key=target, subject=subject, kind=export.type,
        exp=int(expires_at.timestamp()) if expires_at else None,
    )
    # The same activation asked twice within one second signs the same claims: the same token (and jti), which is
    # the one already issued, not a second row.
    activation = Activation.objects.filter(jti=signed.jti).first()
    if activation is not None and activation.revoked_at is not None:
        raise Conflict("this activation was revoked within the last second; ask for it again in a second",
                       code="activation_just_revoked")
    if activation is None:
        activation = Activation.objects.create(export=export, target_public_key=target, subject=subject,
                                               token=signed.token, jti=signed.jti, iat=signed.iat,
                                               expires_at=expires_at)
    audit_record(action=AuditEvent.Action.ACTIVATION_CREATE, actor=actor, team_id=export.account.team_id,
                 target=target, detail={"account": export.account.public_key, "export": export.name, "subject": subject,
                                        "expires_at": expires_at.isoformat() if expires_at else None})
    return activation


@transaction.atomic
def activation_revoke(*, activation: Activation, actor: Any) -> Activation:
    """Revoke an activation (any member): the exporter's JWT lists the importer in the export's revocations."""
    member_required(team=activation.export.account.team_id, actor=actor)
    account = account_lock(activation.export.account)
    position = activation.export.account_token_position
    if position and activation.revoked_at is None:
        raise Conflict(NOT_ENFORCED.format(position=position) + ", so a revocation would change nothing: the"
                       " importer keeps the import. " + INSTEAD, extra={"field": "activation"},
                       code="activation_not_enforced")
    if activation.revoked_at is None:
        activation.revoked_at = timezone.now()
        activation.save(update_fields=["revoked_at"])
        account_resign(account=account)
        audit_record(action=AuditEvent.Action.ACTIVATION_REVOKE, actor=actor, team_id=account.team_id,
                     target=activation.target_public_key,
                     detail={"account": account.public_key, "export": activation.export.name,
                             "subject": activation.subject})
    return activation


def _activation_check(*, token: str, export: Export, importer: Account, subject: str) -> None:
    try:
        act = claims.decode(token, expected_type=claims.ACTIVATION, check_times=True)
    except claims.JwtError as exc:
        raise Invalid(f"the activation token is invalid: {exc}", extra={"field": "token"}) from exc
    exporter = export.account
    issuer_ok = act.issuer == exporter.public_key or (
        act.issuer_account == exporter.public_key
        and SigningKey.objects.filter(owner_public_key=exporter.public_key, public_key=act.issuer).exists()
    )
    if not issuer_ok:
        raise Invalid("the activation token was not issued by the exporting account", extra={"field": "token"})
    if act.subject != importer.public_key:
        raise Invalid("the activation token is for another account", extra={"field": "token"})
    if act.nats.get("kind") != export.type:
        raise Invalid("the activation token is for another kind of export", extra={"field": "token"})
    if not is_subset(subject, act.nats.get("subject", "")):
        raise Invalid("the activation token does not cover this subject", extra={"field": "token"})
    if Activation.objects.filter(jti=act.jti, revoked_at__isnull=False).exists():
        raise Invalid("the activation token was revoked", extra={"field": "token"})


@transaction.atomic
def import_create(
    *,
    account: Account,
    actor: Any,
    exporter_public_key: str,
    subject: str,
    local_subject: str | None = None,
    token: str | None = None,
    name: str | None = None,
    share: bool = False,
) -> Import:
    """Import another account's export (any member); a private export needs a valid activation token, unless it has
    an account token position (the server checks only the importer's key there; a token given is still checked)."""
    member_required(team=account.team_id, actor=actor)
    account = account_lock(account)
    exporter_key = public_key_check(exporter_public_key, key_type=KeyType.ACCOUNT, field="from")
    subject = subject_check(subject)
    if exporter_key == account.public_key:
        raise Invalid("an account cannot import its own export", extra={"field": "from"})
    exporter = Account.objects.filter(public_key=exporter_key).first()
    if exporter is None:
        raise Invalid("no account with that public key exports anything", extra={"field": "from"})
    export = export_covering_get(account=exporter, subject=subject)
    position = export.account_token_position
    if position and (len(subject.split(".")) < position or subject.split(".")[position - 1] != account.public_key):
        # nats-server admits such an import only with the importer's own key there (accounts.go, checkAuth): any
        # other key would be signed into the JWT and silently ignored by every node.
        own = export.subject.split(".")
        own[position - 1] = account.public_key
        raise Invalid(f"the export {export.subject!r} admits only the importing account's own key in token {position}:"
                      f" import {'.'.join(own)!r}", extra={"field": "subject"}, code="account_token_mismatch")
    if export.type == Export.Type.SERVICE and has_wildcards(subject) and not position:
        raise Invalid("a service import names a literal subject", extra={"field": "subject"})
    if export.token_req and position and not token:
        token = ""  # the server checks the key in the token position only (see NOT_ENFORCED above)
    elif export.token_req:
        if not token:
            raise Invalid("the export is private: an activation token is required", extra={"field": "token"})
        _activation_check(token=token.strip(), export=export, importer=account, subject=subject)
        token = token.strip()
    else:
        token = ""
    local = subject_check(local_subject, field="local_subject") if local_subject else subject
    if has_wildcards(local) and not has_wildcards(subject):
        raise Invalid("local_subject may not add wildcards", extra={"field": "local_subject"})
    for other in Import.objects.filter(account=account):
        if overlaps(other.local_subject, local):
            raise Invalid(f"the local subject overlaps the import of {other.local_subject!r}",
                                   extra={"field": "local_subject"})
    if account.imports != -1 and Import.objects.filter(account=account).count() >= account.imports:
        raise Conflict(f"the account allows {account.imports} imports", code="imports_limit")
    try:
        with transaction.atomic():
            imp = Import.objects.create(account=account, export=export, name=name_check(name or subject[:64]),
                                        subject=subject, local_subject=local, token=token, share=bool(share))
    except IntegrityError as exc:
        raise Invalid("the import conflicts with an existing one", extra={"field": "local_subject"}) from exc
    account_resign(account=account)
    audit_record(action=AuditEvent.Action.IMPORT_CREATE, actor=actor, team_id=account.team_id,
                 target=account.public_key, detail={"import": imp.name, "from": exporter.public_key,
                                                    "subject": subject, "local_subject": local})
    return imp


@transaction.atomic
def import_delete(*, imp: Import, actor: Any) -> None:
    """Remove an import (any member; audited). The platform's built-in ``ngs.usage`` import is refused."""
    member_required(team=imp.account.team_id, actor=actor)
    if import_is_builtin(imp):
        raise Conflict(f"{imp.local_subject} is built in: every account imports the platform's usage service so "
                       f"that it can ask its own usage over NATS; it cannot be removed",
                       extra={"import": imp.pk, "local_subject": imp.local_subject}, code="import_builtin")
    account = _deletion_start(account=imp.account, actor=actor, action=AuditEvent.Action.IMPORT_DELETE,
                              detail={"import": imp.name, "subject": imp.subject})
    imp.delete()
    account_resign(account=account)
