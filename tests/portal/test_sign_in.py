"""Everyone signs in with a password and a TOTP code; nobody without an authenticator gets further
than enrolment."""

from __future__ import annotations

import time

import pyotp
import pytest
from allauth.mfa.models import Authenticator
from django.test import Client
from django.urls import reverse

from portal.audit.models import AuditEvent
from tests.conftest import PASSWORD, MakePerson

pytestmark = pytest.mark.django_db


def _password_step(client: Client, login: str, password: str = PASSWORD) -> object:
    return client.post(reverse("account_login"), {"login": login, "password": password})


def test_password_then_code_signs_in(make_person: MakePerson) -> None:
    person = make_person("eli", "Engineer")
    client = Client()

    response = _password_step(client, "eli")
    assert response.status_code == 302
    assert response["Location"] == reverse("mfa_authenticate")
    assert client.get(reverse("home")).status_code == 302  # not signed in yet

    response = client.post(reverse("mfa_authenticate"), {"code": pyotp.TOTP(person.totp_secret).now()})

    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200
    actions = list(AuditEvent.objects.filter(actor=person).values_list("action", flat=True))
    assert "auth.signed_in" in actions and "mfa.used" in actions


@pytest.mark.parametrize(("steps", "signs_in"), [(-1, True), (1, True), (-3, False)])
def test_a_code_of_the_step_next_to_the_current_one_still_signs_in(
    make_person: MakePerson, steps: int, signs_in: bool
) -> None:
    # (typed as the authenticator rolls over, or on a phone clock a few seconds out; not older ones)
    person = make_person("eli", "Engineer")
    client = Client()
    _password_step(client, "eli")
    totp = pyotp.TOTP(person.totp_secret)
    code = totp.at(time.time(), counter_offset=steps)

    client.post(reverse("mfa_authenticate"), {"code": code})

    assert (client.get(reverse("home")).status_code == 200) is signs_in


def test_email_works_as_login_too(make_person: MakePerson) -> None:
    make_person("eli", "Engineer")

    response = _password_step(Client(), "eli@example.com")

    assert response["Location"] == reverse("mfa_authenticate")


def test_a_wrong_code_is_refused_and_recorded(make_person: MakePerson) -> None:
    make_person("eli", "Engineer")
    client = Client()
    _password_step(client, "eli")

    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})

    assert response.status_code == 200
    assert client.get(reverse("home")).status_code == 302
    assert AuditEvent.objects.filter(action="mfa.failed").count() == 1


def test_a_wrong_password_is_recorded() -> None:
    _password_step(Client(), "nobody", "wrong password")

    event = AuditEvent.objects.get(action="auth.sign_in_failed")
    assert event.details == {"attempted": "nobody"}


def test_failed_logins_are_rate_limited(make_person: MakePerson) -> None:
    make_person("eli", "Engineer")
    client = Client()
    for _ in range(5):
        _password_step(client, "eli", "wrong")

    response = _password_step(client, "eli")  # now even the right password is held back

    assert response.status_code == 200
    assert b"Too many failed login attempts" in response.content


def test_without_an_authenticator_only_enrolment_is_reachable(make_person: MakePerson) -> None:
    make_person("newbie", "Engineer", mfa=False)
    client = Client()
    assert _password_step(client, "newbie")["Location"] == reverse("home")

    assert client.get(reverse("home"))["Location"] == reverse("mfa_activate_totp")
    assert client.get(reverse("mfa_index"))["Location"] == reverse("mfa_activate_totp")
    assert client.get(reverse("mfa_activate_totp")).status_code == 200


def test_enrolment_stores_the_secret_encrypted(make_person: MakePerson,
                                               django_capture_on_commit_callbacks: object) -> None:
    person = make_person("newbie", "Engineer", mfa=False)
    client = Client()
    _password_step(client, "newbie")
    page = client.get(reverse("mfa_activate_totp"))
    secret = page.context["form"].secret

    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = client.post(reverse("mfa_activate_totp"), {"code": pyotp.TOTP(secret).now()})

    assert response.status_code == 302
    stored = Authenticator.objects.get(user=person, type=Authenticator.Type.TOTP).data["secret"]
    assert stored != secret and secret not in stored
    assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="mfa.enrolled", actor=person).exists()


def test_self_sign_up_is_closed() -> None:
    response = Client().post(reverse("account_signup"), {
        "username": "intruder", "email": "i@example.com",
        "password1": "a-long-password-1", "password2": "a-long-password-1",
    })

    assert response.status_code == 200
    assert b"closed" in response.content.lower()
    from portal.people.models import User
    assert not User.objects.filter(username="intruder").exists()


def test_the_admin_signs_in_through_allauth() -> None:
    response = Client().get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
