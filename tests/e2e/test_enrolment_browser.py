"""A new person signs in, enrols an authenticator, signs out and back in with password + code."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD, MakePerson

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _code_not_used_before(secret: str, used: str) -> str:
    totp = pyotp.TOTP(secret)
    while (code := totp.now()) == used:  # a code is accepted once; wait for the next one
        time.sleep(1)
    return code


def test_new_person_enrols_and_signs_back_in(live_server: object, page: Page, make_person: MakePerson) -> None:
    make_person("newbie", "Engineer", mfa=False, first_name="Nina")
    base = live_server.url  # type: ignore[attr-defined]

    # Sign in with a password: sent straight to enrolment.
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username or email").fill("newbie")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(f"{base}/accounts/2fa/totp/activate/")

    # Read the secret from the page and enrol with a code from it.
    secret = page.locator("#authenticator_secret").input_value()
    enrol_code = pyotp.TOTP(secret).now()
    page.get_by_label("Authenticator code").fill(enrol_code)
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("body")).not_to_contain_text("Activate Authenticator App")
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Hello, Nina")).to_be_visible()

    # Sign out, then back in: password, then a code.
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{base}/")
    expect(page).to_have_url(f"{base}/accounts/login/?next=/")
    page.get_by_label("Username or email").fill("newbie")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(f"{base}/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(_code_not_used_before(secret, enrol_code))
    page.get_by_role("button", name="Sign In").click()

    expect(page.get_by_role("heading", name="Hello, Nina")).to_be_visible()
    expect(page.locator(".sandbox-banner")).to_contain_text("SANDBOX")
