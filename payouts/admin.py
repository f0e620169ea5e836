"""Payout statements in the admin: read-only (they are written once, by payouts.services.payout_run)."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from payouts.models import PayoutLine, PayoutStatement


class PayoutLineInline(admin.TabularInline):
    model = PayoutLine
    extra = 0
    can_delete = False
    fields = readonly_fields = ("position", "bucket", "payee_name", "basis_quantity", "basis_unit", "cents")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PayoutStatement)
class PayoutStatementAdmin(ReadOnlyAdmin):
    list_display = ("period_start", "currency", "collected_cents", "operators_cents", "publishers_cents",
                    "community_cents", "created_by")
    inlines = [PayoutLineInline]
    deletable = False  # a statement paid out is history
