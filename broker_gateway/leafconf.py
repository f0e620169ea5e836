"""Render the nats-server config a tenant runs as a leafnode of the fleet (pure, no Django).

The tenant's own server solicits a leafnode connection to every URL given, authenticating with one user's
``.creds``. It runs without operator mode or any ``authorization``, so its local clients connect without
credentials and land in its global account, which the remote binds to the user's account on the fleet.
https://docs.nats.io/running-a-nats-service/configuration/leafnodes
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["DEFAULT_LOCAL_PORT", "LeafConfig", "LeafConfigError", "render_leaf_config"]

DEFAULT_LOCAL_PORT = 4222


class LeafConfigError(ValueError):
    """The parts of a leaf config do not make one nats-server would start with."""


def _q(value: str) -> str:
    # Same quoting as broker_gateway.config: a JSON string is a valid quoted string in nats-server's config.
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class LeafConfig:
    """A tenant's leafnode server: the fleet's leafnode URLs, the creds file it presents, its local port."""

    urls: Sequence[str]
    credentials: str  # a path; nats-server resolves a relative one against its working directory
    port: int = DEFAULT_LOCAL_PORT
    # Loopback: whoever reaches this port acts as the user, without credentials. Serving a network is the
    # tenant's choice to make (host 0.0.0.0 plus an authorization block of their own).
    host: str = "127.0.0.1"
    server_name: str = ""
    comment: str = ""  # leading lines (each prefixed "# "): who the config is for

    def check(self) -> None:
        if not self.urls:
            raise LeafConfigError("no leafnode URL to connect to")
        for url in self.urls:
            if not url.startswith(("nats-leaf://", "tls://", "ws://", "wss://")) or any(c.isspace() for c in url):
                raise LeafConfigError(f"not a leafnode URL: {url!r}")
        if not self.credentials or "\n" in self.credentials:
            raise LeafConfigError("the credentials path is empty or spans lines")
        if not 1 <= self.port <= 65535:
            raise LeafConfigError(f"port {self.port} is not in 1..65535")


def render_leaf_config(cfg: LeafConfig) -> str:
    """A complete config for ``nats-server -c``: a client port, and one remote with every URL (the server picks
    one at random and fails over to the others)."""
    cfg.check()
    lines = [f"# {line}".rstrip() for line in cfg.comment.splitlines()]
    if cfg.server_name:
        lines.append(f"server_name: {_q(cfg.server_name)}")
    lines += [
        f"host: {_q(cfg.host)}",
        f"port: {cfg.port}",
        "leafnodes {",
        "  remotes = [",
        "    {",
        "      urls: [",
        *(f"        {_q(url)}" for url in cfg.urls),
        "      ]",
        f"      credentials: {_q(cfg.credentials)}",
        "    }",
        "  ]",
        "}",
    ]
    return "\n".join(lines) + "\n"
