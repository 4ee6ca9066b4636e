"""The API's documentation page: Swagger UI from static files (drf-spectacular-sidecar), its
start-up script a separate file (``?script``), so the page keeps the project's CSP: no CDN, no
inline script or style."""

from __future__ import annotations

from drf_spectacular.views import SpectacularSwaggerSplitView


class ApiDocs(SpectacularSwaggerSplitView):
    template_name = "api/docs.html"
    title = "Switchyard API"
