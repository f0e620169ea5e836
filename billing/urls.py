"""Billing's dashboard pages (namespace ``billing``)."""

from django.urls import path

from billing import web

app_name = "billing"

urlpatterns = [
    path("accounts/<str:pk>/usage/", web.account_usage_page, name="account_usage"),
    path("accounts/<str:pk>/plan/", web.account_plan_page, name="account_plan"),
    path("accounts/<str:pk>/plan/<slug:name>/", web.account_plan_confirm, name="account_plan_confirm"),
    path("teams/<slug:slug>/invoices/", web.invoices_page, name="invoices"),
    path("teams/<slug:slug>/invoices/<str:number>/", web.invoice_page, name="invoice"),
    path("teams/<slug:slug>/invoices/<str:number>/download.<str:fmt>", web.invoice_download, name="invoice_download"),
]
