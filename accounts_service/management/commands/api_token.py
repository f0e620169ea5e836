"""``manage.py api_token create --user USERNAME [--scope read|write] [--team SLUG] [--expires-in-days N]``: prints a
new REST API token (shown once; only its SHA-256 is kept)."""

from __future__ import annotations

from accounts_service.models import ApiToken
from accounts_service.rights import PLATFORM
from accounts_service.selectors import team_for_user_get
from accounts_service.services import api_token_create, django_user_get
from core.cli import SubcommandCommand


class Command(SubcommandCommand):
    help = "Create REST API tokens."
    subcommands = {"create": "create a token for an existing user and print it"}

    def add_create_arguments(self, p) -> None:
        p.add_argument("--user", required=True, help="username")
        p.add_argument("--name", default="cli")
        p.add_argument("--scope", choices=ApiToken.Scope.values, default=ApiToken.Scope.WRITE,
                       help="read: GET and HEAD only; write (default): everything the person may do")
        p.add_argument("--team", default=None, help="the slug of one of the person's teams: the token reaches only it")
        p.add_argument("--expires-in-days", type=int, default=None, help="the token stops working after N days")

    def handle_create(self, *, user, name, scope, team, expires_in_days, **_) -> None:
        person = django_user_get(username=user)
        restricted = team_for_user_get(user=person, slug=team) if team else None
        _, token = api_token_create(actor=PLATFORM, user=person, name=name, scope=scope, team=restricted,
                                    expires_in_days=expires_in_days)
        self.out(token)
