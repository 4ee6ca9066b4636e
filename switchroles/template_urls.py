from django.urls import path

from switchroles import template_views

app_name = "roletemplates"

urlpatterns = [
    path("", template_views.template_list, name="list"),
    path("new/", template_views.template_new, name="new"),
    path("<int:template_id>/edit/", template_views.template_edit, name="edit"),
]
