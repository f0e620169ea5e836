"""App config of the broker gateway."""

from django.apps import AppConfig


class BrokerGatewayConfig(AppConfig):
    name = "broker_gateway"
    verbose_name = "Broker gateway"

    def ready(self) -> None:
        from broker_gateway import signals  # noqa: F401  (push every issued JWT and every deletion)
