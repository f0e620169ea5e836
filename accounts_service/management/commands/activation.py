"""``manage.py activation generate``: an activation token for one importer of a private export."""

from __future__ import annotations

import datetime as dt

from accounts_service.rights import PLATFORM
from accounts_service.selectors import account_get, export_covering_get
from accounts_service.services import activation_create
from core.cli import SubcommandCommand


class Command(SubcommandCommand):
    help = "Activation tokens for private exports."
    subcommands = {"generate": "sign an activation token for a target account; prints the token"}

    def add_generate_arguments(self, p) -> None:
        p.add_argument("--account", required=True, help="the exporting account")
        p.add_argument("--subject", required=True, help="the export's subject, or a subset of it")
        p.add_argument("--target", required=True, help="the importing account's public key")
        p.add_argument("--expiry", type=int, default=None, help="seconds until the token expires")

    def handle_generate(self, *, account, subject, target, expiry, **_) -> None:
        exporter = account_get(public_key=account)
        export = export_covering_get(account=exporter, subject=subject)
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expiry) if expiry else None
        act = activation_create(actor=PLATFORM,
                                export=export, target_public_key=target, subject=subject, expires_at=expires_at)
        self.out(act.token)
