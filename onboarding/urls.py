from django.urls import path

from onboarding import adoption_views, handback_views, root_views, views

app_name = "onboarding"

urlpatterns = [
    path("", views.client_list, name="client_list"),
    path("new/", views.client_new, name="client_new"),
    path("<int:client_id>/", views.client_detail, name="client_detail"),
    path("accounts/<int:account_id>/", views.account_detail, name="account_detail"),
    path("accounts/<int:account_id>/progress/", views.account_progress, name="account_progress"),
    path("accounts/<int:account_id>/access-role.yaml", views.access_role_template, name="access_role_template"),
    path("accounts/<int:account_id>/steps/<int:step_id>/retry/", views.step_retry, name="step_retry"),
    path("accounts/<int:account_id>/cancel/", views.account_cancel, name="account_cancel"),
    path("accounts/<int:account_id>/verify-access/", views.access_verify, name="access_verify"),
    path("accounts/<int:account_id>/hand-back/", handback_views.account_handback, name="account_handback"),
    path("<int:client_id>/hand-back/", handback_views.client_handback, name="client_handback"),
    path("accounts/<int:account_id>/access-role/", views.access_role_change, name="access_role_change"),
    path("adopt/", adoption_views.adopt, name="adopt"),
    path("bring-in/", adoption_views.bulk, name="bulk"),
    path("batches/<int:batch_id>/", adoption_views.batch_detail, name="batch_detail"),
    path("root-access/", root_views.root_access, name="root_access"),
    path("root-access/enable/", root_views.root_access_enable, name="root_access_enable"),
    path("root-credentials/", root_views.root_posture_list, name="root_posture_list"),
    path("accounts/<int:account_id>/root/check/", root_views.account_root_check, name="account_root_check"),
    path("accounts/<int:account_id>/root/remove/", root_views.account_root_remove, name="account_root_remove"),
]
