"""The OpenAPI schema at /api/v1/openapi.json is valid OpenAPI 3 and describes every API route;
its docs page is Swagger UI from our own static files, within the project's CSP."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from tests.security.support import all_routes

pytestmark = pytest.mark.django_db


def _schema() -> dict:
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_the_schema_is_valid_openapi() -> None:
    schema = _schema()

    validate(schema)  # raises on any violation of the OpenAPI 3.0 specification

    assert schema["openapi"].startswith("3.0")
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": "A personal API token from your account's API tokens page."}


def test_the_validator_catches_a_broken_schema() -> None:
    # The check above could not pass on a schema that breaks the specification.
    broken = _schema()
    broken["paths"]["/api/v1/me"]["get"]["responses"] = {"200": {"content": "not an object"}}

    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_the_schema_describes_every_api_route_with_its_answers() -> None:
    # Given every API route but the schema and its docs page
    routes = [r for r in all_routes() if r.name.startswith("api:") and r.name not in {"api:schema", "api:docs"}]
    paths = _schema()["paths"]
    described = {re.sub(r"\{(\w+)\}", r"<\1>", path) for path in paths}

    # Then each is in the schema (and nothing else is), with its token requirement and its error answers
    from django.urls import reverse

    paths_of_routes = set()
    for route in routes:
        path = reverse(route.name, kwargs={argument: 7 for argument in route.kwargs})
        for argument in route.kwargs:
            path = path.replace("/7", f"/<{argument}>", 1)
        paths_of_routes.add(path)
    assert described == paths_of_routes
    assert "/api/v1/grants/<grant_id>/revoke" in described and len(described) == 18
    for operations in paths.values():
        for operation in operations.values():
            assert operation["security"] == [{"bearerAuth": []}]
            assert {"401", "403", "429"} <= set(operation["responses"])


def test_the_docs_page_is_swagger_ui_from_our_static_files_without_inline_code() -> None:
    # When anyone opens the docs page
    response = Client().get("/api/v1/docs/")

    # Then it loads Swagger UI and its start-up script from this site only
    assert response.status_code == 200
    html = response.content.decode()
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources, html
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in sources
    # with no inline script, style or handler (the CSP would block them)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html and not re.search(r"\son\w+=", html)
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    # and every file it names is served, the start-up script pointing Swagger UI at our schema
    for source in sources:
        served = Client().get(source)
        assert served.status_code == 200, source
        body = b"".join(served.streaming_content) if served.streaming else served.content  # type: ignore[attr-defined]
        assert body, source
    script = Client().get("/api/v1/docs/?script")
    assert script["Content-Type"].startswith("application/javascript")
    assert 'url: "/api/v1/openapi.json"' in script.content.decode()
