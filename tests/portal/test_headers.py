"""Security headers on every response, signed in or not."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.conftest import MakePerson

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
