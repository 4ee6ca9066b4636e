"""The sandbox as ``make run`` brings it up: centralized root access on, the demo clients onboarded,
the invited demo account's root user with a password until a manager removes it, the created
accounts' with none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client as HttpClient

from onboarding import root_services
from onboarding.models import AwsAccount, RootPosture
from onboarding.sandbox import DEMO_INVITED_ACCOUNT_ID, sandbox_demo_clients_ensure, sandbox_demo_invitation_ensure
from portal import aws
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from portal.sandbox import sandbox_demo_users_ensure, sandbox_root_access_ensure
from portal.sandbox_moto import root_access
from tests.onboarding.conftest import drive, mocked_organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    """moto as the sandbox's server runs it (invitations, root access; no e-mail given a password)."""
    root_access.install()
    monkeypatch.setattr(root_access, "root_password_emails", set())
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


def test_the_invited_demo_account_shows_a_root_password_until_a_manager_removes_it(
    sandbox_org: Boto3ClientFactory, signed_in: Any
) -> None:
    # given the sandbox brought up: root access on, the demo clients onboarded by the workers, and the
    # client's own account invited, accepted by the sandbox playing the client, and onboarded
    sandbox_demo_users_ensure()
    assert sandbox_root_access_ensure(clients=sandbox_org) is True
    for account in sandbox_demo_clients_ensure(clients=sandbox_org):
        drive(account, clients=sandbox_org)
    invited = sandbox_demo_invitation_ensure(clients=sandbox_org, wait_seconds=5)

    # then it joined by invitation and is active, and its root user has a password
    assert invited is not None
    assert (invited.origin, invited.state) == (AwsAccount.Origin.INVITED, AwsAccount.State.ACTIVE)
    members = {member.id: member for member in aws.list_accounts(clients=sandbox_org)}
    assert members[DEMO_INVITED_ACCOUNT_ID].joined_method == "INVITED"
    assert RootPosture.objects.get(account=invited).password is True
    # and every created account's root user has nothing
    created = AwsAccount.objects.filter(origin=AwsAccount.Origin.CREATED)
    assert created.count() == 3
    for account in created:
        posture = RootPosture.objects.get(account=account)
        assert posture.known and not posture.has_credentials, account
    manager = User.objects.get(username="manager")
    browser: HttpClient = signed_in(manager)
    assert "Has root credentials" in browser.get(invited.get_absolute_url()).content.decode()
    # and bringing the sandbox up again changes nothing
    assert sandbox_demo_invitation_ensure(clients=sandbox_org, wait_seconds=5) == invited
    assert AwsAccount.objects.filter(account_id=DEMO_INVITED_ACCOUNT_ID).count() == 1

    # when the manager removes the root credentials and the workers run the steps
    root_services.root_removal_request(account=invited, actor=manager, reason="Demo", clients=sandbox_org)
    drive(invited, clients=sandbox_org)

    # then the account page shows none left
    invited.refresh_from_db()
    assert invited.state == AwsAccount.State.ACTIVE
    assert not RootPosture.objects.get(account=invited).has_credentials
    assert "No root credentials" in browser.get(invited.get_absolute_url()).content.decode()
    assert sandbox_root_access_ensure(clients=sandbox_org) is False
