"""App config of the root of trust."""

from django.apps import AppConfig


class OperatorsConfig(AppConfig):
    name = "operators"
    verbose_name = "Operators and keys"

    def ready(self) -> None:
        from core.cli import command_errors_register
        from operators import claims, creds, nkeys, sealing

        command_errors_register(nkeys.NKeyError, claims.JwtError, creds.CredsError, sealing.SealError)
