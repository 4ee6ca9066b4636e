from django.urls import path

from portal.api import token_views

app_name = "api_tokens"

urlpatterns = [
    path("", token_views.token_list, name="list"),
    path("new/", token_views.token_new, name="new"),
    path("<int:token_id>/revoke/", token_views.token_revoke, name="revoke"),
]
