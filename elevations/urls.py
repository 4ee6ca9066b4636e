from django.urls import path

from elevations import views

app_name = "elevations"

urlpatterns = [
    path("elevations/", views.elevation_list, name="list"),
    path("elevations/new/", views.elevation_new, name="new"),
    path("elevations/<int:request_id>/", views.elevation_detail, name="detail"),
    path("elevations/<int:request_id>/decide/", views.elevation_decide, name="decide"),
    path("elevations/<int:request_id>/end/", views.elevation_end, name="end"),
    path("elevations/<int:request_id>/emergency/", views.elevation_emergency, name="emergency"),
    path("clients/<int:client_id>/contacts/", views.client_contacts, name="client_contacts"),
    path("invitation/<str:uidb64>/<str:token>/", views.contact_accept, name="contact_accept"),
]
