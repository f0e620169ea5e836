"""``manage.py seeds rewrap``: re-seal every stored seed with the newest encryption key."""

from __future__ import annotations

from core.cli import SubcommandCommand
from core.progress import progress_bar
from operators.keyring import keyring_get
from operators.services import seeds_rewrap


class Command(SubcommandCommand):
    help = "Manage sealed seeds."
    subcommands = {"rewrap": "re-seal every seed with the newest key of SEED_ENCRYPTION_KEYS"}

    def handle_rewrap(self, **_) -> None:
        with progress_bar("re-sealing seeds", unit="seeds") as progress:
            count = seeds_rewrap(progress=progress)
        self.out(f"re-sealed {count} seed(s) with key {keyring_get().current}")
