"""Admin views for staff: read-mostly, so every write still goes through the services."""

from django.contrib import admin

from accounts_service.models import Account, Activation, ApiToken, Export, Import, NatsUser, Team, TeamMembership
from core.admin import ReadOnlyAdmin as ReadOnly


class MembershipInline(admin.TabularInline):
    model = TeamMembership
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_personal", "is_platform", "created_at")
    search_fields = ("name", "slug")
    inlines = [MembershipInline]


@admin.register(Account)
class AccountAdmin(ReadOnly):
    list_display = ("name", "team", "public_key", "version", "conn", "is_system", "updated_at")
    search_fields = ("name", "public_key")
    exclude = ("identity_seed",)


@admin.register(NatsUser)
class NatsUserAdmin(ReadOnly):
    list_display = ("name", "account", "public_key", "revoked_at", "expires_at")
    search_fields = ("name", "public_key")
    exclude = ("seed",)


@admin.register(Export)
class ExportAdmin(ReadOnly):
    list_display = ("account", "name", "subject", "type", "token_req")


@admin.register(Import)
class ImportAdmin(ReadOnly):
    list_display = ("account", "subject", "local_subject", "export")


@admin.register(Activation)
class ActivationAdmin(ReadOnly):
    list_display = ("export", "target_public_key", "subject", "expires_at", "revoked_at")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnly):
    list_display = ("user", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    exclude = ("digest",)
