from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from portal import notification_views, views

# The Django admin signs people in through allauth (password + TOTP), never its own form.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]
admin.site.site_header = "Switchyard administration"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("clients/", include("onboarding.urls")),
    path("templates/", include("switchroles.template_urls")),
    path("", include("switchroles.urls")),
    path("audit/", include("portal.audit_urls")),
    path("billing/", include("billing.urls")),
    path("notifications/", notification_views.notification_preferences, name="notification_preferences"),
    path("api/v1/", include("portal.api.urls")),
    path("accounts/api-tokens/", include("portal.api.token_urls")),
    path("", include("elevations.urls")),
    path("client/", include("elevations.client_urls")),
]
