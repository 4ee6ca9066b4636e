"""Security headers on every response, signed in or not: a Content-Security-Policy that allows no
inline script (nor 'unsafe-eval'), nosniff, a same-origin Referrer-Policy and no framing, on every
URL of the project (HSTS in production: test_settings)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import MakePerson
from tests.security.support import AwsUnreachable, all_routes, build_world, path_of, replace_client_factory

pytestmark = pytest.mark.django_db


def _assert_hardened(response: object) -> None:
    csp = response["Content-Security-Policy"]  # type: ignore[index]
    directives = {part.split()[0]: part.split()[1:] for part in csp.split(";") if part.strip()}
    assert directives["script-src"] == ["'self'"]
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["frame-ancestors"] == ["'none'"]
    assert response["X-Content-Type-Options"] == "nosniff"  # type: ignore[index]
    assert response["Referrer-Policy"] == "same-origin"  # type: ignore[index]
    assert response["X-Frame-Options"] == "DENY"  # type: ignore[index]


@pytest.mark.parametrize("url_name", ["account_login", "healthz", "home"])
def test_anonymous_responses_are_hardened(url_name: str) -> None:
    _assert_hardened(Client().get(reverse(url_name)))


def test_signed_in_pages_are_hardened(make_person: MakePerson, signed_in: object) -> None:
    client = signed_in(make_person("morgan", "Manager"))  # type: ignore[operator]

    _assert_hardened(client.get(reverse("home")))


def test_pages_carry_no_inline_script(make_person: MakePerson, signed_in: object) -> None:
    client = signed_in(make_person("morgan", "Manager"))  # type: ignore[operator]

    html = client.get(reverse("home")).content.decode()

    assert "<script>" not in html and " onclick=" not in html and " style=" not in html
    assert 'src="/static/js/htmx.min.js"' in html


# --- every URL of the project, as a manager and as an auditor ------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<[^>]*\sstyle\s*=", re.IGNORECASE)


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


@pytest.mark.parametrize("persona", ["mgr", "aud"])
def test_every_page_carries_the_security_headers(
    persona: str, make_person: MakePerson, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    # Given a world with a row behind every id, and a manager or an auditor (AWS unreachable: the
    # hand-back pages ask it)
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    replace_client_factory(monkeypatch, AwsUnreachable())
    world = build_world(make_person)
    browser = world.client_for(persona)
    pages = 0
    failures: list[str] = []

    # When they GET every URL of the project
    for route in all_routes():
        path = path_of(route, world)
        response = browser.get(path)
        pages += response.status_code == 200

        # Then every answer (page, download, redirect or refusal) is hardened
        try:
            _assert_hardened(response)
        except (AssertionError, KeyError) as problem:
            failures.append(f"{route.name} {path}: {response.status_code} {problem!r}")
        # and our own HTML pages carry no inline script, handler or style (the CSP would block them)
        if response.status_code == 200 and "html" in response.get("Content-Type", "") and not route.is_admin:
            html = _body(response).decode()
            for name, pattern in (("script", INLINE_SCRIPT), ("handler", INLINE_HANDLER), ("style", INLINE_STYLE)):
                found = pattern.search(html)
                if found:
                    failures.append(f"{route.name} {path}: inline {name} {found.group(0)[:80]!r}")
    assert pages > 40
    assert not failures, "\n".join(failures)
