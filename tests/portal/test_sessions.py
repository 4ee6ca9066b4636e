"""Sessions end on the server: at sign-out, after the configured hours, and for every other device
when a password changes or an authenticator is removed."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.conftest import PASSWORD, MakePerson

pytestmark = pytest.mark.django_db


def _sign_in(person: object, secret: str) -> Client:
    client = Client()
    client.post(reverse("account_login"), {"login": person.username, "password": PASSWORD})  # type: ignore[attr-defined]
    client.post(reverse("mfa_authenticate"), {"code": pyotp.TOTP(secret).now()})
    assert client.get(reverse("home")).status_code == 200
    return client


def _is_signed_in(client: Client) -> bool:
    return client.get(reverse("home")).status_code == 200


def _has_session(client: Client) -> bool:
    """Whether the server still takes this client's session as signed in (MFA state aside)."""
    return bool(client.get(reverse("account_login")).wsgi_request.user.is_authenticated)


def test_sign_out_deletes_the_session_on_the_server(make_person: MakePerson) -> None:
    person = make_person("eli", "Engineer")
    client = _sign_in(person, person.totp_secret)
    session_key = client.session.session_key
    stolen = Client()
    stolen.cookies[settings.SESSION_COOKIE_NAME] = session_key

    client.post(reverse("account_logout"))

    assert not Session.objects.filter(session_key=session_key).exists()
    assert not _has_session(stolen)  # a copied cookie is worthless afterwards


def test_a_session_lasts_the_configured_hours(make_person: MakePerson, monkeypatch: pytest.MonkeyPatch) -> None:
    person = make_person("eli", "Engineer")
    client = _sign_in(person, person.totp_secret)
    session = Session.objects.get(session_key=client.session.session_key)
    assert abs((session.expire_date - timezone.now()) - timedelta(seconds=settings.SESSION_COOKIE_AGE)) < timedelta(
        minutes=1
    )
    assert settings.SESSION_COOKIE_AGE <= 12 * 3600

    later = timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE + 60)
    monkeypatch.setattr("django.contrib.sessions.backends.db.timezone.now", lambda: later)

    assert not _has_session(client)


def test_changing_the_password_ends_the_other_sessions(make_person: MakePerson) -> None:
    person = make_person("eli", "Engineer")
    laptop = _sign_in(person, person.totp_secret)
    phone = Client()
    phone.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    assert _is_signed_in(phone) and _has_session(phone)

    response = laptop.post(reverse("account_change_password"), {
        "oldpassword": PASSWORD, "password1": "a brand new passphrase 42", "password2": "a brand new passphrase 42",
    })

    assert response.status_code == 302
    assert _is_signed_in(laptop)
    assert not _has_session(phone)


def test_removing_the_authenticator_ends_the_other_sessions(
    make_person: MakePerson, django_capture_on_commit_callbacks: object
) -> None:
    person = make_person("eli", "Engineer")
    laptop = _sign_in(person, person.totp_secret)
    phone = Client()
    phone.force_login(person, backend="django.contrib.auth.backends.ModelBackend")
    # Removing an authenticator asks for the password again first.
    laptop.post(reverse("account_reauthenticate"), {"password": PASSWORD})

    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = laptop.post(reverse("mfa_deactivate_totp"))

    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=person, type=Authenticator.Type.TOTP).exists()
    assert not _has_session(phone)
    # The person who removed it stays signed in, but can only enrol a new one.
    assert laptop.get(reverse("home"))["Location"] == reverse("mfa_activate_totp")
