"""Admin views of the root of trust; sealed seeds are never shown."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from operators.models import IssuedAccountJwt, Operator, SigningKey


@admin.register(Operator)
class OperatorAdmin(ReadOnlyAdmin):
    list_display = ("name", "public_key", "system_account", "strict_signing_key_usage")
    exclude = ("identity_seed",)


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyAdmin):
    list_display = ("public_key", "owner_kind", "owner_public_key", "role")
    exclude = ("seed",)


@admin.register(IssuedAccountJwt)
class IssuedAccountJwtAdmin(ReadOnlyAdmin):
    list_display = ("account_public_key", "iat", "jti", "issued_at")
    search_fields = ("account_public_key", "jti")
