"""The platform's own accounts: the operator's system account and the ``ngs`` account serving ``ngs.usage``."""

from __future__ import annotations

from django.db import transaction

from accounts_service.models import Account, Export
from accounts_service.rights import PLATFORM
from accounts_service.services.accounts import account_create
from accounts_service.services.sharing import export_create
from accounts_service.services.signing import account_lock, account_resign
from accounts_service.services.teams import platform_team_get
from accounts_service.services.usage import (
    USAGE_ACCOUNT,
    USAGE_EXPORT_SUBJECT,
    USAGE_LOCAL_SUBJECT,
    usage_export_get,
    usage_import_add,
)
from operators import services as op_services
from operators.selectors import operator_get


def system_account_ensure() -> Account:
    """The operator's system account (its key was made by ``operator init``), as an Account row."""
    operator = operator_get()
    account = Account.objects.filter(public_key=operator.system_account).first()
    if account is not None:
        return account
    return account_create(
        team=platform_team_get(), name="SYS", description="system account", actor=PLATFORM,
        identity_seed=op_services.system_account_seed_get(operator=operator), is_system=True,
    )


@transaction.atomic
def usage_service_ensure() -> Account:
    """The platform account exporting ``ngs.usage.*``; every tenant account without the import gets it (and is
    re-signed). Idempotent: ``make up``, the collector and a data migration call it."""
    team = platform_team_get()
    account = Account.objects.filter(team=team, name=USAGE_ACCOUNT).first() or account_create(
        team=team, name=USAGE_ACCOUNT, description="platform services: ngs.usage", actor=PLATFORM,
    )
    if usage_export_get() is None:
        export_create(account=account, actor=PLATFORM, name="ngs.usage", subject=USAGE_EXPORT_SUBJECT,
                      type=Export.Type.SERVICE, account_token_position=3,
                      description="your account's own usage: request ngs.usage")
    for tenant in Account.objects.filter(is_system=False, team__is_platform=False).exclude(
            account_imports__local_subject=USAGE_LOCAL_SUBJECT).select_related("team"):
        locked = account_lock(tenant)
        if usage_import_add(locked):
            account_resign(account=locked)
    return account
