"""``manage.py config generate --out PATH``: a nats-server config for operator mode with the full resolver;
``manage.py config chart-values --out PATH``: the same public material as a Helm values file for the chart."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from accounts_service.services import system_account_ensure
from broker_gateway import config as config_render
from broker_gateway.nodes import server_config_build
from core.cli import SubcommandCommand
from core.errors import ApplicationError
from operators.selectors import operator_get


class Command(SubcommandCommand):
    help = "Render nats-server configuration."
    subcommands = {
        "generate": "write a server config (public material only: no seed ever)",
        "chart-values": "write the operator JWT and system account as Helm values for helm/natsctl (no seed ever)",
    }

    def add_generate_arguments(self, p) -> None:
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--server-name", default="natsctl-1")
        p.add_argument("--port", type=int, default=4222)
        p.add_argument("--http-port", type=int, default=None)
        p.add_argument("--resolver-dir", type=Path, default=None, help="default: var/jwt/<server name>")
        p.add_argument("--resolver-interval", default=None, help="Go duration, e.g. 2m")
        p.add_argument("--jetstream-dir", type=Path, default=None,
                       help="JetStream store (default: var/jetstream/<server name>); accounts' JetStream limits"
                            " do nothing on a server without JetStream")
        p.add_argument("--no-jetstream", action="store_true", help="write no jetstream block")

    def handle_generate(self, *, out, server_name, port, http_port, resolver_dir, resolver_interval, jetstream_dir,
                        no_jetstream, **_) -> None:
        resolver_dir = (resolver_dir or settings.VAR_DIR / "jwt" / server_name).resolve()
        resolver_dir.mkdir(parents=True, exist_ok=True)
        store_dir = None
        if not no_jetstream:  # the same block as a fleet node's config (config.render)
            store_dir = (jetstream_dir or settings.VAR_DIR / "jetstream" / server_name).resolve()
            store_dir.mkdir(parents=True, exist_ok=True)
        text = server_config_build(resolver_dir=resolver_dir, server_name=server_name, port=port,
                                   http_port=http_port, resolver_interval=resolver_interval,
                                   jetstream_store_dir=str(store_dir) if store_dir else None)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        self.out(f"wrote {out}")

    def add_chart_values_arguments(self, p) -> None:
        p.add_argument("--out", required=True, help="a values file for `helm install -f`; - for stdout")

    def handle_chart_values(self, *, out, **_) -> None:
        operator, system = operator_get(), system_account_ensure()
        try:
            text = config_render.chart_values(operator_jwt=operator.jwt, system_account=system.public_key,
                                              system_account_jwt=system.jwt)
        except ValueError as exc:
            raise ApplicationError(str(exc)) from exc
        if out == "-":
            self.stdout.write(text, ending="")
            return
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.out(f"wrote {path} (operator {operator.public_key}, system account {system.public_key})")
