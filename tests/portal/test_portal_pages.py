"""The portal's own pages: styled 403/404/500 in its layout, audit details as words, link names
once in histories, and the authenticator step of sign-in (focused field, reused code named)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyotp
import pytest
from django.core.cache import cache
from django.test import Client as HttpClient
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from portal.audit import audit_record
from portal.people.models import User
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

SignedIn = Callable[[Any], HttpClient]


def test_a_page_for_another_role_answers_403_in_the_portals_layout(engineer: User, signed_in: SignedIn) -> None:
    # given an engineer, when he opens a managers' page
    response = signed_in(engineer).get(reverse("switchroles:grant_list"))
    page = response.content.decode()
    # then it is the portal's page, saying what is missing and where to go, not Django's bare 403
    assert response.status_code == 403
    assert "This page is not for your role" in page and 'class="topbar"' in page and "My links" in page


def test_an_unknown_address_answers_404_in_the_portals_layout(engineer: User, signed_in: SignedIn,
                                                            settings: Any) -> None:
    settings.DEBUG = False
    response = signed_in(engineer).get("/no-such-page/")
    page = response.content.decode()
    assert response.status_code == 404
    assert "Nothing here for you" in page and 'class="topbar"' in page


def test_the_500_page_renders_without_a_request_context() -> None:
    # Django renders 500.html with an empty context (no request, no context processors)
    from django.views.defaults import server_error

    response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.content and b'class="topbar"' in response.content


def test_event_details_read_as_key_value_pairs(auditor: User, manager: User, signed_in: SignedIn) -> None:
    # given an event with a reason, a list and a flag in its details
    audit_record(action="grant.created", actor=manager, target_label="Acme Retail / production / Engineer",
                 details={"reason": "on-call cover", "templates": ["Engineer", "On-call"], "mfa_required": True})
    # when an auditor reads the events, then the details are labelled words, not a Python dict
    page = signed_in(auditor).get(reverse("audit:events")).content.decode()
    assert "<dt>Reason</dt><dd>on-call cover</dd>" in page
    assert "<dt>Templates</dt><dd>Engineer, On-call</dd>" in page
    assert "<dt>Mfa required</dt><dd>yes</dd>" in page
    assert "{&#x27;" not in page and "[&#x27;" not in page


def _password_step(person: User) -> HttpClient:
    browser = HttpClient()
    response = browser.post(reverse("account_login"), {"login": person.username, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    return browser


def test_the_code_field_is_focused_and_a_reused_code_is_named(make_person: Any) -> None:
    cache.clear()
    person = make_person("eli", "Engineer")
    code = pyotp.TOTP(person.totp_secret).now()  # type: ignore[attr-defined]
    # when the engineer reaches the authenticator step, then the code field has the focus
    browser = _password_step(person)
    page = browser.get(reverse("mfa_authenticate")).content.decode()
    assert 'name="code"' in page and "autofocus" in page
    # when he signs in with a code, signs out, and signs in again with the same code
    assert browser.post(reverse("mfa_authenticate"), {"code": code}).status_code == 302
    browser.post(reverse("account_logout"))
    again = _password_step(person).post(reverse("mfa_authenticate"), {"code": code})
    # then he is told the code was used already and to wait for the next one, not "Incorrect code."
    text = again.content.decode()
    assert again.status_code == 200
    assert "This code was already used. Wait for the next code" in text
    # and a code that was never right is still "incorrect"
    never_right = "000000" if code != "000000" else "111111"
    wrong = _password_step(person).post(reverse("mfa_authenticate"), {"code": never_right})
    assert "Incorrect code." in wrong.content.decode()


def test_histories_name_a_link_once(auditor: User, engineer: User, signed_in: SignedIn) -> None:
    from switchroles.models import LinkUse
    from tests.switchroles.conftest import Estate

    # given a use of Acme's Engineer link
    estate = Estate()
    role = estate.role(estate.account(estate.client("Acme Retail"), name="production"), "engineer")
    LinkUse.objects.create(person=engineer, account_role=role, used_at=timezone.now())
    # when an auditor reads the engineer's history, then the link is named once, as the directory names it
    page = signed_in(auditor).get(reverse("audit:person_history", kwargs={"person_id": engineer.pk})).content.decode()
    assert role.display_name == "Acme Retail / production / Engineer"
    assert f">{role.display_name}</a>" in page
    assert "Acme Retail / production / Acme Retail" not in page
