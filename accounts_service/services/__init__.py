"""Writes of the tenant domain, one module per entity (as Zulip's ``zerver/actions``):

- ``teams``: teams, personal teams, the platform's team; ``members``: invitations, roles, leaving;
- ``accounts``: NATS accounts (create, change, plan, suspend, delete); ``keys``: their signing keys;
- ``users``: NATS users, their one field rule (``UserSpec``), ``.creds`` and the platform's service users;
- ``sharing``: exports, activation tokens, imports; ``tokens``: API tokens; ``audit``: the audit log;
- ``signing``: the one way an account's JWT changes; ``usage`` and ``platform``: the ``ngs.usage`` service and the
  platform's own accounts.

Every write takes ``actor`` (a person, or ``accounts_service.rights.PLATFORM``) and checks its rights itself
(``accounts_service.rights``). The names below are this package's public surface, importable from here.
"""

from accounts_service.services.accounts import (
    account_create,
    account_delete,
    account_home_region_set,
    account_plan_set,
    account_resume,
    account_suspend,
    account_update,
)
from accounts_service.services.audit import audit_record
from accounts_service.services.keys import account_signing_key_add, account_signing_key_rotate
from accounts_service.services.members import (
    email_normalize,
    invitation_accept,
    invitation_accept_own,
    invitation_create,
    invitation_get,
    invitation_revoke,
    member_remove,
    member_role_set,
)
from accounts_service.services.platform import system_account_ensure, usage_service_ensure
from accounts_service.services.sharing import (
    activation_create,
    activation_revoke,
    export_create,
    export_delete,
    import_create,
    import_delete,
)
from accounts_service.services.signing import account_lock, account_resign
from accounts_service.services.teams import (
    DEFAULT_ACCOUNT_NAME,
    platform_team_get,
    team_create,
    team_default_account_ensure,
    team_get_or_create,
    team_member_add,
    team_personal_ensure,
)
from accounts_service.services.tokens import (
    API_TOKEN_PREFIX,
    api_token_create,
    api_token_digest,
    api_token_revoke,
    api_tokens_revoke_all,
    django_user_get,
)
from accounts_service.services.usage import (
    USAGE_ACCOUNT,
    USAGE_EXPORT_SUBJECT,
    USAGE_LOCAL_SUBJECT,
    import_is_builtin,
    usage_export_get,
)
from accounts_service.services.users import (
    CREDS_FIELDS,
    UserSpec,
    creds_filename,
    service_user_ensure,
    user_create,
    user_create_with_creds,
    user_creds_download,
    user_creds_get,
    user_creds_pairing,
    user_delete,
    user_jwt_download,
    user_jwt_path,
    user_revoke,
    user_spec_check,
    user_update,
)

__all__ = [
    "API_TOKEN_PREFIX", "CREDS_FIELDS",
    "DEFAULT_ACCOUNT_NAME", "USAGE_ACCOUNT", "USAGE_EXPORT_SUBJECT", "USAGE_LOCAL_SUBJECT",
    "UserSpec", "account_create", "account_delete", "account_home_region_set", "account_lock", "account_plan_set",
    "account_resign",
    "account_resume", "account_signing_key_add", "account_signing_key_rotate", "account_suspend", "account_update",
    "activation_create", "activation_revoke", "api_token_create", "api_token_digest", "api_token_revoke",
    "api_tokens_revoke_all", "audit_record", "creds_filename", "django_user_get", "email_normalize",
    "export_create", "export_delete", "import_create", "import_delete", "import_is_builtin",
    "invitation_accept", "invitation_accept_own", "invitation_create",
    "invitation_get", "invitation_revoke", "member_remove", "member_role_set", "platform_team_get",
    "service_user_ensure", "system_account_ensure", "team_create", "team_default_account_ensure",
    "team_get_or_create", "team_member_add", "team_personal_ensure", "usage_export_get", "usage_service_ensure",
    "user_create", "user_create_with_creds", "user_creds_download", "user_creds_get", "user_creds_pairing",
    "user_delete", "user_jwt_download", "user_jwt_path", "user_revoke", "user_spec_check",
    "user_update",
]
