"""Node operators: registering them, their members, which nodes they run (writes are staff's), and the history
that says who ran a node in a given hour (the payouts read it)."""

from __future__ import annotations

import datetime as dt
import re
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts_service.models import AuditEvent
from accounts_service.rights import PLATFORM, actor_name
from accounts_service.services import audit_record, platform_team_get
from accounts_service.validation import name_check
from broker_gateway.models import PLATFORM_OPERATOR_SLUG, BrokerNode, NodeAssignment, NodeOperator, platform_operator_pk
from core.errors import ApplicationError, Conflict, Forbidden, NotFound

_HOUR = dt.timedelta(hours=1)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


def staff_required(actor: Any) -> None:
    """Operators and their nodes are the platform's to manage: staff people, or the platform itself (CLI, tasks)."""
    if actor is PLATFORM:
        return
    if not (getattr(actor, "is_authenticated", False) and getattr(actor, "is_staff", False)):
        raise Forbidden("only staff manage node operators", code="staff_required")


def _audit(*, action: str, actor: Any, target: str, detail: dict[str, Any]) -> None:
    # Staff's acts on the fleet are the platform team's to see, beside its other changes.
    audit_record(action=action, actor=actor, team=platform_team_get(), target=target, detail=detail)


# ------------------------------------------------------------------------------------------------
# Writes
# ------------------------------------------------------------------------------------------------


@transaction.atomic
def operator_create(*, slug: str, name: str, actor: Any, contact_email: str = "") -> NodeOperator:
    """Register an organisation that runs nodes (it runs none until staff assign some)."""
    staff_required(actor)
    if not isinstance(slug, str) or not _SLUG.match(slug):
        raise ApplicationError("slug must be 1-40 lowercase letters, digits or '-', starting with a letter or digit",
                               code="operator_slug_invalid", extra={"field": "slug"})
    if slug == PLATFORM_OPERATOR_SLUG:
        raise Conflict(f"{slug!r} is the platform's own operator", code="operator_slug_taken", extra={"field": "slug"})
    name = name_check(name, max_length=100)  # a name people read: no control, bidi or invisible-only text
    platform_operator_pk()  # the platform is the first operator, whatever staff register next
    if NodeOperator.objects.filter(slug=slug).exists():
        raise Conflict(f"operator {slug} already exists", code="operator_slug_taken", extra={"field": "slug"})
    try:
        with transaction.atomic():
            operator = NodeOperator.objects.create(slug=slug, name=name, contact_email=contact_email or "")
    except IntegrityError:
        raise Conflict(f"operator {slug} already exists", code="operator_slug_taken", extra={"field": "slug"}) from None
    _audit(action=AuditEvent.Action.OPERATOR_CREATE, actor=actor, target=slug, detail={"name": name})
    return operator


def _user(username: str):
    user = get_user_model().objects.filter(username=username).first() if isinstance(username, str) else None
    if user is None:
        raise NotFound(f"no user {username!r}", code="user_not_found", extra={"field": "username"})
    return user


@transaction.atomic
def operator_member_add(*, operator: NodeOperator, username: str, actor: Any) -> NodeOperator:
    """Let a person (a Django user) see ``operator``'s nodes and payout statement."""
    staff_required(actor)
    user = _user(username)
    if not operator.members.filter(pk=user.pk).exists():
        operator.members.add(user)
        _audit(action=AuditEvent.Action.OPERATOR_MEMBER_ADD, actor=actor, target=operator.slug,
               detail={"user": user.get_username()})
    return operator


@transaction.atomic
def operator_member_remove(*, operator: NodeOperator, username: str, actor: Any) -> NodeOperator:
    staff_required(actor)
    user = _user(username)
    if not operator.members.filter(pk=user.pk).exists():
        raise NotFound(f"{username} is not a member of {operator.slug}", code="operator_member_not_found")
    operator.members.remove(user)
    _audit(action=AuditEvent.Action.OPERATOR_MEMBER_REMOVE, actor=actor, target=operator.slug,
           detail={"user": user.get_username()})
    return operator


def node_assignment_start(*, node: BrokerNode, actor: Any = PLATFORM) -> None:
    """A new node's first assignment: from its creation on, its operator runs it (``node_add`` calls this)."""
    NodeAssignment.objects.create(node_name=node.name, operator_id=node.operator_id, since=node.created_at,
                                  actor_name=actor_name(actor))


@transaction.atomic
def node_operator_assign(*, node: BrokerNode, operator: NodeOperator, actor: Any,
                         at: dt.datetime | None = None) -> BrokerNode:
    """From now on ``operator`` runs ``node`` (staff approved it to carry the network's traffic): the ledger counts
    by the hour, and the hour in which this happens is already theirs, as is every later one."""
    staff_required(actor)
    node = BrokerNode.objects.select_for_update().get(pk=node.pk)
    if node.operator_id == operator.pk:
        return node
    before = node.operator
    at = at or timezone.now()
    if not NodeAssignment.objects.filter(node_name=node.name).exists():  # a node older than the history
        NodeAssignment.objects.create(node_name=node.name, operator=before, since=node.created_at,
                                      actor_name="platform")
    NodeAssignment.objects.create(node_name=node.name, operator=operator, since=at, actor_name=actor_name(actor))
    node.operator = operator
    node.save(update_fields=["operator"])
    _audit(action=AuditEvent.Action.NODE_ASSIGN, actor=actor, target=node.name,
           detail={"operator": {"before": before.slug, "after": operator.slug}})
    return node


# ------------------------------------------------------------------------------------------------
# Reads
# ------------------------------------------------------------------------------------------------


def operator_get(*, slug: str) -> NodeOperator:
    operator = NodeOperator.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if operator is None:
        raise NotFound(f"no node operator {slug!r}", code="operator_not_found", extra={"field": "operator"})
    return operator


def operators_for_user(user: Any) -> list[NodeOperator]:
    """The operators ``user`` is a member of (staff see theirs too; every statement is on the staff pages)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(NodeOperator.objects.filter(members=user).order_by("name"))


class NodeAttribution:
    """Who ran each node in a given hour: the last assignment made before the hour was over (a node's hour goes to
    whoever ran it at its end); an hour before a node's first assignment belongs to its first operator; a node
    with no history (made outside ``node_add``) to its current operator, or to the platform once it is gone."""

    def __init__(self, node_names: Iterable[str]):
        names = sorted(set(node_names))
        self._history: dict[str, tuple[list[dt.datetime], list[int]]] = {}
        for row in NodeAssignment.objects.filter(node_name__in=names).order_by("node_name", "since", "pk"):
            since, ops = self._history.setdefault(row.node_name, ([], []))
            since.append(row.since)
            ops.append(row.operator_id)
        self._current = dict(BrokerNode.objects.filter(name__in=names).values_list("name", "operator_id"))
        self._platform = platform_operator_pk()

    def operator_id(self, node_name: str, hour: dt.datetime) -> int:
        history = self._history.get(node_name)
        if history is None:
            return self._current.get(node_name, self._platform)
        since, ops = history
        return ops[max(bisect_left(since, hour + _HOUR) - 1, 0)]
