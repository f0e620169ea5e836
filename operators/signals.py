"""Signals of the root of trust."""

from django.dispatch import Signal

# Sent on commit after an account JWT is issued; kwargs: account_public_key, jti, iat.
account_jwt_issued = Signal()

# Sent inside ``operator_init``'s transaction, whether it created the operator or found it; kwargs: operator. The
# tenant app makes the system account's row (so an operator never exists without it, and operators imports no app).
operator_ready = Signal()
