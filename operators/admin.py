"""Admin views of the root of trust; sealed seeds are never shown."""

from django.contrib import admin

from operators.models import IssuedAccountJwt, Operator, SigningKey


@admin.register(Operator)
class OperatorAdmin(admin.ModelAdmin):
    list_display = ("name", "public_key", "system_account", "strict_signing_key_usage")
    exclude = ("identity_seed",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    list_display = ("public_key", "owner_kind", "owner_public_key", "role")
    exclude = ("seed",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(IssuedAccountJwt)
class IssuedAccountJwtAdmin(admin.ModelAdmin):
    list_display = ("account_public_key", "iat", "jti", "issued_at")
    search_fields = ("account_public_key", "jti")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
