"""App config of the broker gateway."""

from django.apps import AppConfig


class BrokerGatewayConfig(AppConfig):
    name = "broker_gateway"
    verbose_name = "Broker gateway"
