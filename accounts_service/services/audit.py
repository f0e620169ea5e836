"""The team's audit log: every security-relevant change, with who made it (never a seed, a token or creds)."""

from __future__ import annotations

from typing import Any

from accounts_service.models import AuditEvent, Team
from accounts_service.rights import actor_name
from core.db import row_insert
from core.errors import Invalid


def audit_record(*, action: str, actor: Any, team: Team | None = None, team_id: int | None = None, target: str = "",
                 detail: dict[str, Any] | None = None) -> AuditEvent:
    """Append ``action`` to the team's log. ``team_id`` names the team without loading it (``account.team_id``);
    ``actor`` is a person or PLATFORM (kept by name, so the row outlives the person)."""
    if action not in AuditEvent.Action.values:
        raise Invalid(f"unknown audit action {action!r}", code="audit_action_unknown")
    by_team = {"team": team} if team is not None or team_id is None else {"team_id": team_id}
    return row_insert(AuditEvent(  # (the INSERT of objects.create, without compiling it on every write)
        action=action, **by_team, actor=actor if getattr(actor, "pk", None) else None,
        actor_name=actor_name(actor), target=target[:128], detail=detail or {},
    ))


def audit_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Only what changed, as ``{field: {"before": ..., "after": ...}}`` (the detail of an update's audit row)."""
    return {field: {"before": _plain(before.get(field)), "after": _plain(value)}
            for field, value in after.items() if _plain(before.get(field)) != _plain(value)}


def _plain(value: Any) -> Any:
    # JSON-storable and comparable: tuples as lists, datetimes as RFC 3339 text.
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
