"""App config of payouts: the network's revenue shared between node operators, publishers and the community."""

from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "payouts"
    default_auto_field = "django.db.models.BigAutoField"
