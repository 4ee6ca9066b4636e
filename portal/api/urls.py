"""Every API route, under /api/v1/ (namespace ``api``). Paths and field names are stable: scripts
outside the project depend on them. Anything else under /api/v1/ answers a JSON 404."""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView

from portal.api import views
from portal.api.docs import ApiDocs
from portal.api.errors import not_found

app_name = "api"

urlpatterns = [
    path("openapi.json", SpectacularJSONAPIView.as_view(), name="schema"),
    path("docs/", ApiDocs.as_view(url_name="api:schema"), name="docs"),
    path("me", views.Me.as_view(), name="me"),
    path("links", views.Links.as_view(), name="links"),
    path("clients", views.Clients.as_view(), name="clients"),
    path("clients/<int:client_id>", views.ClientDetail.as_view(), name="client"),
    path("accounts/<int:account_id>", views.AccountDetail.as_view(), name="account"),
    path("onboardings", views.Onboardings.as_view(), name="onboardings"),
    path("grants", views.Grants.as_view(), name="grants"),
    path("grants/<int:grant_id>/revoke", views.GrantRevoke.as_view(), name="grant_revoke"),
    path("access", views.Access.as_view(), name="access"),
    path("teams", views.Teams.as_view(), name="teams"),
    path("people", views.People.as_view(), name="people"),
    path("people/<int:person_id>/deactivate", views.PersonDeactivate.as_view(), name="person_deactivate"),
    path("findings", views.Findings.as_view(), name="findings"),
    path("elevations", views.Elevations.as_view(), name="elevations"),
    path("elevations/<int:elevation_id>/approve", views.ElevationApprove.as_view(), name="elevation_approve"),
    path("elevations/<int:elevation_id>/decline", views.ElevationDecline.as_view(), name="elevation_decline"),
    path("checks", views.Checks.as_view(), name="checks"),
    path("checks/<int:check_id>", views.CheckDetail.as_view(), name="check"),
    re_path(r"^.*$", not_found),
]
