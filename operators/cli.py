"""A base for management commands with subcommands (``manage.py account create ...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError
from operators import claims, creds, nkeys, sealing


class SubcommandCommand(BaseCommand):
    """Dispatches ``manage.py <command> <sub> ...`` to ``handle_<sub>``; application errors become CommandError."""

    subcommands: dict[str, str] = {}

    def add_arguments(self, parser) -> None:
        subs = parser.add_subparsers(dest="subcommand", required=True, metavar="{" + ",".join(self.subcommands) + "}")
        for name, help_text in self.subcommands.items():
            sub = subs.add_parser(
                name, help=help_text, called_from_command_line=getattr(parser, "called_from_command_line", None)
            )
            getattr(self, f"add_{name.replace('-', '_')}_arguments", lambda p: None)(sub)

    def handle(self, *args: Any, **options: Any) -> None:
        handler = getattr(self, f"handle_{options['subcommand'].replace('-', '_')}")
        try:
            handler(**options)
        except ApplicationError as exc:
            extra = f" ({json.dumps(exc.extra)})" if exc.extra else ""
            raise CommandError(f"{exc.message}{extra}") from exc
        except (nkeys.NKeyError, claims.JwtError, creds.CredsError, sealing.SealError) as exc:
            raise CommandError(str(exc)) from exc

    def out(self, text: str = "") -> None:
        self.stdout.write(text)

    def out_json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, sort_keys=True, default=str))


def text_or_file(value: str) -> str:
    """``value`` itself, or the contents of the file it names (JWTs are too long to be paths)."""
    if "." in value and value.count(".") == 2 and len(value) > 200:
        return value.strip()
    path = Path(value)
    try:
        if path.is_file():
            return path.read_text().strip()
    except OSError:
        pass
    return value.strip()
