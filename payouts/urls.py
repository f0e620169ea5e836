"""Routes of payouts: REST API v1 (mounted under ``api/v1/``) and the pages (namespace ``payouts``)."""

from django.urls import path

from payouts import api, web

api_urlpatterns = [
    path("payouts/", api.PayoutLineListApi.as_view(), name="api-payout-list"),
    path("payouts/operators/", api.MyOperatorListApi.as_view(), name="api-payout-operators"),
    path("payouts/statements/", api.StatementListApi.as_view(), name="api-payout-statements"),
    path("payouts/statements/<str:period>", api.StatementDetailApi.as_view(), name="api-payout-statement"),
    path("payouts/statements/<str:period>/csv", api.StatementCsvApi.as_view(), name="api-payout-statement-csv"),
    path("node-operators/", api.OperatorListApi.as_view(), name="api-node-operators"),
    path("node-operators/<slug:slug>/members/", api.OperatorMemberListApi.as_view(),
         name="api-node-operator-members"),
    path("node-operators/<slug:slug>/members/<str:username>", api.OperatorMemberDetailApi.as_view(),
         name="api-node-operator-member"),
    path("fleet/nodes/<str:name>/operator", api.NodeOperatorAssignApi.as_view(), name="api-node-operator-assign"),
]

app_name = "payouts"

urlpatterns = [
    path("payouts/", web.my_payouts, name="mine"),
    path("staff/payouts/", web.statements, name="statements"),
    path("staff/payouts/<str:period>/", web.statement, name="statement"),
    path("staff/payouts/<str:period>/download.<str:fmt>", web.statement_download, name="statement_download"),
    path("staff/operators/", web.operators, name="operators"),
    path("staff/operators/<slug:slug>/members/<str:action>", web.operator_member, name="operator_member"),
    path("staff/nodes/<str:name>/operator", web.node_assign, name="node_assign"),
]
