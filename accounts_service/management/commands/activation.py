"""``manage.py activation generate|list|revoke``: activation tokens for importers of a private export."""

from __future__ import annotations

import datetime as dt

from accounts_service.models import Activation
from accounts_service.rights import PLATFORM
from accounts_service.selectors import account_get, export_covering_get
from accounts_service.services import activation_create, activation_revoke
from core.cli import SubcommandCommand
from core.errors import Invalid, NotFound


class Command(SubcommandCommand):
    help = "Activation tokens for private exports."
    subcommands = {
        "generate": "sign an activation token for a target account; prints the token",
        "list": "list the activations of an account's exports",
        "revoke": "revoke activations (by --id, or every live one of --target under --subject); pushed in the"
                  " exporter's JWT",
    }

    def add_generate_arguments(self, p) -> None:
        p.add_argument("--account", required=True, help="the exporting account")
        p.add_argument("--subject", required=True, help="the export's subject, or a subset of it")
        p.add_argument("--target", required=True, help="the importing account's public key")
        p.add_argument("--expiry", type=int, default=None,
                       help="seconds until the token expires (refused on an export with an account token position:"
                            " the servers would not enforce it)")

    def handle_generate(self, *, account, subject, target, expiry, **_) -> None:
        exporter = account_get(public_key=account)
        export = export_covering_get(account=exporter, subject=subject)
        expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expiry) if expiry else None
        act = activation_create(actor=PLATFORM,
                                export=export, target_public_key=target, subject=subject, expires_at=expires_at)
        self.out(act.token)

    def add_list_arguments(self, p) -> None:
        p.add_argument("--account", required=True, help="the exporting account")
        p.add_argument("--json", action="store_true")

    def handle_list(self, *, account, json, **_) -> None:
        rows = [{"id": a.pk, "export": a.export.subject, "subject": a.subject, "target": a.target_public_key,
                 "expires_at": a.expires_at, "revoked_at": a.revoked_at}
                for a in Activation.objects.filter(export__account=account_get(public_key=account))
                .select_related("export").order_by("pk")]
        if json:
            self.out_json(rows)
            return
        for r in rows:
            self.out(f"{r['id']}  {r['subject']}  {r['target']}" + ("  REVOKED" if r["revoked_at"] else ""))

    def add_revoke_arguments(self, p) -> None:
        p.add_argument("--account", required=True, help="the exporting account")
        p.add_argument("--id", type=int, default=None, help="one activation (see activation list)")
        p.add_argument("--subject", default=None, help="the export's subject, or the subset the token was for")
        p.add_argument("--target", default=None, help="the importing account's public key")

    def handle_revoke(self, *, account, id, subject, target, **_) -> None:
        qs = Activation.objects.filter(export__account=account_get(public_key=account)).select_related(
            "export__account")
        if id is not None:
            qs = qs.filter(pk=id)
        elif subject and target:
            export = export_covering_get(account=account_get(public_key=account), subject=subject)
            qs = qs.filter(export=export, target_public_key=target, revoked_at__isnull=True)
            if subject != export.subject:
                qs = qs.filter(subject=subject)
        else:
            raise Invalid("name the activation: --id, or --subject and --target", extra={"field": "id"})
        activations = list(qs)
        if not activations:
            raise NotFound("no such activation (or it is already revoked)", extra={"field": "id"})
        for act in activations:
            activation_revoke(actor=PLATFORM, activation=act)
            self.out(f"revoked activation {act.pk} of {act.subject} for {act.target_public_key}")
