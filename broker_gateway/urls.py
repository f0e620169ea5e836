"""Routes of the fleet: REST API v1 (mounted under ``api/v1/``), the staff pages (under ``staff/``) and the
tenant-facing pages (at the root)."""

from django.urls import path

from broker_gateway import api, staff_views, views
from broker_gateway.models import BrokerNode

api_urlpatterns = [
    path("accounts/<str:account_pk>/status", api.AccountStatusApi.as_view(), name="api-account-status"),
    path("accounts/<str:account_pk>/home-region", api.AccountHomeRegionApi.as_view(), name="api-account-home-region"),
    path("accounts/<str:account_pk>/users/<str:user_pk>/leafnode", api.UserLeafnodeApi.as_view(),
         name="api-user-leafnode"),
    path("accounts/<str:account_pk>/users/<str:user_pk>/test", api.UserConnectionTestApi.as_view(),
         name="api-user-test"),
    path("fleet/nodes/", api.FleetNodeListApi.as_view(), name="api-fleet-nodes"),
    path("connect", api.ConnectApi.as_view(), name="api-connect"),
    path("diagnose", api.DiagnoseApi.as_view(), name="api-diagnose"),
]

staff_urlpatterns = [
    path("fleet/", staff_views.fleet_nodes, name="fleet-nodes"),
    path("fleet/nodes-fragment", staff_views.fleet_nodes_fragment, name="fleet-nodes-fragment"),
    path("fleet/nodes/<str:name>/start", staff_views.fleet_node_desired, {"desired": BrokerNode.Desired.RUNNING},
         name="fleet-node-start"),
    path("fleet/nodes/<str:name>/stop", staff_views.fleet_node_desired, {"desired": BrokerNode.Desired.STOPPED},
         name="fleet-node-stop"),
    path("fleet/nodes/<str:name>/remove", staff_views.fleet_node_remove, name="fleet-node-remove"),
    path("fleet/regions/<str:region>/drain", staff_views.fleet_region_desired, {"desired": BrokerNode.Desired.STOPPED},
         name="fleet-region-drain"),
    path("fleet/regions/<str:region>/resume", staff_views.fleet_region_desired, {"desired": BrokerNode.Desired.RUNNING},
         name="fleet-region-resume"),
    path("out-of-sync/", staff_views.fleet_out_of_sync, name="staff-out-of-sync"),
    path("tenants/", staff_views.staff_tenants, name="staff-tenants"),
    path("tenants/<slug:slug>/", staff_views.staff_tenant, name="staff-tenant"),
]

web_urlpatterns = [
    path("accounts/<str:account_pk>/propagation", views.account_propagation_fragment, name="account-propagation"),
    path("accounts/<str:account_pk>/users/<str:upk>/leafnode", views.user_leafnode, name="user-leafnode"),
    path("connect/", views.connect, name="connect"),
    path("diagnose/", views.diagnose, name="diagnose"),
    path("accounts/<str:account_pk>/home-region", views.account_home_region, name="account-home-region"),
]
