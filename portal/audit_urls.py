from django.urls import path

from portal import audit_views

app_name = "audit"

urlpatterns = [
    path("", audit_views.events, name="index"),
    path("events/", audit_views.events, name="events"),
]
