"""Walk every URL name: before a completed MFA sign-in, nothing answers but sign-in, MFA and health."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.conftest import MakePerson

pytestmark = pytest.mark.django_db

# The pages that must answer a person who has not completed sign-in.
PUBLIC = {
    "account_login", "account_signup", "account_reset_password", "account_reset_password_done",
    "account_reset_password_from_key", "account_reset_password_from_key_done", "account_inactive",
    "account_logout", "account_confirm_email", "account_email_verification_sent",
    "account_login_code_confirm", "account_request_login_code", "account_confirm_login_code",
    "account_reset_password_code", "account_reset_password_code_confirm",
    "mfa_authenticate", "healthz",
}
# With a password but no authenticator yet: enrolment and sign-out only.
ENROLMENT = {"mfa_activate_totp", "account_logout", "account_reauthenticate", "healthz"}
# The JSON API answers by bearer token alone: without one, 401 in JSON (a session counts for nothing);
# its schema and docs page, which hold no data, answer anyone.
API_PREFIX = "/api/v1/"
API_PUBLIC = {"/api/v1/openapi.json", "/api/v1/docs/"}


def _api_answer(path: str, response: object) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    if path in API_PUBLIC:
        assert status == 200, f"{path} answered {status}"
        return
    assert status == 401, f"{path} answered {status}"
    assert response["Content-Type"] == "application/json"  # type: ignore[index]


# Path converters with a format of their own: a well-formed sample (billing's YYYY-MM month).
SAMPLES = {"int": "1", "month": "2026-01"}


def _sample(part: str) -> str:
    return re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: SAMPLES.get(m.group(1) or "", "x1"), part)


def walk(patterns: list[URLPattern | URLResolver] | None = None, prefix: str = "") -> Iterator[tuple[str, str]]:
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + route)
        elif entry.name:
            if route.startswith("^"):  # admin regexes: sample a plain path
                route = re.sub(r"\(\?P<\w+>[^)]*\)", "1", route.lstrip("^").rstrip("$")).replace("\\", "")
            yield entry.name, "/" + _sample(prefix + route)


ALL_URLS = sorted(set(walk()))


@pytest.mark.parametrize(("name", "path"), ALL_URLS, ids=[f"{n}:{p}" for n, p in ALL_URLS])
def test_anonymous_people_reach_only_sign_in_mfa_and_health(name: str, path: str) -> None:
    response = Client().get(path)

    if path.startswith(API_PREFIX):
        return _api_answer(path, response)
    if name in PUBLIC:
        return
    assert response.status_code in {302, 404, 405}, f"{name} answered {response.status_code}"
    if response.status_code == 302:
        # The admin's own login page only forwards to allauth's (tested in test_sign_in).
        assert response["Location"].startswith(("/accounts/login/", "/admin/login/")) or (
            name == "logout" and response["Location"] == "/admin/"
        ), response["Location"]


@pytest.mark.parametrize(("name", "path"), ALL_URLS, ids=[f"{n}:{p}" for n, p in ALL_URLS])
def test_without_mfa_only_enrolment_answers(name: str, path: str, make_person: MakePerson) -> None:
    person = make_person("nomfa", "Manager", "Engineer", "Auditor", mfa=False, is_staff=True)
    client = Client()
    client.force_login(person, backend="django.contrib.auth.backends.ModelBackend")

    response = client.get(path)

    if path.startswith(API_PREFIX):
        return _api_answer(path, response)
    if name in ENROLMENT:
        return
    assert response.status_code in {302, 404}, f"{name} answered {response.status_code}"
    if response.status_code == 302:
        assert response["Location"] == "/accounts/2fa/totp/activate/", f"{name} → {response['Location']}"
