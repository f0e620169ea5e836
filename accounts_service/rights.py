"""Who may do what: the actor every write takes, and the one place that checks a team role.

Every tenant write takes ``actor``: a person (a Django user, from the web or an API token) or ``PLATFORM``
(the operator's CLI, beat tasks, migrations, the broker gateway). A person must belong to the object's team
(otherwise the object is a 404, as an unknown one is) and hold the role the write needs; the platform may do
everything. Web views, API views and commands pass their actor; none of them checks a role itself.
"""

from __future__ import annotations

from typing import Any

from accounts_service.models import Team, TeamMembership
from accounts_service.models.tenancy import token_team_id
from core.errors import Forbidden, NotFound

OWNER = TeamMembership.Role.OWNER
MEMBER = TeamMembership.Role.MEMBER


class Platform:
    """The platform acting for itself. Shown as "platform" in the audit log."""

    pk = None
    is_authenticated = False
    is_active = True
    email = ""

    def get_username(self) -> str:
        return "platform"

    def __repr__(self) -> str:
        return "PLATFORM"


PLATFORM = Platform()

# The roles a request already read (the API's scoped lookups annotate them), so the service's own check costs no
# second query on the hot paths. Kept on the actor object, which lives as long as its request.
_ROLES_ATTR = "_natsctl_team_roles"


def role_remember(*, actor: Any, team_id: int, role: str) -> None:
    roles = getattr(actor, _ROLES_ATTR, None)
    if roles is None:
        roles = {}
        setattr(actor, _ROLES_ATTR, roles)
    roles[team_id] = role


def role_of(*, actor: Any, team_id: int) -> str | None:
    """``actor``'s role in the team, or None when it is no member (PLATFORM counts as owner everywhere)."""
    if actor is PLATFORM:
        return OWNER
    if not getattr(actor, "is_authenticated", False) or not getattr(actor, "is_active", False):
        return None
    if (only := token_team_id(actor)) is not None and only != team_id:
        return None  # an API token restricted to another team: this team is a stranger's
    roles = getattr(actor, _ROLES_ATTR, None) or {}
    if team_id in roles:
        return roles[team_id]
    role = TeamMembership.objects.filter(team_id=team_id, user=actor).values_list("role", flat=True).first()
    if role is not None:
        role_remember(actor=actor, team_id=team_id, role=role)
    return role


def _team_id(team: Team | int) -> int:
    return team if isinstance(team, int) else team.pk


def member_required(*, team: Team | int, actor: Any) -> str:
    """The actor's role; a non-member gets the NotFound an unknown object gets (never "it exists")."""
    role = role_of(actor=actor, team_id=_team_id(team))
    if role is None:
        raise NotFound("no such team, or not yours", code="not_a_member")
    return role


def owner_required(*, team: Team | int, actor: Any) -> None:
    if member_required(team=team, actor=actor) != OWNER:
        raise Forbidden("only the team's owners may do this: ask an owner, or to be made one", code="owner_required")


def platform_required(*, actor: Any, what: str) -> None:
    """Writes only the platform makes (suspending an account for its quota, ...)."""
    if actor is not PLATFORM:
        raise Forbidden(f"only the platform may {what}", code="platform_required")


def actor_name(actor: Any) -> str:
    return actor.get_username() if actor is not None else ""
