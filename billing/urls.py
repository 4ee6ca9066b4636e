from django.urls import path, register_converter

from billing import views


class MonthConverter:
    """YYYY-MM, months 01–12 (a bad month is a 404, never a 500)."""

    regex = r"[0-9]{4}-(?:0[1-9]|1[0-2])"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return value.strftime("%Y-%m") if hasattr(value, "strftime") else str(value)


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
