"""The API's docs page in a real browser, under the project's CSP: Swagger UI renders every
endpoint from our own static files, nothing is blocked or fetched from elsewhere, and a person's
token works from it ("Try it out" on GET /api/v1/me)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from portal.api.tokens import api_token_create
from tests.conftest import MakePerson

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_docs_page_renders_the_schema_and_calls_the_api_with_a_token(
    live_server: object, page: Page, make_person: MakePerson
) -> None:
    # Given an engineer's read-only token, and a browser noting every request and CSP complaint
    engineer = make_person("eli", "Engineer")
    secret = api_token_create(owner=engineer, name="docs", scope="read", lifetime_days=1).secret
    base = live_server.url  # type: ignore[attr-defined]
    hosts: set[str] = set()
    complaints: list[str] = []
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    page.on("console", lambda message: complaints.append(message.text)
            if "Content Security Policy" in message.text or message.type == "error" else None)

    # When they open the docs page
    page.goto(f"{base}/api/v1/docs/")

    # Then Swagger UI lists every endpoint of the schema, loaded from this site alone, with no CSP violation
    # (the schema as the live server serves it, after Swagger UI has read it: one generation at a time)
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    schema = json.loads(page.request.get(f"{base}/api/v1/openapi.json").body())
    operations = sum(1 for methods in schema["paths"].values() for method in methods
                     if method in {"get", "post", "put", "patch", "delete"})
    expect(page.locator(".opblock-summary-path")).to_have_count(operations)
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/grants/{grant_id}/revoke")).to_be_visible()
    assert hosts == {urlsplit(base).netloc}, hosts

    # When they authorise with their token and try GET /api/v1/me
    page.get_by_role("button", name="Authorize").first.click()
    page.locator(".auth-container input").first.fill(secret)
    page.locator(".auth-btn-wrapper button.authorize").click()
    page.locator(".auth-btn-wrapper button.btn-done").click()
    page.locator(".opblock-summary-path", has_text="/api/v1/me").click()
    page.get_by_role("button", name="Try it out").click()
    page.get_by_role("button", name="Execute").click()

    # Then the API answers them, by the token alone
    expect(page.locator(".responses-inner .response-col_description .highlight-code").first).to_contain_text('"eli"')
    assert not complaints, complaints
