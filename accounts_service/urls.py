"""URL conf of the project."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts_service import views
from accounts_service.api import urls as api_urls
from accounts_service.web import urls as web_urls
from billing import api as billing_api
from billing import api_bills
from billing import urls as billing_urls
from broker_gateway import urls as fleet_urls
from broker_gateway import views as fleet_views
from payouts import urls as payout_urls

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    # Browsers ask for /favicon.ico whatever the page says: send them to the icon (a 404 fills every access log).
    path("favicon.ico", RedirectView.as_view(url=static("img/favicon.svg"), permanent=True), name="favicon"),
    path("readyz", fleet_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_urls.urlpatterns)),
    path("api/v1/", include(fleet_urls.api_urlpatterns)),
    path("api/v1/", include(payout_urls.api_urlpatterns)),
    path("api/v1/accounts/<str:account_pk>/usage", billing_api.AccountUsageApi.as_view(), name="api-account-usage"),
    path("api/v1/accounts/<str:account_pk>/bill", api_bills.AccountBillApi.as_view(), name="api-account-bill"),
    path("api/v1/teams/<int:team_id>/bill", api_bills.TeamBillApi.as_view(), name="api-team-bill"),
    path("api/v1/plans/", billing_api.PlanListApi.as_view(), name="api-plan-list"),
    path("api/v1/invoices/", billing_api.InvoiceListApi.as_view(), name="api-invoice-list"),
    path("api/v1/invoices/<str:number>", billing_api.InvoiceDetailApi.as_view(), name="api-invoice-detail"),
    path("staff/", include(fleet_urls.staff_urlpatterns)),
    path("", include(web_urls)),
    path("", include(billing_urls)),
    path("", include(fleet_urls.web_urlpatterns)),
    path("", include(payout_urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's init script as a file (/api/docs/?script), so the page keeps the console's
    # CSP (script-src 'self'); templates/api_docs.html moves the package page's inline style element to a file.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs.html"),
         name="api-docs"),
]

handler404 = "accounts_service.views.not_found"
handler400 = "accounts_service.views.bad_request"
