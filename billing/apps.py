"""App config of billing."""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # Plans are data here; accounts_service learns their terms through its provider hook (it never
        # imports billing: docs/ARCHITECTURE.md's import direction).
        from accounts_service.plans import plan_provider_set
        from billing.selectors import plan_terms_all, plan_terms_get

        plan_provider_set(plan_terms_get, plan_terms_all)

        from accounts_service.signals import account_plan_changed
        from billing.quotas import on_plan_changed

        account_plan_changed.connect(on_plan_changed, dispatch_uid="billing.quota_on_plan_change")
