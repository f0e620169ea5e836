"""Reads of the tenant domain, including the whole-state ``nats`` section of an account JWT."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from accounts_service.models import (
    Account,
    Activation,
    ApiToken,
    AuditEvent,
    Export,
    Import,
    Invitation,
    NatsUser,
    Revocation,
    Team,
    TeamMembership,
)
from core.errors import ApplicationError, NotFound
from operators import claims
from operators.models import SigningKey
from operators.subjects import is_subset


def account_for_user_get(*, user, public_key: str) -> Account:
    """An account of one of ``user``'s teams. Another team's account and an unknown key give the same
    NotFound (404), so the API never confirms that a key exists elsewhere."""
    account = Account.objects.for_user(user).filter(public_key=public_key).first()
    if account is None:
        raise NotFound(f"no account {public_key}", extra={"account": public_key})
    return account


def team_for_user_get(*, user, team_id: int | None = None, slug: str | None = None) -> Team:
    """One of ``user``'s teams by id or slug; another team's and an unknown one are the same NotFound."""
    qs = Team.objects.for_user(user)
    team = qs.filter(pk=team_id).first() if team_id is not None else qs.filter(slug=slug).first()
    if team is None:
        raise NotFound(f"no team {team_id if team_id is not None else slug}", extra={"team": team_id or slug})
    return team


def account_get(*, public_key: str, team: Team | None = None) -> Account:
    """An account by public key, scoped to ``team`` when given; NotFound otherwise."""
    qs = Account.objects.all() if team is None else Account.objects.for_team(team)
    account = qs.filter(public_key=public_key).first()
    if account is None:
        raise NotFound(f"no account {public_key}", extra={"account": public_key})
    return account


def user_get(*, account: Account, public_key: str) -> NatsUser:
    user = NatsUser.objects.filter(account=account, public_key=public_key).first()
    if user is None:
        raise NotFound(f"no user {public_key} in this account", extra={"user": public_key})
    return user


def export_covering_get(*, account: Account, subject: str) -> Export:
    """The export of ``account`` whose subject covers ``subject`` (exports never overlap, so at most one)."""
    export = next((e for e in Export.objects.filter(account=account) if is_subset(subject, e.subject)), None)
    if export is None:
        raise ApplicationError(f"the account exports nothing covering {subject!r}", extra={"field": "subject"})
    return export


def account_limits(account: Account) -> claims.AccountLimits:
    # A suspended account keeps its settings, but its JWT admits no client and no leafnode connection.
    suspended = account.suspended_at is not None
    return claims.AccountLimits(
        subs=account.subs,
        data=account.data,
        payload=account.payload,
        imports=account.imports,
        exports=account.exports,
        wildcards=account.wildcard_exports,
        conn=0 if suspended else account.conn,
        leaf=0 if suspended else account.leaf,
        jetstream=account_jetstream_limits(account),
    )


def account_jetstream_limits(account: Account) -> claims.JetStreamLimits:
    """The account's JetStream limits as the JWT carries them. The tenant's meaning is the same for every field
    (-1 unlimited, 0 none); nats-server reads 0 streams or consumers as unlimited, so ``streams = 0`` is written as
    JetStream off and ``consumer = 0`` with JetStream on is refused (``operators.claims.jetstream_tenant_limits``).
    Every write re-signs through here, so no input (API, console, CLI, a plan's allowance) gets past it."""
    try:
        return claims.jetstream_tenant_limits(mem_storage=account.mem_storage, disk_storage=account.disk_storage,
                                              streams=account.streams, consumer=account.consumer)
    except claims.JwtError as exc:
        raise ApplicationError(str(exc), extra={"field": "consumer"}, code="limit_consumer_zero") from exc


def user_permissions(*, pub_allow, pub_deny, sub_allow, sub_deny, allow_responses) -> claims.Permissions:
    return claims.Permissions(
        pub=claims.Permission(allow=tuple(pub_allow), deny=tuple(pub_deny)),
        sub=claims.Permission(allow=tuple(sub_allow), deny=tuple(sub_deny)),
        resp=claims.ResponsePermission(max=1, ttl_ns=0) if allow_responses else None,
    )


def signing_key_scope(key: SigningKey) -> claims.UserScope:
    t = key.template or {}
    return claims.UserScope(
        key=key.public_key,
        role=key.role,
        description=key.description,
        permissions=user_permissions(
            pub_allow=t.get("pub_allow", ()),
            pub_deny=t.get("pub_deny", ()),
            sub_allow=t.get("sub_allow", ()),
            sub_deny=t.get("sub_deny", ()),
            allow_responses=t.get("allow_responses", False),
        ),
        limits=claims.UserLimits(subs=t.get("subs", -1), data=t.get("data", -1), payload=t.get("payload", -1)),
    )


def account_nats_build(account: Account) -> dict[str, Any]:
    """The account's whole state as the ``nats`` section of its JWT (every push carries all of it)."""
    revoked_activations: dict[int, dict[str, int]] = {}
    for act in Activation.objects.filter(export__account=account, revoked_at__isnull=False):
        revoked_activations.setdefault(act.export_id, {})[act.target_public_key] = int(act.revoked_at.timestamp())
    exports = [
        claims.Export(
            subject=e.subject,
            type=e.type,
            name=e.name,
            token_req=e.token_req,
            revocations=revoked_activations.get(e.id, {}),
            response_type=e.response_type if e.type == Export.Type.SERVICE else "",
            account_token_position=e.account_token_position,
            advertise=e.advertise,
            description=e.description,
        )
        for e in Export.objects.filter(account=account)
    ]
    imports = [
        claims.Import(
            subject=i.subject,
            account=i.export.account.public_key,
            type=i.export.type,
            name=i.name,
            token=i.token,
            local_subject=i.local_subject if i.local_subject != i.subject else "",
            share=i.share,
        )
        for i in Import.objects.filter(account=account).select_related("export__account")
    ]
    keys: list[str | claims.UserScope] = [
        signing_key_scope(k) if k.scoped else k.public_key
        for k in SigningKey.objects.filter(owner_public_key=account.public_key)
    ]
    revocations = {r.public_key: r.revoked_at_ts for r in Revocation.objects.filter(account=account)}
    return claims.account_nats(
        limits=account_limits(account),
        exports=exports,
        imports=imports,
        revocations=revocations,
        signing_keys=keys,
        description=account.description,
    )


def export_list(*, account: Account) -> QuerySet[Export]:
    return Export.objects.filter(account=account).order_by("subject", "id")


def export_get(*, account: Account, export_id: int) -> Export:
    """One export of ``account``; another account's export and an unknown id give the same NotFound."""
    export = Export.objects.filter(account=account, pk=export_id).select_related("account").first()
    if export is None:
        raise NotFound(f"no export {export_id} in this account", extra={"export": export_id})
    return export


def import_list(*, account: Account) -> QuerySet[Import]:
    return (Import.objects.filter(account=account).select_related("export__account__team")
            .order_by("local_subject", "id"))


def import_get(*, account: Account, import_id: int) -> Import:
    """One import of ``account``; another account's import and an unknown id give the same NotFound."""
    imp = Import.objects.filter(account=account, pk=import_id).select_related("export__account__team").first()
    if imp is None:
        raise NotFound(f"no import {import_id} in this account", extra={"import": import_id})
    return imp


def export_catalog(*, q: str = "") -> QuerySet[Export]:
    """Advertised exports of every account (never the system account's), with the exporting account and its team's
    name (each export is attributed; only the platform's team is shown as the platform): no member or private
    field is read. Private ones are listed too; importing them needs an activation."""
    qs = (Export.objects.filter(advertise=True, account__is_system=False).select_related("account__team")
          .only("id", "name", "description", "subject", "type", "response_type", "token_req", "account_token_position",
                "account__name", "account__public_key", "account__team__name", "account__team__is_platform"))
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(subject__icontains=q) | Q(description__icontains=q))
    return qs.order_by("account__name", "name", "id")


def invitations_open_for(*, user) -> list[Invitation]:
    """The open invitations mailed to ``user``'s email, to teams they are not yet in."""
    email = (user.email or "").lower()
    if not email:
        return []
    return list(Invitation.objects.select_related("team", "invited_by")
                .filter(email=email, accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())
                .exclude(team__memberships__user=user))


# ------------------------------------------------------------------------------------------------
# Teams, members, API tokens, the audit log
# ------------------------------------------------------------------------------------------------


def team_list_for_user(*, user) -> QuerySet[Team]:
    """``user``'s teams (only the token's one for a team-restricted token), each with ``role``: the person's."""
    return (Team.objects.for_user(user).annotate(role=F("memberships__role"))
            .order_by("-is_personal", "name", "pk"))


def team_member_list(*, team: Team) -> QuerySet[TeamMembership]:
    return team.memberships.select_related("user").order_by("created_at", "pk")


def team_member_get(*, team: Team, member_id: int) -> TeamMembership:
    """One membership of ``team`` by id; another team's and an unknown one are the same NotFound."""
    membership = team.memberships.select_related("user").filter(pk=member_id).first()
    if membership is None:
        raise NotFound(f"no member {member_id} in this team", extra={"member": member_id})
    return membership


def api_token_list(*, user) -> QuerySet[ApiToken]:
    """``user``'s own tokens, active first."""
    return ApiToken.objects.filter(user=user).select_related("team").order_by(F("revoked_at").asc(nulls_first=True),
                                                                              "-created_at", "-pk")


def api_token_get(*, user, prefix: str) -> ApiToken:
    """One of ``user``'s own tokens by its prefix (the newest active one if two share it); anyone else's is a
    NotFound."""
    token = api_token_list(user=user).filter(prefix=prefix).first()
    if token is None:
        raise NotFound(f"no token {prefix}", extra={"token": prefix}, code="token_unknown")
    return token


def audit_list(*, team: Team, action: str | None = None, target: str | None = None, actor: str | None = None,
               since: dt.datetime | None = None, until: dt.datetime | None = None) -> QuerySet[AuditEvent]:
    """The team's audit log, newest first: ``action`` exact or a prefix ending in ``.`` (``account.``), ``target``
    exact, ``actor`` by name, ``since`` inclusive, ``until`` exclusive."""
    events = AuditEvent.objects.for_team(team)
    if action:
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
    if target:
        events = events.filter(target=target)
    if actor:
        events = events.filter(actor_name=actor)
    if since is not None:
        events = events.filter(at__gte=since)
    if until is not None:
        events = events.filter(at__lt=until)
    return events


def activation_list(*, export: Export) -> QuerySet[Activation]:
    return Activation.objects.filter(export=export).order_by("-iat", "-pk")


def activation_get(*, export: Export, activation_id: int) -> Activation:
    """One activation of ``export``; another export's and an unknown id are the same NotFound."""
    activation = Activation.objects.filter(export=export, pk=activation_id).select_related("export__account").first()
    if activation is None:
        raise NotFound(f"no activation {activation_id} of this export", extra={"activation": activation_id})
    return activation
