"""A manager signs in (password + TOTP), onboards a client through the form (not asked to
re-authenticate right after that full sign-in), and watches the account page update itself,
without a reload, until the account is active with its roles listed.

Everything is real but AWS: the live server and a Celery worker process share the test database
and a Redis broker; AWS is a moto server with an Organization, as in the sandbox (``make run``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

from onboarding.models import AwsAccount
from portal.people.models import User
from switchroles.models import AccountRole
from tests.conftest import PASSWORD, MakePerson
from tests.e2e.processes import WorkerPool, celery_app_using, moto_server, redis_broker

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Two polls of the timeline are 2 s apart; the worker needs a few seconds to start, then a few more.
WORKFLOW_TIMEOUT_MS = 90_000


@pytest.fixture
def workers(settings: Any, tmp_path: Path) -> Iterator[WorkerPool]:
    """A moto server as the portal's AWS (the live server runs in this process, so its settings are
    these) and a broker; the test starts the worker when it wants it."""
    with moto_server() as endpoint, redis_broker() as broker, celery_app_using(broker):
        settings.AWS_ENDPOINT_URL = endpoint
        pool = WorkerPool(broker_url=broker, aws_endpoint=endpoint, log_dir=tmp_path)
        try:
            yield pool
        finally:
            pool.stop_all()


@pytest.fixture
def manager(make_person: MakePerson) -> User:
    return make_person("morgan", "Manager", first_name="Morgan")


def _sign_in(page: Page, base: str, user: User) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username or email").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(f"{base}/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(pyotp.TOTP(user.totp_secret).now())  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Hello, Morgan")).to_be_visible()


def test_manager_onboards_a_client_and_watches_it_become_active(
    live_server: Any, page: Page, manager: User, workers: WorkerPool
) -> None:
    base = live_server.url

    # given a manager signed in with a password and a code from their authenticator
    _sign_in(page, base, manager)

    # when they fill the onboarding form for a new client and a new account
    page.goto(f"{base}/clients/new/")
    expect(page.locator(".sandbox-banner")).to_contain_text("SANDBOX")
    page.get_by_label("New client's name").fill("Initech")
    page.get_by_label("New client's short name").fill("initech")
    page.get_by_label("Create a new account in our Organization").check()
    page.get_by_label("Account name").fill("production")
    # (the root e-mail is suggested from the shared mailbox as they type)
    expect(page.get_by_label("Root e-mail address")).to_have_value("awsaccounts+initech-production@example.com")
    page.get_by_label("Engineer (SwitchyardEngineer)").check()
    page.get_by_label("On-call support (SwitchyardOnCall)").check()
    page.get_by_label("Reason").fill("New managed-services contract")
    page.get_by_role("button", name="Onboard").click()

    # then (they signed in with password and code a moment ago, so nothing is asked again: README,
    # "Re-authentication") they land on the new account's page, where nothing has happened yet
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/clients/accounts/\d+/$"))
    account = AwsAccount.objects.get()
    expect(page).to_have_url(f"{base}{account.get_absolute_url()}")
    expect(page.get_by_role("heading", name="Initech / production")).to_be_visible()
    state = page.locator("[data-account-state]")
    expect(state).to_have_attribute("data-account-state", "requested")
    page.evaluate("window.switchyardNotReloaded = true")

    # when a worker comes up and does the work
    workers.start()

    # then the page follows it by itself, to "Active" with both roles and their links
    expect(state).to_have_attribute("data-account-state", "active", timeout=WORKFLOW_TIMEOUT_MS)
    expect(state).to_have_text("Active")
    expect(page.locator("#timeline li.status-succeeded")).to_have_count(account.steps.count())
    roles = AccountRole.objects.filter(account=account).select_related("template").order_by("role_name")
    assert [(r.role_name, r.state) for r in roles] == [
        ("SwitchyardEngineer", AccountRole.State.ACTIVE), ("SwitchyardOnCall", AccountRole.State.ACTIVE)
    ]
    for role in roles:
        row = page.locator(f"tr[data-role='{role.role_name}']")
        expect(row).to_contain_text("Active")
        expect(row).to_contain_text(role.arn)
        # (through /go/, which records the use before it sends the manager to the console's form)
        expect(row.get_by_role("link", name=role.display_name)).to_have_attribute(
            "href", reverse("switchroles:go", args=[role.pk]))
    # (with the account id AWS assigned; and the timeline has stopped polling)
    account.refresh_from_db()
    progress = page.locator("#onboarding-progress")
    expect(progress).to_contain_text(account.account_id or "no account id")
    assert progress.get_attribute("hx-get") is None
    # and the page was never reloaded: the marker set on it is still there
    assert page.evaluate("window.switchyardNotReloaded") is True
