"""App config of the tenant domain."""

from django.apps import AppConfig


class AccountsServiceConfig(AppConfig):
    name = "accounts_service"
    verbose_name = "Tenants and accounts"

    def ready(self) -> None:
        from accounts_service import signals  # noqa: F401  (personal team for every new Django user)
        from accounts_service.api import schema  # noqa: F401  (bearer tokens in the OpenAPI document)
