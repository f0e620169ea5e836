"""Staff edit plans in the admin; the ledger is read-only there."""

from django.contrib import admin

from billing.invoices import invoice_mark_paid
from billing.models import Invoice, InvoiceLine, Plan, UsageHour
from billing.plans import plan_save
from core.admin import ReadOnlyAdmin


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "conn", "data_bytes", "base_price_cents", "overage_cents_per_gib")
    ordering = ("sort_order",)

    def get_readonly_fields(self, request, obj=None):
        return ("name",) if obj is not None else ()  # accounts name their plan: a rename would orphan them

    def save_model(self, request, obj, form, change):
        plan_save(plan=obj)  # the accounts on it are re-signed with the new ceilings


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = ("position", "kind", "description", "account_name", "plan", "quantity", "unit_cents",
                       "amount_cents", "used_bytes", "allowance_bytes")
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ("number", "team", "period_start", "total_cents", "status", "provider", "paid_at")
    list_filter = ("status", "period_start")
    search_fields = ("number", "team__name")
    inlines = [InvoiceLineInline]
    actions = ["mark_paid"]
    readonly_fields = ("team", "number", "period_start", "period_end", "currency", "total_cents", "status",
                       "provider", "provider_reference", "issued_at", "paid_at")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Mark paid (payment received outside the provider)")
    def mark_paid(self, request, queryset):
        for invoice in queryset:
            invoice_mark_paid(invoice=invoice)


@admin.register(UsageHour)
class UsageHourAdmin(ReadOnlyAdmin):
    list_display = ("account_public_key", "hour", "sent_msgs", "sent_bytes", "received_msgs", "received_bytes",
                    "connection_seconds", "peak_connections")
    list_filter = ("hour",)
    search_fields = ("account_public_key",)
    deletable = False  # the ledger invoices are computed from
