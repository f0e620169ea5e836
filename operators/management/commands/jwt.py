"""``manage.py jwt describe JWT_OR_FILE``: decode a NATS JWT, verify its signature and its chain."""

from __future__ import annotations

import datetime as dt
import json

from core.cli import SubcommandCommand, text_or_file
from operators import claims, creds
from operators.models import IssuedAccountJwt, Operator


def _ts(value) -> str:
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat() if isinstance(value, int) else "-"


class Command(SubcommandCommand):
    help = "Decode and verify NATS JWTs."
    subcommands = {"describe": "decode a JWT (or a .creds / .jwt file), verify it and its chain of trust"}

    def add_describe_arguments(self, p) -> None:
        p.add_argument("token", help="a JWT, or a path to a file holding one (a .creds file works)")
        p.add_argument("--json", action="store_true")

    def handle_describe(self, *, token: str, json: bool = False, **_) -> None:
        text = text_or_file(token)
        if "BEGIN NATS USER JWT" in text:
            text = creds.parse_creds(text).jwt
        decoded = claims.decode(text.strip())
        chain = self._chain(decoded)
        if json:
            self.out_json({"header": decoded.header, "claims": decoded.claims, "chain": chain})
            return
        self.out(f"type:     {decoded.type}")
        self.out(f"name:     {decoded.name}")
        self.out(f"subject:  {decoded.subject}")
        self.out(f"issuer:   {decoded.issuer}")
        if decoded.issuer_account:
            self.out(f"issuer account: {decoded.issuer_account}")
        self.out(f"jti:      {decoded.jti}")
        self.out(f"issued:   {_ts(decoded.iat)} ({decoded.iat})")
        self.out(f"expires:  {_ts(decoded.exp)}" + ("  EXPIRED" if decoded.expired() else ""))
        self.out("signature: valid")
        for line in chain:
            self.out(f"chain:    {line}")
        self.out("nats:")
        self.out(_json_dumps(decoded.nats))

    def _chain(self, decoded: claims.Jwt) -> list[str]:
        """Check the JWT against the operator and account JWTs this control plane knows."""
        lines: list[str] = []
        op = Operator.objects.order_by("id").first()
        if decoded.type in (claims.USER, claims.ACTIVATION):
            account_key = decoded.issuer_account or decoded.issuer
            issued = IssuedAccountJwt.objects.filter(account_public_key=account_key).order_by("-iat").first()
            if issued is None:
                return [f"account {account_key} is not known here"]
            account = claims.decode(issued.jwt)
            problems = claims.issuer_problems(decoded, account)
            lines.append(f"issued by account {account_key}: " + ("; ".join(problems) or "trusted"))
            revoked = account.nats.get("revocations", {})
            ts = revoked.get(decoded.subject, revoked.get("*"))
            if decoded.type == claims.USER and ts is not None and decoded.iat <= ts:
                lines.append(f"REVOKED by the account at {_ts(ts)}")
            decoded = account
        if decoded.type in (claims.ACCOUNT, claims.GENERIC):
            if op is None:
                return [*lines, "no operator is known here"]
            problems = claims.issuer_problems(decoded, claims.decode(op.jwt))
            lines.append(f"issued by operator {op.name} {op.public_key}: " + ("; ".join(problems) or "trusted"))
        elif decoded.type == claims.OPERATOR:
            lines.append("self-signed operator" + (" (this control plane's)" if op and op.jwt == decoded.token else ""))
        return lines


def _json_dumps(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
