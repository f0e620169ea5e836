"""The admin base for models staff may look at but not write: every write goes through the services."""

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff may look; every write goes through the services (which re-sign and record).

    ``deletable = False`` also refuses deletion, for records nothing may remove (the usage ledger)."""

    deletable = True

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)
