"""Writes of NATS accounts: create, change, plan, suspend and resume, delete. Each re-signs the whole JWT."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts_service.models import LIMIT_FIELDS, Account, AuditEvent, Import, NatsUser, PlanSpan, Team
from accounts_service.plans import limits_within, plan_limits, team_room_check
from accounts_service.rights import member_required, owner_required, platform_required
from accounts_service.services.audit import audit_changes, audit_record
from accounts_service.services.signing import account_lock, account_resign
from accounts_service.services.usage import usage_import_add
from accounts_service.signals import account_deleted, account_plan_changed
from accounts_service.validation import description_check, limit_check, name_check
from core.errors import Conflict, Invalid
from core.regions import region_check
from operators import services as op_services
from operators.models import SealedSeed, SigningKey
from operators.nkeys import KeyType
from operators.selectors import operator_get


def _limits_apply(account: Account, limits: dict[str, Any]) -> None:
    unknown = set(limits) - set(LIMIT_FIELDS) - {"wildcard_exports"}
    if unknown:
        raise Invalid(f"unknown limits: {', '.join(sorted(unknown))}", extra={"fields": sorted(unknown)},
                      code="limit_unknown")
    for field, value in limits.items():
        if field == "wildcard_exports":
            if not isinstance(value, bool):
                raise Invalid("wildcard_exports must be true or false", extra={"field": field})
        else:
            value = limit_check(value, field=field)
        setattr(account, field, value)
    if account.plan:
        limits_within(plan=account.plan, limits={f: getattr(account, f) for f in limits if f in LIMIT_FIELDS})


_AUDITED_FIELDS = ("name", "description", *LIMIT_FIELDS, "wildcard_exports")


def _audited(account: Account) -> dict[str, Any]:
    return {f: getattr(account, f) for f in _AUDITED_FIELDS}


def _name_free(*, team_id: int, name: str, exclude_pk: int | None = None) -> None:
    if Account.objects.filter(team_id=team_id, name=name).exclude(pk=exclude_pk).exists():
        raise Conflict(f"the team already has an account named {name!r}", extra={"field": "name"},
                       code="account_name_taken")


def _team_room_check(*, team: Team, plan: str) -> None:
    """A 409 when ``team`` already holds as many accounts on ``plan`` as the plan allows (the team row is locked,
    so two concurrent creations cannot both take the last place)."""
    Team.objects.select_for_update().filter(pk=team.pk).first()
    team_room_check(plan=plan, accounts_on_plan=Account.objects.filter(team=team, plan=plan).count())


def _plan_span(account: Account, *, plan: str | None = None) -> None:
    """Record that ``account`` is on ``plan`` (default: its own) from now on (the history invoices read)."""
    PlanSpan.objects.create(team_id=account.team_id, account_public_key=account.public_key,
                            account_name=account.name, plan=account.plan if plan is None else plan,
                            at=timezone.now())


@transaction.atomic
def account_create(
    *,
    team: Team,
    name: str,
    actor: Any,
    description: str = "",
    limits: dict[str, Any] | None = None,
    identity_seed: SealedSeed | None = None,
    is_system: bool = False,
    plan: str | None = None,
) -> Account:
    """A new account owned by ``team`` (any member may create one), with a default signing key for its users.

    A tenant's account has a ``plan``: it starts with the plan's allowance and its limits stay within the
    plan's ceilings. Without a plan (the operator's tooling, the system account) no ceiling applies."""
    member_required(team=team, actor=actor)
    name = name_check(name)
    if plan is not None:
        limits = {**plan_limits(plan), **(limits or {})}
        _team_room_check(team=team, plan=plan)
    description = description_check(description)
    _name_free(team_id=team.pk, name=name)
    operator_get()  # fail early, with the how-to, when there is no operator
    seed = identity_seed or op_services.seed_generate(key_type=KeyType.ACCOUNT)
    account = Account(team=team, name=name, description=description, public_key=seed.public_key,
                      identity_seed=seed, is_system=is_system, plan=plan or "")
    _limits_apply(account, limits or {})
    account.save()
    op_services.signing_key_create(owner_public_key=account.public_key, description="signs this account's users")
    usage_import_add(account)  # signed with everything else: version 1 already answers ngs.usage
    if account.plan:
        _plan_span(account)
    audit_record(action=AuditEvent.Action.ACCOUNT_CREATE, actor=actor, team_id=team.pk, target=account.public_key,
                 detail={"name": account.name, "plan": account.plan,
                         "limits": {f: getattr(account, f) for f in (*LIMIT_FIELDS, "wildcard_exports")}})
    return account_resign(account=account)


@transaction.atomic
def account_update(*, account: Account, actor: Any, name: str | None = None, description: str | None = None,
                   limits: dict[str, Any] | None = None) -> Account:
    """Rename, describe or change the limits of an account (any member; limits stay within the plan)."""
    member_required(team=account.team_id, actor=actor)
    account = account_lock(account)
    before = _audited(account)
    if name is not None:
        name = name_check(name)
        _name_free(team_id=account.team_id, name=name, exclude_pk=account.pk)
        account.name = name
    if description is not None:
        account.description = description_check(description)
    if limits:
        _limits_apply(account, limits)
    account.save()
    changed = audit_changes(before, _audited(account))
    if changed:
        audit_record(action=AuditEvent.Action.ACCOUNT_UPDATE, actor=actor, team_id=account.team_id,
                     target=account.public_key, detail={"name": account.name, "changes": changed})
    return account_resign(account=account)


@transaction.atomic
def account_home_region_set(*, account: Account, actor: Any, region: str) -> Account:
    """Pick the region the account's clients connect to first (``""``: the region its last connection used). Any
    member may; the JWT does not change (the connect list is ours, not the servers'). Whether the region exists
    is the fleet's to check (broker_gateway.services.home_region_set)."""
    member_required(team=account.team_id, actor=actor)
    if not isinstance(region, str):
        raise Invalid("region must be a string (empty for automatic)", extra={"field": "region"})
    if region:
        try:
            region_check(region)
        except ValueError as exc:
            raise Invalid(str(exc), code="region_invalid", extra={"field": "region"}) from exc
    account = account_lock(account)
    before = account.home_region
    if before != region:
        account.home_region = region
        Account.objects.filter(pk=account.pk).update(home_region=region)  # no re-sign, no push: updated_at stays
        audit_record(action=AuditEvent.Action.ACCOUNT_REGION, actor=actor, team_id=account.team_id,
                     target=account.public_key, detail={"before": before, "after": region})
    return account


@transaction.atomic
def account_plan_set(*, account: Account, plan: str, actor: Any) -> Account:
    """Move a tenant account to ``plan`` (owners; billing's staff edits as PLATFORM): its limits become the plan's
    allowance, and it is re-signed, pushed and audited. Billing re-evaluates the quota when this commits."""
    owner_required(team=account.team_id, actor=actor)
    account = account_lock(account)
    limits = plan_limits(plan)  # an unknown plan is a 400 naming the field
    if account.is_system:
        raise Conflict("the system account is not on a plan", code="system_account")
    if plan != account.plan:
        _team_room_check(team=account.team, plan=plan)
    previous, account.plan = account.plan, plan
    before = _audited(account)
    _limits_apply(account, {k: v for k, v in limits.items() if k in LIMIT_FIELDS})
    account.save()
    account = account_resign(account=account)
    if previous != plan:
        _plan_span(account)
        audit_record(action=AuditEvent.Action.PLAN_CHANGE, actor=actor, team_id=account.team_id,
                     target=account.public_key, detail={"name": account.name, "from": previous, "to": plan,
                                                        "changes": audit_changes(before, _audited(account))})
        transaction.on_commit(lambda: account_plan_changed.send(sender=Account, account_id=account.pk,
                                                                previous=previous, plan=plan))
    return account


@transaction.atomic
def account_suspend(*, account: Account, reason: str, actor: Any) -> Account:
    """Refuse the account's new connections (its JWT allows none) until ``account_resume``. Idempotent."""
    platform_required(actor=actor, what="suspend an account")
    account = account_lock(account)
    if account.is_system:
        raise Conflict("the system account cannot be suspended", code="system_account")
    if account.suspended_at is not None:
        return account
    account.suspended_at, account.suspended_reason = timezone.now(), reason[:200]
    account.save(update_fields=["suspended_at", "suspended_reason", "updated_at"])
    audit_record(action=AuditEvent.Action.ACCOUNT_SUSPEND, actor=actor, team_id=account.team_id,
                 target=account.public_key, detail={"name": account.name, "reason": account.suspended_reason})
    return account_resign(account=account)


@transaction.atomic
def account_resume(*, account: Account, actor: Any) -> Account:
    platform_required(actor=actor, what="resume a suspended account")
    account = account_lock(account)
    if account.suspended_at is None:
        return account
    reason = account.suspended_reason
    account.suspended_at, account.suspended_reason = None, ""
    account.save(update_fields=["suspended_at", "suspended_reason", "updated_at"])
    audit_record(action=AuditEvent.Action.ACCOUNT_RESUME, actor=actor, team_id=account.team_id,
                 target=account.public_key, detail={"name": account.name, "was_suspended_for": reason})
    return account_resign(account=account)


@transaction.atomic
def account_delete(*, account: Account, actor: Any) -> list[Account]:
    """Delete an account (owners only; audited); importers of its exports lose those imports and are re-signed.
    Returns them."""
    owner_required(team=account.team_id, actor=actor)
    account = account_lock(account)
    if account.is_system:
        raise Conflict("the system account cannot be deleted", code="system_account")
    audit_record(action=AuditEvent.Action.ACCOUNT_DELETE, actor=actor, team_id=account.team_id,
                 target=account.public_key, detail={"name": account.name})
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
    return [account_resign(account=account_lock(imp)) for imp in importers]
