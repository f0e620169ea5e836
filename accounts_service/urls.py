"""URL conf of the project."""

from django.contrib import admin
from django.urls import include, path

from accounts_service import views
from broker_gateway import urls as fleet_urls

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(fleet_urls.api_urlpatterns)),
    path("staff/", include(fleet_urls.staff_urlpatterns)),
]
