"""App config of billing."""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # Plans are data here; accounts_service learns their ceilings through its provider hook (it never
        # imports billing: DESIGN.md's import direction).
        from accounts_service.plans import plan_provider_set
        from billing.selectors import plan_ceilings

        plan_provider_set(plan_ceilings)
