"""Models of the tenant domain: teams, NATS accounts, users, exports, imports, activations, API tokens, audit."""

from accounts_service.models.accounts import (
    LIMIT_FIELDS,
    LIMIT_HELP,
    Account,
    NatsUser,
    NatsUserQuerySet,
    PlanSpan,
    Revocation,
)
from accounts_service.models.people import (
    ApiToken,
    AttemptCounter,
    AuditEvent,
    AuditEventQuerySet,
    Invitation,
)
from accounts_service.models.sharing import (
    Activation,
    Export,
    Import,
)
from accounts_service.models.tenancy import (
    AccountChildQuerySet,
    AccountQuerySet,
    Team,
    TeamMembership,
    TeamQuerySet,
    TenantQuerySet,
)

__all__ = [
    "LIMIT_FIELDS",
    "LIMIT_HELP",
    "Account",
    "AccountChildQuerySet",
    "AccountQuerySet",
    "Activation",
    "ApiToken",
    "AttemptCounter",
    "AuditEvent",
    "AuditEventQuerySet",
    "Export",
    "Import",
    "Invitation",
    "NatsUser",
    "NatsUserQuerySet",
    "PlanSpan",
    "Revocation",
    "Team",
    "TeamMembership",
    "TeamQuerySet",
    "TenantQuerySet",
]
