"""The import every tenant account has of the platform's ``ngs.usage.*`` service (the service itself: platform)."""

from __future__ import annotations

from accounts_service.models import Account, Export, Import

USAGE_ACCOUNT = "ngs"
USAGE_LOCAL_SUBJECT = "ngs.usage"
USAGE_EXPORT_SUBJECT = "ngs.usage.*"  # the importing account's own key in the third token


def usage_export_get() -> Export | None:
    return (Export.objects.select_related("account")
            .filter(account__team__is_platform=True, subject=USAGE_EXPORT_SUBJECT).first())


def usage_import_add(account: Account) -> bool:
    """Give a tenant account its ``ngs.usage`` import (once the platform offers the service); the caller
    re-signs. The export's account token position makes the servers accept only ``ngs.usage.<own key>``."""
    export = usage_export_get()
    if (export is None or account.is_system or account.team.is_platform
            or Import.objects.filter(account=account, local_subject=USAGE_LOCAL_SUBJECT).exists()):
        return False
    Import.objects.create(account=account, export=export, name="ngs.usage", local_subject=USAGE_LOCAL_SUBJECT,
                          subject=f"ngs.usage.{account.public_key}")
    return True


def import_is_builtin(imp: Import) -> bool:
    """Whether ``imp`` is the platform's ``ngs.usage`` import, which every tenant account carries: removing it
    would only last until the account is next re-signed (``usage_import_add`` puts it back), so it is refused."""
    return (imp.local_subject == USAGE_LOCAL_SUBJECT and imp.export.subject == USAGE_EXPORT_SUBJECT
            and imp.export.account.team.is_platform)
