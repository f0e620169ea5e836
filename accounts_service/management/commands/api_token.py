"""``manage.py api_token create --user USERNAME``: prints a new REST API token (shown once)."""

from __future__ import annotations

from accounts_service.rights import PLATFORM
from accounts_service.services import api_token_create, django_user_get
from core.cli import SubcommandCommand


class Command(SubcommandCommand):
    help = "Create REST API tokens."
    subcommands = {"create": "create a token for an existing user and print it"}

    def add_create_arguments(self, p) -> None:
        p.add_argument("--user", required=True, help="username")
        p.add_argument("--name", default="cli")

    def handle_create(self, *, user, name, **_) -> None:
        _, token = api_token_create(actor=PLATFORM, user=django_user_get(username=user), name=name)
        self.out(token)
