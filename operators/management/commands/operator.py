"""``manage.py operator init|describe``: create and show the operator (the root of trust)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from core.cli import SubcommandCommand
from operators.selectors import operator_get, operator_signing_key_get
from operators.services import operator_init


class Command(SubcommandCommand):
    help = "Create (idempotently) and describe the operator."
    subcommands = {"init": "create the operator, its signing key and the system account", "describe": "show it"}

    def add_init_arguments(self, p) -> None:
        p.add_argument("--name", default=settings.NATS_OPERATOR_NAME)
        p.add_argument("--identity-seed-out", type=Path, default=None,
                       help="where to write the identity seed once (mode 0600); default var/operator-<name>.nk")
        p.add_argument("--store-identity-key", action="store_true",
                       help="keep the identity seed in the database, encrypted (embedded default only)")

    def handle_init(self, *, name, identity_seed_out, store_identity_key, **_) -> None:
        out = identity_seed_out or (settings.VAR_DIR / f"operator-{name}.nk")
        result = operator_init(name=name, identity_seed_out=None if store_identity_key else out,
                               store_identity_key=store_identity_key)
        op = result.operator
        if result.created:
            self.out(f"created operator {op.name} {op.public_key}")
            if result.identity_seed_path:
                self.out(f"identity seed written to {result.identity_seed_path} (mode 0600); it is not stored: "
                         "keep it offline, it is needed only to re-sign the operator")
            else:
                self.out("identity seed stored encrypted in the database (--store-identity-key)")
        else:
            self.out(f"operator {op.name} {op.public_key} already exists")
        self.out(f"system account {op.system_account}")

    def handle_describe(self, *, json=False, **_) -> None:
        op = operator_get()
        key = operator_signing_key_get(operator=op)
        self.out(f"name:                     {op.name}")
        self.out(f"public key:               {op.public_key}")
        self.out(f"signing key:              {key.public_key}")
        self.out(f"system account:           {op.system_account}")
        self.out(f"strict signing key usage: {op.strict_signing_key_usage}")
        self.out(f"identity seed stored:     {op.identity_seed_id is not None}")
        self.out(f"jwt:                      {op.jwt}")
