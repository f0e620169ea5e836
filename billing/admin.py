"""Staff edit plans in the admin; the ledger is read-only there."""

from django.contrib import admin

from billing.models import Plan, UsageHour


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "conn", "data_bytes", "base_price_cents", "overage_cents_per_gib")
    ordering = ("sort_order",)


@admin.register(UsageHour)
class UsageHourAdmin(admin.ModelAdmin):
    list_display = ("account_public_key", "hour", "sent_msgs", "sent_bytes", "received_msgs", "received_bytes",
                    "connection_seconds", "peak_connections")
    list_filter = ("hour",)
    search_fields = ("account_public_key",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
