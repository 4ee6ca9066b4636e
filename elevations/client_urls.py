from django.urls import path

from elevations import views

app_name = "client"

urlpatterns = [
    path("", views.client_index, name="index"),
    path("evidence.zip", views.client_evidence, name="evidence"),
    path("log/", views.client_log, name="log"),
    path("log.csv", views.client_log_csv, name="log_csv"),
]
