"""Provisioning against moto when the member account is not empty: a role of the same name that
Switchyard did not create is never changed; a Switchyard role that drifted is detected."""

from __future__ import annotations

import json

import pytest

from onboarding.advance import onboarding_advance
from onboarding.models import AwsAccount, OnboardingStep
from onboarding.services import onboarding_step_retry
from portal import aws
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles.models import AccountRole, RoleTemplate
from tests.onboarding.conftest import drive, make_account

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
CUSTOM_POLICY = {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
FOREIGN_TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999999999999:root"}, "Action": "sts:AssumeRole"}]}


@pytest.fixture
def member(org: Boto3ClientFactory) -> str:
    request = aws.start_account_creation(clients=org, email="awsaccounts+acme@example.com",
                                         account_name="production", tags={})
    assert request.account_id is not None
    return request.account_id


@pytest.fixture
def custom_only(db: None) -> RoleTemplate:
    return RoleTemplate.objects.create(
        name="Bucket lister", tier="custom", role_name="SwitchyardBuckets", custom_policy=CUSTOM_POLICY,
        console_color="efda95",
    )


def _member_iam(org: Boto3ClientFactory, account_id: str) -> object:
    credentials = aws.assume_access_role(clients=org, account_id=account_id, session_name="test")
    return org.client("iam", credentials=credentials)


def test_a_foreign_role_with_the_same_name_is_a_conflict_and_is_left_alone(
    org: Boto3ClientFactory, member: str, custom_only: RoleTemplate, manager: User
) -> None:
    # given the client's account already has a role named like the template's, not made by Switchyard
    iam = _member_iam(org, member)
    iam.create_role(RoleName="SwitchyardBuckets", AssumeRolePolicyDocument=json.dumps(FOREIGN_TRUST))  # type: ignore[attr-defined]
    account = make_account(at=Kind.PROVISION_ROLES, account_id=member, role_names=("SwitchyardBuckets",),
                           state=AwsAccount.State.PROVISIONING)

    # when the workers provision the roles
    drive(account, clients=org)

    # then the role is marked in conflict, the step failed in plain words, and the foreign role is untouched
    account.refresh_from_db()
    step = account.steps.get(kind=Kind.PROVISION_ROLES)
    assert account.state == AwsAccount.State.FAILED
    assert account.roles.get().state == AccountRole.State.CONFLICT
    assert (step.status, step.last_error_code) == (OnboardingStep.Status.FAILED, "RoleConflict")
    assert "not created by Switchyard" in step.last_error_message and "trust policy differs" in step.last_error_message
    role = iam.get_role(RoleName="SwitchyardBuckets")["Role"]  # type: ignore[attr-defined]
    assert role["Path"] == "/" and role["AssumeRolePolicyDocument"] == FOREIGN_TRUST

    # and once the client removed it, a retry provisions the role and publishes it
    iam.delete_role(RoleName="SwitchyardBuckets")  # type: ignore[attr-defined]
    onboarding_step_retry(step=step, actor=manager)
    assert account.roles.get().state == AccountRole.State.PENDING
    drive(account, clients=org)
    account.refresh_from_db()
    assert account.state == AwsAccount.State.ACTIVE
    assert account.roles.get().state == AccountRole.State.ACTIVE
    assert iam.get_role(RoleName="SwitchyardBuckets")["Role"]["Path"] == "/switchyard/acme/"  # type: ignore[attr-defined]


def test_verification_catches_a_role_changed_behind_switchyards_back(
    org: Boto3ClientFactory, member: str, custom_only: RoleTemplate
) -> None:
    # given roles just provisioned, then someone widened one by hand
    account = make_account(at=Kind.PROVISION_ROLES, account_id=member, role_names=("SwitchyardBuckets",),
                           state=AwsAccount.State.PROVISIONING)
    assert onboarding_advance(account_id=account.pk, clients=org).outcome == "succeeded"
    iam = _member_iam(org, member)
    iam.attach_role_policy(RoleName="SwitchyardBuckets",  # type: ignore[attr-defined]
                           PolicyArn=iam.create_policy(PolicyName="extra", PolicyDocument=json.dumps(  # type: ignore[attr-defined]
                               CUSTOM_POLICY))["Policy"]["Arn"])

    # when verification runs (and keeps seeing it)
    drive(account, clients=org)

    # then the account needs attention and the message names the difference
    account.refresh_from_db()
    step = account.steps.get(kind=Kind.VERIFY_ROLES)
    assert account.state == AwsAccount.State.FAILED
    assert step.last_error_code == "RoleVerificationFailed"
    assert "is attached but not expected" in step.last_error_message
    assert account.roles.get().state == AccountRole.State.PROVISIONED  # never published
