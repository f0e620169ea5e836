""""Why can't my client connect?": every check the servers make on a user's connection, with what the database
and the nodes know (which account, its suspension, live connection counts, the JWT each node holds).

The claim checks are pure (``operators.diagnose``); this module finds the account within the caller's teams
(another team's creds get the same NotFound as unknown ones, before anything about them is read) and asks each
running node's ``/accountz?acc=`` for its live counts and the JWT it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from accounts_service.models import Account, NatsUser
from billing.selectors import connections_current, leafnodes_current
from broker_gateway.models import BrokerNode, NodeClaim
from broker_gateway.selectors import node_accountz
from core.errors import Invalid, NotFound
from operators import claims
from operators import diagnose as dx
from operators.nkeys import KeyType, key_type_of
from operators.subjects import SubjectError, validate_subject

MAX_CREDS_BYTES = 16 * 1024
ACTIONS = ("pub", "sub")
NOT_YOURS = "these creds belong to no account of yours"


def _account_for(*, user, public_key: str) -> Account:
    """The account within ``user``'s teams (``user=None``: the platform's CLI, every account). One message for
    another team's and an unknown account, with nothing from the creds echoed."""
    qs = Account.objects.all() if user is None else Account.objects.for_user(user)
    account = qs.filter(public_key=public_key).select_related("team").first()
    if account is None:
        raise NotFound(NOT_YOURS, code="diagnose_not_yours")
    return account


def _input_check(*, creds: str | None, account: str | None, user: str | None, subject: str | None,
                 action: str | None) -> None:
    if bool(creds) == bool(account or user):
        raise Invalid("give either creds, or account and user", code="diagnose_input", extra={"field": "creds"})
    if creds is not None and len(creds.encode("utf-8", errors="replace")) > MAX_CREDS_BYTES:
        raise Invalid(f"creds are at most {MAX_CREDS_BYTES} bytes", code="diagnose_creds_too_large",
                      extra={"field": "creds"})
    if not creds and not (account and user):
        raise Invalid("give both account and user", code="diagnose_input", extra={"field": "user"})
    if (subject is None) != (action is None):
        raise Invalid("subject and action go together", code="diagnose_input", extra={"field": "action"})
    if action is not None and action not in ACTIONS:
        raise Invalid("action is 'pub' or 'sub'", code="diagnose_input", extra={"field": "action"})
    if subject is not None:
        try:
            validate_subject(subject, wildcards=action == "sub")
        except SubjectError as exc:
            raise Invalid(str(exc), code="subject_invalid", extra={"field": "subject"}) from exc


def _node_rows(account: Account, *, timeout: float) -> tuple[list[dict[str, Any]], int | None, int | None]:
    """Each running node: whether it holds the account's latest JWT (live from ``/accountz``, else from its
    acknowledged push), and the account's client and leafnode connections summed over the nodes that answered."""
    nodes = list(BrokerNode.objects.filter(desired_state=BrokerNode.Desired.RUNNING).order_by("region", "name"))
    held = {c.node_id: c for c in NodeClaim.objects.filter(account=account, node__in=nodes)}
    live = node_accountz(nodes=nodes, account_public_key=account.public_key, timeout=timeout)
    rows, clients, leafs, answered = [], 0, 0, 0
    for node in nodes:
        detail = live.get(node.name) or {}
        row: dict[str, Any] = {"node": node.name, "region": node.region, "state": node.observed_state}
        token = detail.get("jwt") if isinstance(detail, dict) else None
        if isinstance(token, str) and token:
            answered += 1
            clients += int(detail.get("client_connections") or 0)
            leafs += int(detail.get("leafnode_connections") or 0)
            try:
                jwt = claims.decode(token, expected_type=claims.ACCOUNT)
            except claims.JwtError:
                jwt = None
            row.update(source="live", held_iat=jwt.iat if jwt else None, held=jwt)
            row["latest"] = bool(jwt and jwt.jti == account.jwt_jti)
        elif node.pk in held:
            claim = held[node.pk]
            row.update(source="recorded", held_iat=claim.iat, held=None, latest=claim.jti == account.jwt_jti)
        else:
            row.update(source="none", held_iat=None, held=None, latest=None)
        rows.append(row)
    if not answered:
        return rows, None, None
    return rows, clients, leafs


def _refusal(user: claims.Jwt, held: claims.Jwt | None) -> str:
    """Why a node holding ``held`` (an older account JWT) refuses the user; '' if it would not (or unknown)."""
    if held is None:
        return ""
    for check in (dx.user_issuer_check(user, held), dx.account_expiry_check(held), dx.revocation_check(user, held),
                  dx.suspension_check(held, suspended_reason=None)):
        if not check.ok:
            return check.message.split(":")[0]
    return ""


def user_diagnose(*, actor, creds: str | None = None, account: str | None = None, user: str | None = None,
                  subject: str | None = None, action: str | None = None, connection_type: str = "STANDARD",
                  timeout: float = 0.5) -> dict[str, Any]:
    """The ordered checks and the verdict (the first blocking cause) for ``creds`` text, or for the user
    ``user`` of ``account``. ``actor`` is the person asking (``None`` for the platform's CLI): only accounts of
    their teams are diagnosed; anything else is the NotFound ``diagnose_not_yours``. The seed is never returned."""
    _input_check(creds=creds, account=account, user=user, subject=subject, action=action)
    checks: list[dx.Check] = []
    seed = None
    if creds:
        check, parsed = dx.creds_read(creds)
        checks.append(check)
        if parsed is None:
            return _result(checks, account=None, user=None)
        token, seed = parsed.jwt, parsed.seed
    else:
        acc = _account_for(user=actor, public_key=account or "")
        row = NatsUser.objects.filter(account=acc, public_key=user).only("jwt", "public_key").first()
        if row is None:
            raise NotFound(f"no user {user} in this account", extra={"user": user})
        token = row.jwt
    check, user_jwt = dx.user_jwt_read(token)
    checks.append(check)
    if user_jwt is None:
        return _result(checks, account=None, user=None)
    if seed is not None:
        checks.append(dx.seed_pair_check(user_jwt, seed))
    else:
        checks.append(dx.Check("seed_pair", True, dx.INFO, "A user picked from the list: its seed is not checked "
                                                           "(paste the .creds to check the pair)."))
    issuer = user_jwt.issuer_account or user_jwt.issuer
    try:
        owned = key_type_of(issuer) == KeyType.ACCOUNT
    except ValueError:
        owned = False
    if not owned:
        raise NotFound(NOT_YOURS, code="diagnose_not_yours")
    acc = _account_for(user=actor, public_key=issuer)
    if not acc.jwt:
        checks.append(dx.Check("account_jwt", False, dx.BLOCKING, "The account has no JWT yet: it was never signed."))
        return _result(checks, account=acc, user=user_jwt)
    account_jwt = claims.decode(acc.jwt, expected_type=claims.ACCOUNT)
    suspended = acc.suspended_reason if acc.suspended_at is not None else None
    rows, clients, leafs = _node_rows(acc, timeout=timeout)
    if clients is None:  # no node answered: the metering ledger's last view
        clients = connections_current(account_public_key=acc.public_key)
        leafs = leafnodes_current(account_public_key=acc.public_key)
    leaf = connection_type.upper().startswith("LEAFNODE")
    checks += [
        dx.user_issuer_check(user_jwt, account_jwt),
        dx.issuer_account_check(user_jwt, account_jwt),
        dx.user_times_check(user_jwt),
        dx.account_expiry_check(account_jwt),
        dx.bearer_check(user_jwt, account_jwt),
        dx.connection_type_check(user_jwt, account_jwt, kind=connection_type),
        dx.revocation_check(user_jwt, account_jwt),
        dx.src_times_check(user_jwt, account_jwt),
        dx.suspension_check(account_jwt, suspended_reason=suspended),
        dx.limit_check(account_jwt, current=leafs if leaf else clients, leaf=leaf),
    ]
    for row in rows:
        held = row.pop("held")
        row["refuses"] = _refusal(user_jwt, held) if row["latest"] is False else ""
    checks.append(dx.nodes_check(rows))
    if subject is not None and action is not None:
        checks.append(dx.permission_check(user_jwt, account_jwt, subject=subject, action=action))
    return _result(checks, account=acc, user=user_jwt)


def _result(checks: Sequence[dx.Check], *, account: Account | None, user: claims.Jwt | None) -> dict[str, Any]:
    # Blocking failures first (the verdict's cause at the top), then warnings, then what passed; stable otherwise.
    rank = {(False, dx.BLOCKING): 0, (False, dx.WARNING): 1}
    ordered = sorted(checks, key=lambda c: rank.get((c.ok, c.severity), 2))
    return {
        "account": account.public_key if account else None,
        "account_name": account.name if account else None,
        "user": user.subject if user else None,
        "user_name": user.name if user else None,
        "verdict": dx.verdict(checks),
        "checks": [c.to_json() for c in ordered],
    }
