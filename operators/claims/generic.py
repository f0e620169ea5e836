"""Generic claims: the operator's account deletion request to the full resolver (nats-io/jwt v2
``genericclaims.go``; pure, no Django)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def delete_nats(accounts: Iterable[str]) -> dict[str, Any]:
    """The generic claim that tells the full resolver to delete accounts (``$SYS.REQ.CLAIMS.DELETE``)."""
    return {"accounts": sorted(accounts)}
