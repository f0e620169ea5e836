"""Operator claims: the ``nats`` section of the operator JWT (nats-io/jwt v2 ``operator_claims.go``; pure, no
Django)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from operators.claims.common import tags_json


def operator_nats(
    *,
    signing_keys: Iterable[str] = (),
    system_account: str = "",
    account_server_url: str = "",
    operator_service_urls: Iterable[str] = (),
    strict_signing_key_usage: bool = False,
    assert_server_version: str = "",
    tags: Iterable[str] = (),
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    keys = sorted(signing_keys)
    if keys:
        out["signing_keys"] = keys
    if account_server_url:
        out["account_server_url"] = account_server_url
    urls = list(operator_service_urls)
    if urls:
        out["operator_service_urls"] = urls
    if system_account:
        out["system_account"] = system_account
    if assert_server_version:
        out["assert_server_version"] = assert_server_version
    if strict_signing_key_usage:
        out["strict_signing_key_usage"] = True
    if tags:
        out["tags"] = tags_json(tags)
    return out

