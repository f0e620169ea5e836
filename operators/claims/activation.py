"""Activation claims: the token an exporting account gives an importer of a private export (nats-io/jwt v2
``activation_claims.go``; pure, no Django)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from operators.claims.common import tags_json


def activation_nats(*, subject: str, kind: str, issuer_account: str = "", tags: Iterable[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"subject": subject, "kind": kind}
    if issuer_account:
        out["issuer_account"] = issuer_account
    if tags:
        out["tags"] = tags_json(tags)
    return out
