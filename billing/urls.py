from django.urls import path, register_converter

from billing import views
from billing.converters import MonthConverter

register_converter(MonthConverter, "month")

app_name = "billing"
urlpatterns = [
    path("", views.index, name="index"),
    path("<month:month>/", views.month, name="month"),
    path("<month:month>/clients.csv", views.clients_csv, name="clients_csv"),
    path("<month:month>/accounts.csv", views.accounts_csv, name="accounts_csv"),
    path("<month:month>/refetch/", views.refetch, name="refetch"),
    path("<month:month>/clients/<int:client_id>/", views.invoice, name="invoice"),
    path("<month:month>/clients/<int:client_id>/invoice.csv", views.invoice_csv, name="invoice_csv"),
    path("clients/<int:client_id>/markup/", views.markup, name="markup"),
]
