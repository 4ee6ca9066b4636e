"""The sandbox as ``make run`` brings it up: centralized root access on, the demo clients onboarded,
Globex production's root user with a password until a manager removes it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client as HttpClient

from onboarding import root_services
from onboarding.models import AwsAccount, RootPosture
from onboarding.sandbox import sandbox_demo_clients_ensure
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from portal.sandbox import sandbox_demo_users_ensure, sandbox_root_access_ensure
from portal.sandbox_aws import demo_root_password_email
from portal.sandbox_moto import root_access
from tests.onboarding.conftest import drive, mocked_organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    """moto as the sandbox's server runs it: the demo account's root starts with a password."""
    email = demo_root_password_email()
    root_access.install(emails_with_root_password=[email])
    try:
        yield from mocked_organization(monkeypatch, settings, managed_policies=True)
    finally:
        root_access.root_password_emails.discard(email)


def test_the_demo_account_shows_a_root_password_until_a_manager_removes_it(
    sandbox_org: Boto3ClientFactory, signed_in: Any
) -> None:
    # given the sandbox brought up: root access on, the demo clients onboarded by the workers
    sandbox_demo_users_ensure()
    assert sandbox_root_access_ensure(clients=sandbox_org) is True
    for account in sandbox_demo_clients_ensure(clients=sandbox_org):
        drive(account, clients=sandbox_org)
    globex = AwsAccount.objects.get(client__slug="globex", name="production")
    acme = AwsAccount.objects.get(client__slug="acme", name="production")

    # then the onboarding looked at each root user: Globex production's has a password, Acme's nothing
    assert RootPosture.objects.get(account=globex).password is True
    assert RootPosture.objects.get(account=acme).known and not RootPosture.objects.get(account=acme).has_credentials
    manager = User.objects.get(username="manager")
    browser: HttpClient = signed_in(manager)
    assert "Has root credentials" in browser.get(globex.get_absolute_url()).content.decode()

    # when the manager removes them and the workers run the steps
    root_services.root_removal_request(account=globex, actor=manager, reason="Demo", clients=sandbox_org)
    drive(globex, clients=sandbox_org)

    # then the account page shows none left
    globex.refresh_from_db()
    assert globex.state == AwsAccount.State.ACTIVE
    assert not RootPosture.objects.get(account=globex).has_credentials
    assert "No root credentials" in browser.get(globex.get_absolute_url()).content.decode()
    assert sandbox_root_access_ensure(clients=sandbox_org) is False
