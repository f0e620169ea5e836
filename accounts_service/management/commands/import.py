"""``manage.py import add|list|delete``."""

from __future__ import annotations

from accounts_service.models import Import
from accounts_service.rights import PLATFORM
from accounts_service.selectors import account_get, import_get
from accounts_service.services import import_create, import_delete, import_is_builtin
from core.cli import SubcommandCommand, text_or_file


class Command(SubcommandCommand):
    help = "Import other accounts' streams and services."
    subcommands = {"add": "add an import", "list": "list an account's imports",
                   "delete": "remove an import (the built-in ngs.usage import is refused)"}

    def add_add_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--from", dest="exporter", required=True, help="the exporting account's public key")
        p.add_argument("--subject", required=True)
        p.add_argument("--local-subject", default=None)
        p.add_argument("--token", default=None, help="activation token (a JWT or a file holding one)")
        p.add_argument("--name", default=None)
        p.add_argument("--share", action="store_true")

    def handle_add(self, *, account, exporter, subject, local_subject, token, name, share, **_) -> None:
        token = text_or_file(token) if token else None
        imp = import_create(actor=PLATFORM,
                            account=account_get(public_key=account), exporter_public_key=exporter, subject=subject,
                            local_subject=local_subject, token=token, name=name, share=share)
        self.out(f"imported {imp.export.type} {imp.subject} from {exporter} as {imp.local_subject}")

    def add_list_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--json", action="store_true")

    def handle_list(self, *, account, json, **_) -> None:
        rows = [{"id": i.id, "subject": i.subject, "local_subject": i.local_subject, "type": i.export.type,
                 "from": i.export.account.public_key, "builtin": import_is_builtin(i)}
                for i in Import.objects.filter(account=account_get(public_key=account))
                .select_related("export__account__team")]
        if json:
            self.out_json(rows)
            return
        for r in rows:
            self.out(f"{r['id']}  {r['type']:<7} {r['subject']} from {r['from']} as {r['local_subject']}"
                     + ("  (built-in)" if r["builtin"] else ""))

    def add_delete_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--id", type=int, required=True, help="the import's id (see import list)")

    def handle_delete(self, *, account, id, **_) -> None:
        imp = import_get(account=account_get(public_key=account), import_id=id)
        import_delete(imp=imp, actor=PLATFORM)
        self.out(f"removed import {imp.subject} as {imp.local_subject}")
