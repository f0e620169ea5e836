"""Leafnode configs for tenants' own nats-servers: which users can carry one, and issuing it (audited).

A tenant's server started from the config solicits a leafnode connection to the fleet with one user's
``.creds``; the fleet applies that user's JWT to the connection (its permissions, its subscription limit) and
the account JWT's ``limits.leaf`` to how many such connections the account holds. The config text is rendered
by ``broker_gateway.leafconf`` (pure); the ``.creds`` come from the same service as a ``.creds`` download.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from accounts_service.models import AuditEvent, NatsUser
from accounts_service.rights import member_required
from accounts_service.services import audit_record, creds_filename, user_creds_get
from broker_gateway.leafconf import DEFAULT_LOCAL_PORT, LeafConfig, render_leaf_config
from broker_gateway.selectors import leafnode_urls_public
from core.errors import Conflict, Invalid, Unavailable

LEAF_CONFIG_FILENAME = "leaf.conf"
FULL_WILDCARD = ">"


@dataclass(frozen=True)
class LeafnodeConfig:
    """What a tenant gets: the config text, the creds file name it references and, when asked for, its text."""

    config: str
    creds_filename: str
    creds: str | None = None


def port_check(value: Any, *, field: str = "port") -> int:
    """The leaf's local client port: an integer in 1..65535."""
    try:
        port = int(str(value).strip())
    except ValueError:
        raise Invalid("port is an integer in 1..65535", extra={"field": field}, code="port_invalid") from None
    if not 1 <= port <= 65535:
        raise Invalid("port is an integer in 1..65535", extra={"field": field}, code="port_invalid")
    return port


def user_leafnode_check(*, user: NatsUser) -> None:
    """Refuse a user whose JWT the fleet would not carry as a leafnode, before anything is issued.

    What nats-server 2.15 does with a leafnode's user (server/leafnode.go ``processLeafSub``, tested here for
    real): each subscription the leaf forwards counts against the user's ``subs``, and at 0 the hub closes the
    connection at once ("maximum subscriptions exceeded"); a leaf whose user may neither publish nor subscribe
    anything connects but carries nothing. A bearer-token user is fine (the leaf signs the nonce anyway).
    """
    if user.revoked_at is not None:
        raise Conflict("the user is revoked", code="user_revoked")
    if user.expires_at is not None and user.expires_at <= timezone.now():
        raise Conflict("the user has expired: create a new user for the leafnode", code="user_expired")
    # A user of a scoped signing key gets its role's template, not fields of its own.
    key = user.signing_key
    source = (key.template or {}) if key.scoped else {"subs": user.subs, "pub_deny": user.pub_deny,
                                                      "sub_deny": user.sub_deny}
    if source.get("subs", -1) == 0:
        raise Conflict("the user's subscription limit is 0: a leafnode forwards its clients' subscriptions, and "
                       "the servers close a leafnode that may hold none; give the user subs -1 or more",
                       extra={"field": "subs"}, code="leafnode_subs_zero")
    if FULL_WILDCARD in (source.get("pub_deny") or ()) and FULL_WILDCARD in (source.get("sub_deny") or ()):
        raise Conflict("the user may neither publish nor subscribe anything, so a leafnode would carry nothing",
                       extra={"field": "permissions"}, code="leafnode_no_permissions")
    if user.account.leaf == 0:
        raise Conflict("the account admits no leafnode connection (limit leaf 0): raise it within the plan",
                       extra={"field": "leaf"}, code="leafnode_limit_zero")


def user_leafnode_config(*, user: NatsUser, actor: Any, port: int = DEFAULT_LOCAL_PORT,
                         credentials: str | None = None, with_creds: bool = False) -> LeafnodeConfig:
    """The leafnode config of ``user`` for a member of its team (audited). It references the creds file as
    ``credentials`` (default: the user's ``.creds`` file name, relative, resolved by nats-server against its
    working directory); ``with_creds`` adds the ``.creds`` text (refused for a user whose seed we never saw)."""
    member_required(team=user.account.team_id, actor=actor)
    user = (NatsUser.objects.select_related("account", "signing_key")
            .only("id", "name", "public_key", "revoked_at", "expires_at", "subs", "pub_deny", "sub_deny", "seed",
                  "account__public_key", "account__team_id", "account__leaf", "signing_key__role",
                  "signing_key__template")
            .get(pk=user.pk))
    user_leafnode_check(user=user)
    port = port_check(port)
    creds = user_creds_get(user=user) if with_creds else None
    urls = leafnode_urls_public()
    if not urls:
        raise Unavailable("no node of the fleet is meant to run, so there is no leafnode URL to give",
                          code="no_leafnode_urls")
    filename = creds_filename(user.name)
    config = render_leaf_config(LeafConfig(
        urls=urls, credentials=credentials or filename, port=port,
        comment=(f"nats-server -c {LEAF_CONFIG_FILENAME}: a leafnode of account {user.account.public_key}\n"
                 f"as user {user.name} ({user.public_key}). Clients of this server connect without\n"
                 f"credentials and act as that user. The credentials file is resolved against the directory\n"
                 f"nats-server starts in.")))
    audit_record(action=AuditEvent.Action.LEAFNODE_DOWNLOAD, actor=actor, team_id=user.account.team_id,
                 target=user.public_key, detail={"account": user.account.public_key, "user": user.name,
                                                 "port": port, "creds": with_creds})
    return LeafnodeConfig(config=config, creds_filename=filename, creds=creds)
