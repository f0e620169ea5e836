"""``manage.py account create|list|describe|jwt|push``."""

from __future__ import annotations

from django.core.management.base import CommandError

from accounts_service.models import LIMIT_HELP, Account
from accounts_service.rights import PLATFORM
from accounts_service.selectors import account_get
from accounts_service.services import (
    account_create,
    account_delete,
    account_signing_key_add,
    account_update,
    team_get_or_create,
)
from broker_gateway.propagation import account_delete_send, account_jwt_send
from broker_gateway.selectors import account_propagation
from core.cli import SubcommandCommand

LIMIT_OPTIONS = ("conn", "subs", "data", "payload", "imports", "exports", "leaf", "mem_storage", "disk_storage",
                 "streams", "consumer")


def _account_dict(a: Account) -> dict:
    return {
        "public_key": a.public_key,
        "name": a.name,
        "team": a.team.slug,
        "description": a.description,
        "system": a.is_system,
        "version": a.version,
        "jwt_iat": a.jwt_iat,
        "jti": a.jwt_jti,
        "limits": {f: getattr(a, f) for f in LIMIT_OPTIONS},
        "users": a.users.count(),
        "exports": [{"name": e.name, "subject": e.subject, "type": e.type, "private": e.token_req}
                    for e in a.account_exports.all()],
        "imports": [{"name": i.name, "subject": i.subject, "local_subject": i.local_subject,
                     "from": i.export.account.public_key} for i in a.account_imports.select_related("export__account")],
    }


class Command(SubcommandCommand):
    help = "Create, list, describe, update, delete and push NATS accounts."
    subcommands = {
        "create": "create an account (the team is made if missing); prints its public key",
        "list": "list accounts",
        "describe": "describe one account",
        "jwt": "print the current account JWT",
        "update": "change limits or name",
        "delete": "delete an account (with --url, also send the delete claim to that server)",
        "push": "push the account JWT to a server (like nsc push -u) and print each server's reply",
        "signing-key": "add a signing key (`signing-key add`); with --role it is scoped: its users get the template",
    }

    def _limits_args(self, p) -> None:
        for name in LIMIT_OPTIONS:
            p.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None,
                           help=LIMIT_HELP[name])

    def add_create_arguments(self, p) -> None:
        p.add_argument("--team", required=True)
        p.add_argument("--name", required=True)
        p.add_argument("--description", default="")
        self._limits_args(p)

    def handle_create(self, *, team, name, description, **options) -> None:
        limits = {k: options[k] for k in LIMIT_OPTIONS if options.get(k) is not None}
        account = account_create(actor=PLATFORM,
                                 team=team_get_or_create(name=team), name=name, description=description, limits=limits)
        self.out(account.public_key)

    def add_list_arguments(self, p) -> None:
        p.add_argument("--team", default=None)
        p.add_argument("--json", action="store_true")

    def handle_list(self, *, team, json, **_) -> None:
        qs = Account.objects.select_related("team").order_by("team__slug", "name")
        if team:
            qs = qs.filter(team__slug=team)
        if json:
            self.out_json([{"public_key": a.public_key, "name": a.name, "team": a.team.slug, "version": a.version}
                           for a in qs])
            return
        for a in qs:
            self.out(f"{a.public_key}  {a.team.slug}/{a.name}  v{a.version}" + ("  (system)" if a.is_system else ""))

    def add_describe_arguments(self, p) -> None:
        p.add_argument("public_key")
        p.add_argument("--json", action="store_true")

    def handle_describe(self, *, public_key, json, **_) -> None:
        account = account_get(public_key=public_key)
        data = _account_dict(account)
        data["propagation"] = account_propagation(account=account)
        if json:
            self.out_json(data)
            return
        for key in ("public_key", "name", "team", "description", "system", "version", "jwt_iat", "jti", "users"):
            self.out(f"{key + ':':<13}{data[key]}")
        self.out("limits:      " + ", ".join(f"{k}={v}" for k, v in data["limits"].items()))
        for e in data["exports"]:
            self.out(f"export:      {e['type']} {e['subject']} ({'private' if e['private'] else 'public'})")
        for i in data["imports"]:
            self.out(f"import:      {i['subject']} from {i['from']} as {i['local_subject']}")
        status = data["propagation"]
        self.out(f"live on:     {status['live_on']}/{status['healthy_nodes']} healthy nodes")
        for n in status["nodes"]:
            held = "latest" if n["in_sync"] else (f"iat {n['held_iat']}" if n["held_iat"] else "nothing")
            self.out(f"  {n['node']:<12}{n['state']:<12}holds {held}")

    def add_jwt_arguments(self, p) -> None:
        p.add_argument("public_key")

    def handle_jwt(self, *, public_key, **_) -> None:
        self.out(account_get(public_key=public_key).jwt)

    def add_update_arguments(self, p) -> None:
        p.add_argument("public_key")
        p.add_argument("--name", default=None)
        p.add_argument("--description", default=None)
        self._limits_args(p)

    def handle_update(self, *, public_key, name, description, **options) -> None:
        limits = {k: options[k] for k in LIMIT_OPTIONS if options.get(k) is not None}
        account = account_update(actor=PLATFORM,
                                 account=account_get(public_key=public_key), name=name, description=description,
                                 limits=limits)
        self.out(f"{account.public_key} v{account.version}")

    def add_delete_arguments(self, p) -> None:
        p.add_argument("public_key")
        p.add_argument("--url", default=None,
                       help="nats://HOST:PORT of a server (not a recorded fleet node) to send the delete claim to;"
                            " the recorded fleet gets it in any case")
        p.add_argument("--timeout", type=float, default=None)
        p.add_argument("--json", action="store_true")

    def handle_delete(self, *, public_key, url, timeout, json, **_) -> None:
        account_delete(actor=PLATFORM, account=account_get(public_key=public_key))
        self.out(f"deleted {public_key}")
        if url:
            self._replies_print(account_delete_send(public_keys=[public_key], url=url, timeout=timeout), json=json)

    def add_signing_key_arguments(self, p) -> None:
        actions = p.add_subparsers(dest="action", required=True, metavar="{add}")
        a = actions.add_parser("add", help="add a signing key to the account; prints its public key")
        a.add_argument("--account", required=True)
        a.add_argument("--role", default="", help="make it a scoped key of this role (users: user create --role)")
        a.add_argument("--description", default="")
        a.add_argument("--pub", action="append", default=[], help="template: may publish to (repeatable)")
        a.add_argument("--sub", action="append", default=[], help="template: may subscribe to (repeatable)")
        a.add_argument("--deny-pub", action="append", default=[])
        a.add_argument("--deny-sub", action="append", default=[])
        a.add_argument("--allow-responses", action="store_true")
        for limit in ("subs", "data", "payload"):
            a.add_argument(f"--{limit}", type=int, default=None, help=f"template: {limit} limit (-1 unlimited)")

    def handle_signing_key(self, *, account, role, description, pub, sub, deny_pub, deny_sub, allow_responses,
                           **options) -> None:
        template = None
        if role:
            template = {"pub_allow": pub, "sub_allow": sub, "pub_deny": deny_pub, "sub_deny": deny_sub,
                        "allow_responses": allow_responses,
                        **{f: options[f] for f in ("subs", "data", "payload") if options[f] is not None}}
        elif pub or sub or deny_pub or deny_sub or allow_responses or any(
                options[f] is not None for f in ("subs", "data", "payload")):
            raise CommandError("a template (--pub, --sub, limits ...) needs --role: only a scoped key has one")
        key = account_signing_key_add(actor=PLATFORM, account=account_get(public_key=account), role=role,
                                      template=template, description=description)
        self.out(key.public_key)

    def add_push_arguments(self, p) -> None:
        p.add_argument("public_key")
        p.add_argument("--url", required=True, help="nats://HOST:PORT of a server of the cluster")
        p.add_argument("--timeout", type=float, default=None, help="seconds to wait at most for the replies")
        p.add_argument("--expect", type=int, default=None,
                       help="return once this many servers answered (default: the server and those it routes to)")
        p.add_argument("--json", action="store_true")

    def handle_push(self, *, public_key, url, timeout, expect, json, **_) -> None:
        result = account_jwt_send(account=account_get(public_key=public_key), url=url, timeout=timeout,
                                  expect=expect)
        self._replies_print(result.replies, json=json)
        if not result.ok:
            raise CommandError("the push was not acknowledged by every server that replied")

    def _replies_print(self, replies: list[dict], *, json: bool) -> None:
        if json:
            self.out_json(replies)
            return
        if not replies:
            self.out("no server replied")
        for r in replies:
            server = (r.get("server") or {}).get("name", "?")
            if "data" in r:
                self.out(f"{server}: {r['data'].get('code')} {r['data'].get('message')}")
            else:
                err = r.get("error") or {}
                self.out(f"{server}: {err.get('code')} {err.get('description')}")
