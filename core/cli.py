"""A base for every app's management commands with subcommands (``manage.py account create ...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.errors import ApplicationError

# Exceptions whose message is all an operator at the command line needs (a malformed key or JWT, ...): each app
# that has some registers them in its AppConfig.ready(), since core cannot import the apps above it.
_shown_errors: tuple[type[Exception], ...] = ()


def command_errors_register(*types: type[Exception]) -> None:
    """Make ``types`` raised by a subcommand a CommandError with their message, not a traceback."""
    global _shown_errors
    _shown_errors = tuple(dict.fromkeys((*_shown_errors, *types)))


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
        except _shown_errors as exc:
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
