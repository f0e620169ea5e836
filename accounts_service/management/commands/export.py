"""``manage.py export add|list|delete``."""

from __future__ import annotations

from accounts_service.models import Export
from accounts_service.rights import PLATFORM
from accounts_service.selectors import account_get
from accounts_service.services import export_create, export_delete
from core.cli import SubcommandCommand
from core.errors import NotFound


class Command(SubcommandCommand):
    help = "Export streams and services from an account."
    subcommands = {"add": "add an export", "list": "list an account's exports", "delete": "delete an export"}

    def add_add_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--subject", required=True)
        p.add_argument("--type", choices=["stream", "service"], default="stream")
        p.add_argument("--private", action="store_true",
                       help="importers need an activation token, which `activation revoke` can take back (not with"
                            " --account-token-position: nats-server never reads the token there)")
        p.add_argument("--response-type", choices=["Singleton", "Stream", "Chunked"], default="Singleton")
        p.add_argument("--account-token-position", type=int, default=0,
                       help="1-based '*' token each importer fills with its own account key; the servers then check"
                            " only that key: no activation, expiry or revocation applies")
        p.add_argument("--advertise", action="store_true")
        p.add_argument("--description", default="")

    def handle_add(self, *, account, name, subject, type, private, response_type, account_token_position,
                   advertise, description, **_) -> None:
        export = export_create(actor=PLATFORM,
                               account=account_get(public_key=account), name=name, subject=subject, type=type,
                               private=private, response_type=response_type,
                               account_token_position=account_token_position, advertise=advertise,
                               description=description)
        self.out(f"{export.type} {export.subject} ({'private' if export.token_req else 'public'}) exported by "
                 f"{export.account.public_key}")

    def add_list_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--json", action="store_true")

    def handle_list(self, *, account, json, **_) -> None:
        rows = [{"id": e.id, "name": e.name, "subject": e.subject, "type": e.type, "private": e.token_req}
                for e in Export.objects.filter(account=account_get(public_key=account)).order_by("subject")]
        if json:
            self.out_json(rows)
            return
        for r in rows:
            self.out(f"{r['id']}  {r['type']:<7} {r['subject']}  {'private' if r['private'] else 'public'}")

    def add_delete_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--subject", required=True)

    def handle_delete(self, *, account, subject, **_) -> None:
        export = Export.objects.filter(account=account_get(public_key=account), subject=subject).first()
        if export is None:
            raise NotFound(f"no export {subject!r}")
        export_delete(actor=PLATFORM, export=export)
        self.out(f"deleted export {subject}")
