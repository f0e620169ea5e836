"""Reads of the root of trust."""

from __future__ import annotations

from django.db.models import Max

from core.errors import Conflict
from operators.models import IssuedAccountJwt, Operator, SigningKey


def operator_get() -> Operator:
    """The deployment's operator; an error that says how to create one if there is none."""
    op = Operator.objects.order_by("id").first()
    if op is None:
        raise Conflict("no operator yet: run `manage.py operator init --name NAME`")
    return op


def operator_signing_key_get(*, operator: Operator) -> SigningKey:
    key = SigningKey.objects.filter(owner_public_key=operator.public_key, role="").order_by("id").first()
    if key is None:
        raise Conflict("the operator has no signing key")
    return key


def account_jwt_latest_iat(*, account_public_key: str) -> int:
    return (
        IssuedAccountJwt.objects.filter(account_public_key=account_public_key).aggregate(m=Max("iat"))["m"] or 0
    )
