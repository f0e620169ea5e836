"""``manage.py config generate --out PATH``: a nats-server config for operator mode with the full resolver."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from broker_gateway.services import server_config_build
from operators.cli import SubcommandCommand


class Command(SubcommandCommand):
    help = "Render nats-server configuration."
    subcommands = {"generate": "write a server config (public material only: no seed ever)"}

    def add_generate_arguments(self, p) -> None:
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--server-name", default="natsctl-1")
        p.add_argument("--port", type=int, default=4222)
        p.add_argument("--http-port", type=int, default=None)
        p.add_argument("--resolver-dir", type=Path, default=None, help="default: var/jwt/<server name>")
        p.add_argument("--resolver-interval", default=None, help="Go duration, e.g. 2m")

    def handle_generate(self, *, out, server_name, port, http_port, resolver_dir, resolver_interval, **_) -> None:
        resolver_dir = (resolver_dir or settings.VAR_DIR / "jwt" / server_name).resolve()
        resolver_dir.mkdir(parents=True, exist_ok=True)
        text = server_config_build(resolver_dir=resolver_dir, server_name=server_name, port=port,
                                   http_port=http_port, resolver_interval=resolver_interval)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        self.out(f"wrote {out}")
