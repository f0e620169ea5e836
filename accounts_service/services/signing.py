"""The one way an account's JWT changes: lock the row, then sign its whole current state with a higher ``iat``."""

from __future__ import annotations

from accounts_service.models import Account
from accounts_service.selectors import account_nats_build
from operators import services as op_services


def account_lock(account: Account) -> Account:
    """Re-read the account under a row lock so its re-signs are serialized."""
    return Account.objects.select_for_update().get(pk=account.pk)


def account_resign(*, account: Account) -> Account:
    """Sign the account's whole current state; the new version supersedes every earlier one (and is pushed:
    operators records the issued JWT and announces it)."""
    issued = op_services.account_jwt_issue(
        account_public_key=account.public_key, name=account.name, nats=account_nats_build(account)
    )
    account.jwt, account.jwt_iat, account.jwt_jti = issued.jwt, issued.iat, issued.jti
    account.version += 1
    account.save(update_fields=["jwt", "jwt_iat", "jwt_jti", "version", "updated_at"])
    return account
