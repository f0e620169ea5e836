"""Every Django user gets a personal team, however it was created (sign-up, createsuperuser, shell); the operator's
system account gets its row when ``operator init`` runs. And the tenant app's own signals."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import Signal, receiver

from operators.signals import operator_ready


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="accounts_service.personal_team")
def _personal_team(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from accounts_service.services import team_personal_ensure

        team_personal_ensure(user=instance)


@receiver(operator_ready, dispatch_uid="accounts_service.system_account")
def _system_account(sender, operator, **kwargs):
    from accounts_service.services import system_account_ensure

    system_account_ensure()


# Sent on commit after an account was deleted; kwargs: account_public_key. The broker gateway sends the
# operator-signed delete claim to every node.
account_deleted = Signal()

# Sent on commit after an account moved to another plan; kwargs: account_id, previous, plan. Billing re-evaluates
# the account's quota (an upgrade ends a quota suspension at once).
account_plan_changed = Signal()
