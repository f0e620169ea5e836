"""The tenant-scoped base of every API route under ``/accounts/{account_pk}/`` (NetBox's ``restrict()`` idea).

The account is resolved once, before any handler runs, within the caller's teams (another team's account and an
unknown key are the same 404), and the caller's role is checked by HTTP method. A new view inherits both, so it
cannot forget the scope. The services check the role again (``accounts_service.rights``); the role read here is
remembered on the request's actor, so that second check costs no query.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import F
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts_service import issuance_reads
from accounts_service.models import Account, Team
from accounts_service.rights import OWNER, member_required, role_of, role_remember
from accounts_service.selectors import account_for_user_get, team_for_user_get
from core.errors import Forbidden


class AccountScopedApi(APIView):
    """``self.account`` is the URL's account, scoped to the caller; ``owner_methods`` need the owner role."""

    owner_methods: ClassVar[frozenset[str]] = frozenset()
    # The account columns a view reads (None: all). A hot path that needs only the id and key names them, so the
    # scoped read does not carry the account's JWT text.
    account_fields: ClassVar[tuple[str, ...] | None] = None
    account: Account

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, permissions and throttles first
        self.account, role = self.scope_resolve(request, **kwargs)
        role_remember(actor=request.user, team_id=self.account.team_id, role=role)
        if request.method in self.owner_methods and role != OWNER:
            raise Forbidden("only the team's owners may do this: ask an owner, or to be made one",
                            code="owner_required")

    def scope_resolve(self, request: Request, **kwargs: Any) -> tuple[Account, str]:
        """The URL's account and the caller's role in its team, in one scoped read; a miss asks the selector
        for its NotFound. A view whose hot path reads more (the creds route) overrides this, still scoped."""
        account_pk = kwargs["account_pk"]
        if self.account_fields == issuance_reads.ACCOUNT_KEY_ONLY:  # (the users route: plain SQL, the hot path)
            hit = issuance_reads.account_for_actor(actor=request.user, public_key=account_pk)
            if hit is not None:
                return hit
            return self._scope_miss(request, account_pk)
        found = (Account.objects.for_user(request.user).filter(public_key=account_pk)
                 .annotate(actor_role=F("team__memberships__role")))
        if self.account_fields is not None:
            found = found.only("id", "team_id", *self.account_fields)
        account = next(iter(found[:1]), None)  # (public keys are unique: a slice, without .first()'s ORDER BY)
        if account is None:
            return self._scope_miss(request, account_pk)
        return account, account.actor_role

    @staticmethod
    def _scope_miss(request: Request, account_pk: str) -> tuple[Account, str]:
        # The selector's NotFound (or the account, had it just been created).
        account = account_for_user_get(user=request.user, public_key=account_pk)
        return account, role_of(actor=request.user, team_id=account.team_id)


class TeamScopedApi(APIView):
    """``self.team`` is the URL's team (``team_id``), one of the caller's (another team and an unknown id are the
    same 404; a team-restricted token sees only its team); ``owner_methods`` need the owner role, as on
    AccountScopedApi. The services check the role again."""

    owner_methods: ClassVar[frozenset[str]] = frozenset()
    team: Team
    role: str

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self.team = team_for_user_get(user=request.user, team_id=kwargs["team_id"])
        self.role = member_required(team=self.team, actor=request.user)
        if request.method in self.owner_methods and self.role != OWNER:
            raise Forbidden("only the team's owners may do this: ask an owner, or to be made one",
                            code="owner_required")
