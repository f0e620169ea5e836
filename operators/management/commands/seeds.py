"""``manage.py seeds rewrap``: re-seal every stored seed with the newest encryption key."""

from __future__ import annotations

from core.cli import SubcommandCommand
from operators.keyring import keyring_get
from operators.services import seeds_rewrap


class Command(SubcommandCommand):
    help = "Manage sealed seeds."
    subcommands = {"rewrap": "re-seal every seed with the newest key of SEED_ENCRYPTION_KEYS"}

    def handle_rewrap(self, **_) -> None:
        count = seeds_rewrap()
        self.out(f"re-sealed {count} seed(s) with key {keyring_get().current}")
