"""Routes of the fleet: REST API v1 (mounted under ``api/v1/``) and the staff pages (under ``staff/``)."""

from django.urls import path

from broker_gateway import api, views

api_urlpatterns = [
    path("accounts/<str:account_pk>/status", api.AccountStatusApi.as_view(), name="api-account-status"),
    path("fleet/nodes/", api.FleetNodeListApi.as_view(), name="api-fleet-nodes"),
    path("connect", api.ConnectApi.as_view(), name="api-connect"),
]

staff_urlpatterns = [
    path("fleet/", views.fleet_nodes, name="fleet-nodes"),
]
