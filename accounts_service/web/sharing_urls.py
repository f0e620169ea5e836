"""Routes of the sharing pages (exports, activations, imports, the catalog); included into the ``web`` namespace."""

from django.urls import path

from accounts_service.web import sharing

urlpatterns = [
    path("accounts/<str:pk>/exports/", sharing.exports, name="exports"),
    path("accounts/<str:pk>/exports/<int:export_id>/delete", sharing.export_delete, name="export_delete"),
    path("accounts/<str:pk>/exports/<int:export_id>/activations/", sharing.activation_create,
         name="activation_create"),
    path("accounts/<str:pk>/exports/<int:export_id>/activations/<int:activation_id>/revoke",
         sharing.activation_revoke, name="activation_revoke"),
    path("accounts/<str:pk>/imports/", sharing.imports, name="imports"),
    path("accounts/<str:pk>/imports/<int:import_id>/delete", sharing.import_delete, name="import_delete"),
    path("catalog/", sharing.catalog, name="catalog"),
    path("catalog/import", sharing.catalog_import, name="catalog_import"),
]
