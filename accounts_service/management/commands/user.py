"""``manage.py user create|list|revoke|delete|creds|jwt|leafnode|diagnose``."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from django.core.management.base import CommandError

from accounts_service.models import NatsUser
from accounts_service.rights import PLATFORM
from accounts_service.selectors import account_get, user_get
from accounts_service.services import (
    creds_filename,
    user_create,
    user_creds_get,
    user_creds_pairing,
    user_delete,
    user_jwt_download,
    user_revoke,
)
from broker_gateway.leafconf import DEFAULT_LOCAL_PORT
from broker_gateway.leafnodes import LEAF_CONFIG_FILENAME, user_leafnode_config
from core.cli import SubcommandCommand


def _write_creds(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


class Command(SubcommandCommand):
    help = "Create, list, revoke and delete NATS users and write their .creds."
    subcommands = {
        "create": "create a user and write its .creds (mode 0600)",
        "list": "list the users of an account",
        "creds": "write the .creds of an existing user",
        "jwt": "print or write a user's JWT (or, with --template, a .creds template to complete with your seed)",
        "leafnode": "write leaf.conf and the .creds it references: run your own nats-server as a leafnode",
        "revoke": "revoke a user (pushed in the account JWT)",
        "delete": "delete a user (revoked first)",
        "diagnose": "why can't this client connect? every check the servers make, the first failing cause first",
    }

    def add_diagnose_arguments(self, p) -> None:
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("--creds", type=Path, help="a .creds file (its seed is read to check the pair, never shown)")
        who.add_argument("--account", help="an account public key (with --user)")
        p.add_argument("--user", help="a user public key of --account")
        p.add_argument("--subject", help="may the user publish/subscribe this subject? (with --pub or --sub)")
        action = p.add_mutually_exclusive_group()
        action.add_argument("--pub", dest="action", action="store_const", const="pub")
        action.add_argument("--sub", dest="action", action="store_const", const="sub")
        p.add_argument("--leafnode", action="store_true", help="diagnose a leafnode connection (the leaf limit)")
        p.add_argument("--json", action="store_true")

    def handle_diagnose(self, *, creds, account, user, subject, action, leafnode, json, **options) -> None:
        from broker_gateway.diagnose import MAX_CREDS_BYTES, user_diagnose

        if account and not user:
            raise CommandError("--account needs --user")
        if bool(subject) != bool(action):
            raise CommandError("--subject goes with --pub or --sub")
        text = None
        if creds is not None:
            try:
                if creds.stat().st_size > MAX_CREDS_BYTES:
                    raise CommandError(f"{creds}: a .creds file is at most {MAX_CREDS_BYTES} bytes")
                text = creds.read_text(errors="replace")
            except OSError as exc:
                raise CommandError(f"cannot read {creds}: {exc.strerror}") from exc
        result = user_diagnose(actor=None, creds=text, account=account, user=user, subject=subject, action=action,
                               connection_type="LEAFNODE" if leafnode else "STANDARD")
        if json:
            self.out_json(result)
            return
        verdict = result["verdict"]
        who = f"{result['user_name'] or '?'} ({result['user'] or '?'}) of {result['account_name'] or '?'}"
        self.out(f"{'OK' if verdict['ok'] else 'REFUSED'}: {who}")
        self.out(f"  {verdict['message']}")
        marks = {"blocking": "x", "warning": "!", "info": "-"}
        for check in result["checks"]:
            mark = "ok" if check["ok"] else marks[check["severity"]]
            self.out(f"  [{mark:>2}] {check['check']}: {check['message']}")
        if not verdict["ok"]:
            raise CommandError(f"refused: {verdict['cause']}", returncode=2)

    def add_create_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--pub", action="append", default=[], help="subject the user may publish to (repeatable)")
        p.add_argument("--sub", action="append", default=[], help="subject the user may subscribe to (repeatable)")
        p.add_argument("--deny-pub", action="append", default=[])
        p.add_argument("--deny-sub", action="append", default=[])
        p.add_argument("--allow-responses", action="store_true", help="may reply to requests it receives")
        p.add_argument("--expiry", default=None, help="ISO 8601 time or seconds from now, e.g. 3600")
        p.add_argument("--public-key", default=None, help="your own user public key: we never see the seed")
        p.add_argument("--role", default=None, help="sign with the account's scoped signing key of this role")
        p.add_argument("--tag", action="append", default=[], dest="tags",
                       help="name:value in the user JWT (repeatable); a scoped key's {{tag(name)}} reads it")
        for limit in ("subs", "data", "payload"):
            p.add_argument(f"--{limit}", type=int, default=None, help=f"{limit} limit (-1 unlimited, the default)")
        p.add_argument("--creds-out", type=Path, default=None)

    def handle_create(self, *, account, name, pub, sub, deny_pub, deny_sub, allow_responses, expiry, public_key,
                      role, tags, creds_out, **options) -> None:
        expires_at = None
        if expiry:
            try:
                expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=int(expiry))
            except ValueError:
                try:
                    expires_at = dt.datetime.fromisoformat(expiry)
                except ValueError as exc:
                    raise CommandError("--expiry is seconds from now or an ISO 8601 time") from exc
        user = user_create(actor=PLATFORM,
                           account=account_get(public_key=account), name=name, pub_allow=pub, sub_allow=sub,
                           pub_deny=deny_pub, sub_deny=deny_sub, allow_responses=allow_responses,
                           expires_at=expires_at, public_key=public_key, role=role, tags=tags,
                           **{f: options[f] for f in ("subs", "data", "payload") if options[f] is not None})
        self.out(user.public_key)
        if creds_out:
            if user.seed_id is None:
                self.out(f"no creds written: we never saw the seed of {user.public_key}; the JWT is:")
                self.out(user.jwt)
            else:
                _write_creds(creds_out, user_creds_get(user=user))
                self.out(f"creds written to {creds_out}")
        elif user.seed_id is None:
            self.out(user.jwt)

    def add_list_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--json", action="store_true")

    def handle_list(self, *, account, json, **_) -> None:
        users = NatsUser.objects.filter(account=account_get(public_key=account)).order_by("name")
        rows = [{"public_key": u.public_key, "name": u.name, "revoked": u.revoked_at is not None,
                 "pub_allow": u.pub_allow, "sub_allow": u.sub_allow, "expires_at": u.expires_at, "tags": u.tags}
                for u in users]
        if json:
            self.out_json(rows)
            return
        for r in rows:
            self.out(f"{r['public_key']}  {r['name']}" + ("  REVOKED" if r["revoked"] else ""))

    def add_creds_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--user", required=True)
        p.add_argument("--creds-out", type=Path, required=True)

    def handle_creds(self, *, account, user, creds_out, **_) -> None:
        nats_user = user_get(account=account_get(public_key=account), public_key=user)
        _write_creds(creds_out, user_creds_get(user=nats_user))
        self.out(f"creds written to {creds_out}")

    def add_jwt_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--user", required=True)
        p.add_argument("--out", type=Path, default=None, help="write it to this file (mode 0600) instead of stdout")
        p.add_argument("--template", action="store_true",
                       help="the .creds layout with the JWT and a placeholder where your seed goes")

    def handle_jwt(self, *, account, user, out, template, **_) -> None:
        nats_user = user_get(account=account_get(public_key=account), public_key=user)
        text = user_jwt_download(user=nats_user, actor=PLATFORM, template=template, via="cli")
        if out is None:
            self.out(text.rstrip("\n"))
            return
        _write_creds(out, text if text.endswith("\n") else text + "\n")
        self.out(f"{'creds template' if template else 'JWT'} written to {out}")
        if template:
            pairing = user_creds_pairing(user=nats_user)
            command = pairing["command"].replace(pairing["template"], str(out))
            self.out(f"complete it with your seed file: {command}")

    def add_leafnode_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--user", required=True)
        p.add_argument("--out", type=Path, required=True, help="directory for leaf.conf and the user's .creds")
        p.add_argument("--port", default=DEFAULT_LOCAL_PORT, help=f"the leaf's local client port (default "
                                                                   f"{DEFAULT_LOCAL_PORT})")

    def handle_leafnode(self, *, account, user, out, port, **_) -> None:
        nats_user = user_get(account=account_get(public_key=account), public_key=user)
        # An absolute path: the server then starts from any working directory.
        creds_path = out.expanduser().resolve() / creds_filename(nats_user.name)
        issued = user_leafnode_config(user=nats_user, actor=PLATFORM, port=port, credentials=str(creds_path),
                                      with_creds=True)
        _write_creds(creds_path, issued.creds or "")
        config_path = creds_path.parent / LEAF_CONFIG_FILENAME
        config_path.write_text(issued.config)
        self.out(f"{config_path} and {creds_path} written; run: nats-server -c {config_path}")

    def add_revoke_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--user", required=True)

    def handle_revoke(self, *, account, user, **_) -> None:
        u = user_revoke(actor=PLATFORM, user=user_get(account=account_get(public_key=account), public_key=user))
        self.out(f"revoked {u.public_key}; account {u.account.public_key} is now v{u.account.version}")

    def add_delete_arguments(self, p) -> None:
        p.add_argument("--account", required=True)
        p.add_argument("--user", required=True)

    def handle_delete(self, *, account, user, **_) -> None:
        user_delete(actor=PLATFORM, user=user_get(account=account_get(public_key=account), public_key=user))
        self.out(f"deleted {user}")
