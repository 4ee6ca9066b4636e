"""Personal API tokens: created on the person's own page after re-authentication and shown once,
stored hashed, listed with their last use, revoked; each call acts with the owner's capabilities
as they are at that moment; rate-limited per token; never a session."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from portal.api.models import ApiToken
from portal.audit.models import AuditEvent
from portal.people.models import User
from tests.api.conftest import ApiClient, MakeToken
from tests.conftest import MakePerson
from tests.security.support import mark_recently_authenticated, signed_in_client

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"sy_[a-z0-9]{12}_[A-Za-z0-9_-]{43}")


def _create_on_the_page(person: User, **fields: str) -> Any:
    browser = signed_in_client(person, seconds_ago=5)
    form = {"name": "PSA hook", "scope": "read-write", "lifetime_days": "30", **fields}
    return browser, browser.post(reverse("api_tokens:new"), form)


def test_a_person_creates_a_token_on_their_page_and_sees_it_once(engineer: User) -> None:
    # When an engineer who has just re-entered their password creates a token
    browser, response = _create_on_the_page(engineer)

    # Then the page shows the token, once, not to be cached
    assert response.status_code == 200
    shown = TOKEN.findall(response.content.decode())
    assert len(set(shown)) == 1
    secret = shown[0]
    assert "no-store" in response["Cache-Control"]
    # and only its hash is stored; the list shows its prefix, never the secret
    token = ApiToken.objects.get(owner=engineer)
    assert token.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(ApiToken.objects.values()))
    listing = browser.get(reverse("api_tokens:list")).content.decode()
    assert secret not in listing and f"sy_{token.prefix}_" in listing
    # and it works, as the engineer
    assert ApiClient(secret).get("/api/v1/me").json()["username"] == engineer.username
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.actor == engineer and secret not in str(event.details)


def test_creating_a_token_needs_a_fresh_password(engineer: User) -> None:
    # Given a person whose password entry is older than the re-authentication timeout
    browser = signed_in_client(engineer, seconds_ago=3600)

    # When they ask for a token
    response = browser.post(reverse("api_tokens:new"), {"name": "x", "scope": "read", "lifetime_days": "30"})

    # Then they are asked for their password first, and no token exists
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_reauthenticate"))
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"lifetime_days": "91"}, "lifetime_days", "Ensure this value is less than or equal to 90."),
    ({"lifetime_days": "0"}, "lifetime_days", "Ensure this value is greater than or equal to 1."),
    ({"name": ""}, "name", "This field is required."),
    ({"scope": "admin"}, "scope", "Select a valid choice. admin is not one of the available choices."),
])
def test_a_bad_token_form_says_why_under_its_field_and_creates_nothing(
    engineer: User, fields: dict[str, str], field: str, message: str
) -> None:
    _, response = _create_on_the_page(engineer, **fields)

    assert response.status_code == 400
    html = response.content.decode()
    assert f'id="id_{field}_errors"' in html and message in html
    assert not ApiToken.objects.exists()


def test_the_list_shows_last_use_and_a_person_revokes_their_token(engineer: User, make_token: MakeToken) -> None:
    # Given a token that was used once
    secret = make_token(engineer)
    assert ApiClient(secret).get("/api/v1/me").status_code == 200
    token = ApiToken.objects.get(owner=engineer)
    assert token.last_used_at is not None
    browser = signed_in_client(engineer)
    listing = browser.get(reverse("api_tokens:list")).content.decode()
    assert token.last_used_at.strftime("%Y-%m-%d %H:%M") in listing

    # When its owner revokes it
    response = browser.post(reverse("api_tokens:revoke", args=[token.pk]))

    # Then it no longer works, and the revocation is audited
    assert response.status_code == 302
    assert ApiClient(secret).get("/api/v1/me").status_code == 401
    assert AuditEvent.objects.filter(action="api_token.revoked", actor=engineer).count() == 1


def test_nobody_revokes_another_persons_token(engineer: User, manager: User, make_token: MakeToken) -> None:
    secret = make_token(engineer)
    token = ApiToken.objects.get(owner=engineer)

    response = signed_in_client(manager).post(reverse("api_tokens:revoke", args=[token.pk]))

    assert response.status_code == 404
    assert ApiClient(secret).get("/api/v1/me").status_code == 200


def test_an_expired_token_answers_401(engineer: User, make_token: MakeToken) -> None:
    secret = make_token(engineer, days=1)
    ApiToken.objects.filter(owner=engineer).update(created_at=timezone.now() - timedelta(days=1, seconds=1),
                                                   expires_at=timezone.now() - timedelta(seconds=1))

    response = ApiClient(secret).get("/api/v1/me")

    assert response.status_code == 401
    assert response.json() == {"detail": "This token is not valid, has expired or was revoked."}
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer sy_aaaaaaaaaaaa_" + "x" * 43, "Bearer é",
                                    "Bearer \x00", "Basic dXNlcjpwYXNz", "Token abc"])
def test_a_malformed_or_unknown_credential_answers_401_in_json(header: str, engineer: User,
                                                               make_token: MakeToken) -> None:
    make_token(engineer)
    from django.test import Client

    response = Client(headers={"Authorization": header}).get("/api/v1/me")

    assert response.status_code == 401
    assert "detail" in response.json()


def test_a_wrong_secret_with_a_real_prefix_answers_401(engineer: User, make_token: MakeToken) -> None:
    secret = make_token(engineer)
    forged = secret[:-1] + ("A" if secret[-1] != "A" else "B")

    assert ApiClient(forged).get("/api/v1/me").status_code == 401


def test_a_deactivated_owner_is_refused_at_once(engineer: User, make_token: MakeToken) -> None:
    secret = make_token(engineer)
    api = ApiClient(secret)
    assert api.get("/api/v1/links").status_code == 200

    User.objects.filter(pk=engineer.pk).update(is_active=False)

    assert api.get("/api/v1/links").status_code == 401


def test_a_removed_capability_is_refused_at_once(manager: User, make_token: MakeToken) -> None:
    api = ApiClient(make_token(manager))
    assert api.get("/api/v1/clients").status_code == 200

    manager.groups.remove(Group.objects.get(name="Manager"))

    response = api.get("/api/v1/clients")
    assert response.status_code == 403
    assert response.json() == {"detail": "This needs the Manager or Auditor or ClientContact capability."}
    assert api.get("/api/v1/me").json()["capabilities"] == []


def test_a_session_is_no_credential_and_the_api_sets_no_cookie(engineer: User, make_token: MakeToken) -> None:
    # Given a signed-in browser (session cookie, MFA done, freshly re-authenticated)
    browser = mark_recently_authenticated(signed_in_client(engineer), engineer)

    # When it calls the API without a token
    response = browser.get("/api/v1/me")

    # Then the API does not know it
    assert response.status_code == 401
    # and a call with a token gets no session or CSRF cookie back
    answered = ApiClient(make_token(engineer)).get("/api/v1/me")
    assert answered.status_code == 200 and not answered.cookies


def test_each_token_has_its_own_rate_limit(settings: Any, engineer: User, make_token: MakeToken) -> None:
    # Given a limit of three calls a minute per token
    settings.SWITCHYARD_API_RATE_PER_TOKEN = "3/minute"
    first, second = ApiClient(make_token(engineer)), ApiClient(make_token(engineer))

    # When one token makes a fourth call within the minute
    answers = [first.get("/api/v1/me").status_code for _ in range(4)]

    # Then it is refused with 429 and when to come back, and the other token is not affected
    assert answers == [200, 200, 200, 429]
    refused = first.get("/api/v1/me")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "detail" in refused.json()
    assert second.get("/api/v1/me").status_code == 200


def test_demo_api_token_prints_a_read_write_token_in_the_sandbox(
    make_person: MakePerson, capsys: pytest.CaptureFixture[str]
) -> None:
    person = make_person("manager", "Manager")

    call_command("demo_api_token", "manager")

    secret = capsys.readouterr().out.strip()
    assert TOKEN.fullmatch(secret)
    assert ApiToken.objects.get(owner=person).scope == ApiToken.Scope.READ_WRITE
    assert ApiClient(secret).get("/api/v1/me").json()["username"] == "manager"


def test_demo_api_token_refuses_outside_the_sandbox(settings: Any, make_person: MakePerson) -> None:
    make_person("manager", "Manager")
    settings.SANDBOX = False

    with pytest.raises(CommandError, match="only works in the sandbox"):
        call_command("demo_api_token", "manager")
    assert not ApiToken.objects.exists()


def test_an_endpoint_method_that_declares_no_capability_is_refused_not_open(manager: User,
                                                                            make_token: MakeToken) -> None:
    # Given an endpoint someone added with a POST handler but no capabilities for POST
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory

    from portal.api.views import Endpoint

    class Forgotten(Endpoint):
        capabilities = {"GET": ()}

        def get(self, request: Any) -> Response:
            return Response({"ok": True})

        def post(self, request: Any) -> Response:
            return Response({"changed": True})

    secret = make_token(manager)
    factory = APIRequestFactory()

    # When a manager's read-write token calls each method
    get = Forgotten.as_view()(factory.get("/x", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    head = Forgotten.as_view()(factory.head("/x", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    post = Forgotten.as_view()(factory.post("/x", {}, format="json", HTTP_AUTHORIZATION=f"Bearer {secret}"))
    options = Forgotten.as_view()(factory.options("/x", HTTP_AUTHORIZATION=f"Bearer {secret}"))

    # Then the undeclared POST is refused; GET and HEAD pass; OPTIONS is not offered
    assert (get.status_code, head.status_code, post.status_code, options.status_code) == (200, 200, 403, 405)
    assert post.data == {"detail": "This endpoint does not say who may call it."}
