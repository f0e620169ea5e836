"""Whether an operator or account JWT vouches for a JWT it issued: the chain of trust (pure, no Django)."""

from __future__ import annotations

from operators.claims.common import ACCOUNT, ACTIVATION, GENERIC, OPERATOR, USER, Jwt


def issuer_problems(child: Jwt, parent: Jwt) -> list[str]:
    """Why ``parent`` (operator or account JWT) does not vouch for ``child``; empty if it does.

    An account JWT is trusted if signed by the operator's identity key or one of its signing keys
    (only the latter under ``strict_signing_key_usage``). A user or activation JWT is trusted if
    signed by the account, or by one of its signing keys with ``issuer_account`` naming it.
    """
    problems: list[str] = []
    keys = parent.signing_keys()
    if parent.type == OPERATOR and child.type in (ACCOUNT, GENERIC):
        if child.issuer == parent.subject:
            if parent.nats.get("strict_signing_key_usage"):
                problems.append("signed by the operator identity key, refused under strict_signing_key_usage")
        elif child.issuer not in keys:
            problems.append("not signed by the operator or one of its signing keys")
    elif parent.type == ACCOUNT and child.type in (USER, ACTIVATION):
        if child.issuer == parent.subject:
            if child.issuer_account and child.issuer_account != parent.subject:
                problems.append("issuer_account does not name this account")
        elif child.issuer not in keys:
            problems.append("not signed by the account or one of its signing keys")
        elif child.issuer_account != parent.subject:
            problems.append("signed by an account signing key but issuer_account is not the account")
        elif child.type == USER and keys.get(child.issuer) is not None:
            own = {k for k in ("pub", "sub", "resp", "subs", "data", "payload", "bearer_token", "src", "times")}
            if own & set(child.nats):
                problems.append("a scoped signing key's user carries permissions or limits of its own")
    else:
        problems.append(f"a {parent.type} JWT does not issue {child.type} JWTs")
    if child.expired():
        problems.append("expired")
    return problems
