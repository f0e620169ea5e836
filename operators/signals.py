"""Signals of the root of trust."""

from django.dispatch import Signal

# Sent on commit after an account JWT is issued; kwargs: account_public_key, jti, iat.
account_jwt_issued = Signal()
