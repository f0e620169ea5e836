"""Staff edit plans in the admin; the ledger is read-only there."""

from django.contrib import admin

from billing.invoices import invoice_mark_paid
from billing.models import Invoice, InvoiceLine, Plan, UsageHour
from billing.plans import plan_save
from core.admin import ReadOnlyAdmin


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "title", "conn", "base_price_cents", "data_bytes", "overage_cents_per_gib",
                    "connection_hours", "connection_cents_per_1000_hours", "storage_gib_hours",
                    "storage_cents_per_1000_gib_hours")
    ordering = ("sort_order",)
    fieldsets = (
        (None, {"fields": ("name", "title", "sort_order", "accounts_per_team")}),
        ("Price and allowances (per calendar month, prorated by the seconds an account holds the plan; cents of "
         "BILLING_CURRENCY; an allowance of -1 is unlimited, a unit price of 0 is not billed)",
         {"fields": ("base_price_cents", "data_bytes", "overage_cents_per_gib", "connection_hours",
                     "connection_cents_per_1000_hours", "storage_gib_hours", "storage_cents_per_1000_gib_hours")}),
        ("Limits (the ceilings of its accounts' JWTs)",
         {"fields": ("conn", "payload", "subs", "leaf", "imports", "exports", "mem_storage", "disk_storage",
                     "streams", "consumer")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return ("name",) if obj is not None else ()  # accounts name their plan: a rename would orphan them

    def save_model(self, request, obj, form, change):
        plan_save(plan=obj)  # the accounts on it are re-signed with the new ceilings


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = ("position", "kind", "description", "account_name", "plan", "starts_at", "ends_at", "measured",
                       "included", "billed", "quantity", "unit_cents", "amount_cents")
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
