"""After a restart the sandbox's moto is empty, but its database is not: ``manage.py sandbox_up``
rebuilds the simulated AWS from the database (accounts with the same ids, their roles, the main
account's policies), and says what it rebuilt.

moto runs in-process here, with the sandbox server's account ids derived from root e-mails
(``install_stable_account_ids``); leaving a ``mock_aws`` block and entering another is the restart.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from moto import mock_aws

from onboarding.models import AwsAccount
from onboarding.workflow import role_spec_for
from portal import aws as onboarding_aws
from portal.aws import Boto3ClientFactory, allowed_role_arns, read_group_members, read_group_policies
from portal.models import AuditEvent
from portal.sandbox import sandbox_aws_restore, sandbox_organization_ensure
from portal.sandbox_aws import account_id_for_email, install_stable_account_ids
from switchroles import enforcement
from switchroles.models import AccountRole, Team
from tests.onboarding.conftest import MAIN_ACCOUNT_ID, _isolated_aws_env, drive, make_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox_aws(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[None]:
    """The portal talks to moto in-process (no endpoint), whose account ids come from e-mails."""
    _isolated_aws_env(monkeypatch)
    settings.AWS_ENDPOINT_URL = ""
    settings.SWITCHYARD_MAIN_ACCOUNT_ID = MAIN_ACCOUNT_ID
    undo = install_stable_account_ids()
    try:
        yield
    finally:
        undo()


@contextmanager
def moto_running() -> Iterator[Boto3ClientFactory]:
    """One run of the sandbox's AWS: it starts empty, and forgets everything when it stops."""
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield Boto3ClientFactory(region_name="us-east-1")


def _sandbox_up() -> str:
    out = StringIO()
    call_command("sandbox_up", stdout=out)
    return out.getvalue()


def _workers_finish(clients: Boto3ClientFactory) -> None:
    """What the workers do after ``sandbox_up``: onboard the demo accounts, apply the grants."""
    for account in AwsAccount.objects.order_by("pk"):
        drive(account, clients=clients)
    with enforcement.enforcement_lock():
        enforcement.enforcement_sync(clients=clients, reason="workers")


def _allowed_for_team(clients: Boto3ClientFactory, team: Team) -> set[str]:
    slugs = {account_id: slug for account_id, slug in AwsAccount.objects.values_list("account_id", "client__slug")
             if account_id}
    documents = read_group_policies(clients=clients, group_name=team.iam_group_name).documents
    return allowed_role_arns(documents, account_clients=slugs)


def test_sandbox_up_after_a_restart_rebuilds_accounts_roles_and_main_account_policies(sandbox_aws: None) -> None:
    # given a sandbox that came up, whose workers onboarded the demo clients and applied the grants
    with moto_running() as clients:
        first_output = _sandbox_up()
        _workers_finish(clients)
        team = Team.objects.get()
        granted_before = _allowed_for_team(clients, team)
    accounts = list(AwsAccount.objects.select_related("client").order_by("pk"))
    roles = list(AccountRole.objects.filter(state=AccountRole.State.ACTIVE).select_related("template", "account",
                                                                                           "account__client"))
    assert len(accounts) == 3 and len(roles) == 7 and len(granted_before) == 5
    assert "rebuilt" not in first_output

    # when the sandbox is restarted: AWS comes back empty, the database is as it was
    with moto_running() as clients:
        output = _sandbox_up()

        # then every account is in the Organization again, under the id the portal knows
        members = {a.email: a.id for a in onboarding_aws.list_accounts(clients=clients)}
        assert {a.root_email: members.get(a.root_email or "") for a in accounts} == {
            a.root_email: a.account_id for a in accounts
        }
        # and each role is back in its account, exactly as the workflow made it
        for role in roles:
            credentials = onboarding_aws.assume_access_role(
                clients=clients, account_id=role.account.account_id or "", session_name="test-inspector"
            )
            spec = role_spec_for(role)
            current = onboarding_aws.read_role(clients=clients, credentials=credentials, path=spec.path,
                                               name=spec.name)
            assert current is not None and current.arn == role.arn
            assert onboarding_aws.role_differences(current, spec) == ()
        # and the team's IAM group again allows exactly what it allowed, to the same members
        assert _allowed_for_team(clients, team) == granted_before
        assert read_group_members(clients=clients, group_name=team.iam_group_name) == ("eli.engineer",)

    # and sandbox_up said what it rebuilt
    assert "The sandbox's AWS started empty: rebuilt it from the database." in output
    for account in accounts:
        assert f"account {account} ({account.account_id}): created again, same id" in output
    for role in roles:
        assert f"role {role.arn}" in output
    assert "main-account policies re-applied for 1 team(s)/person(s)" in output
    assert "not rebuilt" not in output
    assert AuditEvent.objects.filter(action="sandbox.aws.restored").count() == 1


def test_restoring_twice_rebuilds_nothing_the_second_time(sandbox_aws: None) -> None:
    # given an account onboarded before a restart, and the sandbox's AWS rebuilt once since
    account = make_account()
    with moto_running() as clients:
        sandbox_organization_ensure(clients=clients)
        drive(account, clients=clients)
    with moto_running() as clients:
        sandbox_organization_ensure(clients=clients)
        first = sandbox_aws_restore(clients=clients)

        # when it is rebuilt again
        second = sandbox_aws_restore(clients=clients)

    # then the first run did the work and the second found nothing missing
    account.refresh_from_db()
    assert first.accounts == [f"Acme Retail / production ({account.account_id})"]
    assert first.roles == [AccountRole.objects.get(account=account).arn]
    assert (second.accounts, second.roles, second.iam_users, second.problems) == ([], [], [], [])
    assert second.enforcement is not None and second.enforcement.applied == []


def test_an_account_whose_id_does_not_come_back_is_reported_and_its_roles_left_alone(sandbox_aws: None) -> None:
    # given an account the portal knows under an id that its e-mail does not give (made elsewhere)
    account = make_account(account_id="111122223333", state=AwsAccount.State.ACTIVE)
    AccountRole.objects.filter(account=account).update(
        state=AccountRole.State.ACTIVE, arn="arn:aws:iam::111122223333:role/switchyard/acme/SwitchyardOnCall"
    )

    # when the sandbox's AWS is rebuilt
    with moto_running() as clients:
        sandbox_organization_ensure(clients=clients)
        restore = sandbox_aws_restore(clients=clients)

    # then it says which id the account came back with, and rebuilt none of its roles
    expected_id = account_id_for_email(account.root_email or "")
    assert restore.accounts == [] and restore.roles == []
    assert restore.problems == [
        f"Acme Retail / production (111122223333): created again as {expected_id}, not 111122223333. "
        "Is the sandbox's AWS `python -m portal.sandbox_aws` (ids from e-mails)? Its roles were not rebuilt."
    ]


def test_an_invited_account_is_reported_not_rebuilt(sandbox_aws: None) -> None:
    # given an invited account (moto cannot simulate invitations)
    make_account(origin=AwsAccount.Origin.INVITED, state=AwsAccount.State.ACTIVE)

    # when the sandbox's AWS is rebuilt
    with moto_running() as clients:
        sandbox_organization_ensure(clients=clients)
        restore = sandbox_aws_restore(clients=clients)
        members = onboarding_aws.list_accounts(clients=clients)

    # then nothing was created for it, and the report says why
    assert [member.id for member in members] == [MAIN_ACCOUNT_ID]
    assert restore.problems == [
        "Acme Retail / production (210987654321): an invited account cannot be rebuilt (moto has no invitations)."
    ]
