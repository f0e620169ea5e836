"""NATS JWT v2: build, sign, decode and verify operator, account, user, activation and generic claims.

One module per claim type, as nats-io/jwt v2 has one file per claim type: ``common`` (header, claim types,
errors, encode/sign/decode, times), ``permissions``, ``operator``, ``account``, ``user``, ``activation``,
``generic`` and ``trust`` (issuer checks). Pure code, no Django. Callers use this package's names
(``claims.decode``, ``claims.AccountLimits``); which module holds them is not part of the contract.
"""

from operators.claims.account import (
    AccountLimits,
    Export,
    Import,
    JetStreamLimits,
    WeightedMapping,
    account_nats,
    jetstream_server_reading,
    jetstream_tenant_limits,
)
from operators.claims.activation import activation_nats
from operators.claims.common import (
    ACCOUNT,
    ACTIVATION,
    ALGORITHM,
    CLAIM_TYPES,
    GENERIC,
    LIB_VERSION,
    OPERATOR,
    UNLIMITED,
    USER,
    Jwt,
    JwtError,
    NkeyAlgorithm,
    Signed,
    decode,
    encode,
    encode_signed,
)
from operators.claims.generic import delete_nats
from operators.claims.operator import operator_nats
from operators.claims.permissions import Permission, Permissions, ResponsePermission
from operators.claims.trust import issuer_problems
from operators.claims.user import TimeRange, UserLimits, UserScope, user_nats

__all__ = [
    "ACCOUNT",
    "ACTIVATION",
    "ALGORITHM",
    "CLAIM_TYPES",
    "GENERIC",
    "LIB_VERSION",
    "OPERATOR",
    "UNLIMITED",
    "USER",
    "AccountLimits",
    "Export",
    "Import",
    "JetStreamLimits",
    "Jwt",
    "JwtError",
    "NkeyAlgorithm",
    "Permission",
    "Permissions",
    "ResponsePermission",
    "Signed",
    "TimeRange",
    "UserLimits",
    "UserScope",
    "WeightedMapping",
    "account_nats",
    "activation_nats",
    "decode",
    "delete_nats",
    "encode",
    "encode_signed",
    "issuer_problems",
    "jetstream_server_reading",
    "jetstream_tenant_limits",
    "operator_nats",
    "user_nats",
]
