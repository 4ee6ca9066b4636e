"""Hand-back end to end against moto (Organizations, STS, member-account IAM with AWS managed
policies, main-account IAM), run by the onboarding step machinery: the account leaves the
Organization without its Switchyard roles, its grants are revoked (rows kept), its links vanish and
the main account's policies no longer allow its roles. A refusal by AWS (botocore Stubber) ends in
a clear, retryable state, and the retry finishes without revoking anything twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from onboarding.handback import handback_start
from onboarding.models import AwsAccount, Client, OnboardingStep
from onboarding.services import onboarding_step_retry
from portal import aws
from portal.audit import audit_verify_chain
from portal.aws import Boto3ClientFactory
from portal.models import AuditEvent, User
from switchroles import services as grants
from switchroles.models import AccountRole, Grant, Team
from switchroles.selectors import links_for_person
from tests.onboarding.conftest import RequestAccount, drive, mocked_organization, templates
from tests.onboarding.handback_support import (
    ALL_CONFIRMED,
    RefusingOrganizations,
    main_account_allowed,
    onboard,
    switchyard_role_names,
)

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
HANDBACK_KINDS = [Kind.REVOKE_GRANTS, Kind.DELETE_ROLES, Kind.LEAVE_ORGANIZATION, Kind.RECORD_HANDBACK]


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


@pytest.fixture
def platform(manager: User, engineer: User, org: Boto3ClientFactory) -> Team:
    """The engineers' team, an IAM group in the main account with the engineer's IAM user in it."""
    org.client("iam").create_user(UserName=engineer.iam_username)
    team = grants.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    grants.team_member_add(team=team, person=engineer, added_by=manager)
    return team


def _arns(account: AwsAccount) -> set[str]:
    return set(AccountRole.objects.filter(account=account).values_list("arn", flat=True))


def _granted(
    manager: User, engineer: User, platform: Team, account: AwsAccount, capture: Callable[..., Any]
) -> tuple[Grant, Grant]:
    """The team on the account, and the engineer personally on its client; AWS enforces both."""
    with capture(execute=True):
        on_account = grants.grant_create(granted_by=manager, team=platform, account=account,
                                         templates=templates("SwitchyardEngineer"), reason="runs it")
        on_client = grants.grant_create(granted_by=manager, person=engineer, client=account.client,
                                        templates=templates("SwitchyardOnCall"), reason="on call")
    return on_account, on_client


def test_handback_removes_the_account_and_its_roles_and_revokes_its_grants(
    org: Boto3ClientFactory, request_account: RequestAccount, manager: User, engineer: User, platform: Team,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given an onboarded account whose roles the engineer can use, as AWS enforces
    account = onboard(request_account, org)
    on_account, on_client = _granted(manager, engineer, platform, account, django_capture_on_commit_callbacks)
    arns = _arns(account)
    assert main_account_allowed(org, "group", "platform-engineers") | main_account_allowed(
        org, "user", engineer.iam_username) == arns
    assert {r.arn for r in links_for_person(person=engineer)} == arns

    # when a manager hands it back, deleting Switchyard's roles, and the workers run every step
    handback_start(actor=manager, account=account, reason="Client moves to its own AWS team", delete_roles=True,
                   confirmed=ALL_CONFIRMED, clients=org)
    with django_capture_on_commit_callbacks(execute=True):
        drive(account, clients=org)

    # then the account has left the Organization, without any Switchyard role left in it
    account.refresh_from_db()
    assert account.state == AwsAccount.State.HANDED_BACK
    assert account.account_id not in {member.id for member in aws.list_accounts(clients=org)}
    assert switchyard_role_names(org, account.account_id) == set()
    assert [s.status for s in account.steps.filter(kind__in=HANDBACK_KINDS).order_by("position")] == [
        Status.SUCCEEDED] * 4
    # and its grants are revoked, not deleted; its roles are kept as history, removed
    for grant in (on_account, on_client):
        grant.refresh_from_db()
        assert grant.revoked_at is not None and grant.revoked_by == manager
    assert set(AccountRole.objects.filter(account=account).values_list("state", flat=True)) == {"removed"}
    assert not AccountRole.objects.filter(account=account, removed_at__isnull=True).exists()
    # and the links vanished, and the main account's policies no longer allow those roles
    assert list(links_for_person(person=engineer)) == []
    assert main_account_allowed(org, "group", "platform-engineers") & arns == set()
    assert main_account_allowed(org, "user", engineer.iam_username) & arns == set()
    # and every step is audited, the last one saying the account was handed back; the client has left
    events = AuditEvent.objects.filter(target_type="onboarding.awsaccount", target_id=str(account.pk))
    actions = list(events.order_by("sequence").values_list("action", flat=True))
    assert actions[-1] == "onboarding.account.handed_back"
    assert "onboarding.handback.requested" in actions
    assert AuditEvent.objects.filter(action="grant.revoked").count() == 2
    assert Client.objects.get(pk=account.client_id).state == Client.State.LEFT
    assert audit_verify_chain().intact


def test_keeping_the_roles_leaves_them_in_the_account_but_not_in_the_directory(
    org: Boto3ClientFactory, request_account: RequestAccount, manager: User,
) -> None:
    # given an onboarded account
    account = onboard(request_account, org)

    # when it is handed back with its roles kept
    handback_start(actor=manager, account=account, reason="Client keeps the roles", delete_roles=False,
                   confirmed=ALL_CONFIRMED, clients=org)
    drive(account, clients=org)

    # then it left the Organization, its roles are still there in AWS, and none is active in the portal
    account.refresh_from_db()
    assert account.state == AwsAccount.State.HANDED_BACK
    assert account.account_id not in {member.id for member in aws.list_accounts(clients=org)}
    assert switchyard_role_names(org, account.account_id) == {"SwitchyardEngineer", "SwitchyardOnCall"}
    assert not AccountRole.objects.filter(account=account).exclude(state="removed").exists()
    assert account.steps.get(kind=Kind.DELETE_ROLES).detail["kept"] == ["SwitchyardEngineer", "SwitchyardOnCall"]


def test_a_refusal_by_aws_is_clear_and_retryable_and_nothing_is_revoked_twice_or_lost(
    org: Boto3ClientFactory, request_account: RequestAccount, manager: User, engineer: User, platform: Team,
    signed_in: Callable[[User], HttpClient], django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given an account with two grants, and an AWS that will not let it leave yet
    account = onboard(request_account, org)
    _granted(manager, engineer, platform, account, django_capture_on_commit_callbacks)
    refusing = RefusingOrganizations(org)
    handback_start(actor=manager, account=account, reason="Contract ended", delete_roles=True,
                   confirmed=ALL_CONFIRMED, clients=org)

    # when the workers run the hand-back
    drive(account, clients=refusing)

    # then the leave step failed in plain words with the raw code beside them, and the account waits for a person
    account.refresh_from_db()
    leave = account.steps.get(kind=Kind.LEAVE_ORGANIZATION)
    assert account.state == AwsAccount.State.FAILED
    assert (leave.status, leave.attempts) == (Status.FAILED, 1)
    assert leave.last_error_code == "ConstraintViolationException (MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED)"
    assert "payment method of its own" in leave.last_error_message
    assert "client must sign in" in leave.last_error_message
    assert refusing.refused == [account.account_id]
    # and what was done stays done: grants revoked once, roles deleted; the account is still a member
    assert AuditEvent.objects.filter(action="grant.revoked").count() == 2
    assert switchyard_role_names(org, account.account_id) == set()
    assert account.account_id in {member.id for member in aws.list_accounts(clients=org)}
    page = signed_in(manager).get(account.get_absolute_url()).content.decode()
    assert "payment method of its own" in page and "ConstraintViolationException" in page
    assert reverse("onboarding:step_retry", args=[account.pk, leave.pk]) in page

    # when the client has done it and a manager retries the step
    refusing.refusing = False
    onboarding_step_retry(step=leave, actor=manager)
    drive(account, clients=refusing)

    # then the account is handed back, nothing was revoked or deleted a second time, nothing lost
    account.refresh_from_db()
    assert account.state == AwsAccount.State.HANDED_BACK
    assert account.account_id not in {member.id for member in aws.list_accounts(clients=org)}
    assert AuditEvent.objects.filter(action="grant.revoked").count() == 2
    assert Grant.objects.filter(revoked_at__isnull=False).count() == 2
    assert account.steps.get(kind=Kind.REVOKE_GRANTS).attempts == 1
    assert account.steps.get(kind=Kind.DELETE_ROLES).attempts == 1
    assert AccountRole.objects.filter(account=account, state="removed").count() == 2
    record = account.steps.get(kind=Kind.RECORD_HANDBACK)
    assert record.detail["removed_from_organization"] is True
    assert sorted(record.detail["deleted_roles"]) == ["SwitchyardEngineer", "SwitchyardOnCall"]


def test_handing_back_a_whole_client_revokes_its_client_grant_once_and_the_client_leaves(
    org: Boto3ClientFactory, request_account: RequestAccount, manager: User, engineer: User, platform: Team,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a client with two accounts and a team grant on the whole client
    first = onboard(request_account, org, name="production")
    second = onboard(request_account, org, client=first.client, name="staging")
    with django_capture_on_commit_callbacks(execute=True):
        grant = grants.grant_create(granted_by=manager, team=platform, client=first.client,
                                    templates=templates("SwitchyardEngineer"), reason="runs the client")
    assert len(main_account_allowed(org, "group", "platform-engineers")) == 2

    # when the manager hands the whole client back
    started = handback_start(actor=manager, client=first.client, reason="Client leaves", delete_roles=True,
                             confirmed=ALL_CONFIRMED, clients=org)
    assert {a.pk for a in started} == {first.pk, second.pk}
    assert Client.objects.get(pk=first.client_id).state == Client.State.LEAVING
    with django_capture_on_commit_callbacks(execute=True):
        drive(first, clients=org)
        drive(second, clients=org)

    # then both accounts are handed back, the client grant was revoked once, and the client has left
    assert set(AwsAccount.objects.values_list("state", flat=True)) == {AwsAccount.State.HANDED_BACK}
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    assert AuditEvent.objects.filter(action="grant.revoked", target_id=str(grant.pk)).count() == 1
    assert main_account_allowed(org, "group", "platform-engineers") == set()
    assert Client.objects.get(pk=first.client_id).state == Client.State.LEFT
    assert AuditEvent.objects.filter(action="onboarding.client.left").count() == 1
