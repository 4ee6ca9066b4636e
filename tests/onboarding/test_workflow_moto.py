"""The create path end to end against moto (Organizations, STS, member-account IAM with AWS
managed policies), run synchronously: the account ends in the Organization and, seen from inside
the member account, each role is exactly what its template asks for. Every step is safe twice."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from onboarding.advance import onboarding_advance
from onboarding.models import AwsAccount, OnboardingStep
from portal import aws
from portal.audit import audit_verify_chain
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from switchroles.models import AccountRole, RoleTemplate
from tests.onboarding.conftest import (
    MAIN_ACCOUNT_ID,
    CountingClients,
    RequestAccount,
    drive,
    make_due,
    mocked_organization,
    templates,
)

pytestmark = pytest.mark.django_db

CUSTOM_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": ["s3:ListAllMyBuckets", "s3:GetBucketLocation"], "Resource": "*"}],
}


@pytest.fixture
def org_with_policies(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


@pytest.fixture
def custom_template(db: None) -> RoleTemplate:
    return RoleTemplate.objects.create(
        name="Billing reader", tier=RoleTemplate.Tier.CUSTOM, role_name="SwitchyardBilling",
        managed_policy_arns=["arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"], custom_policy=CUSTOM_POLICY,
        require_mfa=False, max_session_seconds=7200, console_color="efda95",
    )


def _member_iam(clients: Boto3ClientFactory, account_id: str) -> Any:
    credentials = aws.assume_access_role(clients=clients, account_id=account_id, session_name="test-inspector")
    return clients.client("iam", credentials=credentials)


def _expected_trust(require_mfa: bool) -> dict[str, Any]:
    condition: dict[str, Any] = {"StringLike": {"sts:RoleSessionName": "${aws:username}"}}
    if require_mfa:
        condition = {"Bool": {"aws:MultiFactorAuthPresent": "true"}, **condition}
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{MAIN_ACCOUNT_ID}:root"},
            "Action": "sts:AssumeRole",
            "Condition": condition,
        }],
    }


def _role_as_aws_sees_it(iam: Any, name: str) -> dict[str, Any]:
    role = iam.get_role(RoleName=name)["Role"]
    inline = {
        policy: iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]
    }
    return {
        "path": role["Path"],
        "trust": role["AssumeRolePolicyDocument"],
        "max_session": role["MaxSessionDuration"],
        "managed": sorted(p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]),
        "inline": inline,
        "tags": {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=name)["Tags"]},
    }


def test_create_path_puts_the_account_in_the_organization_with_exactly_the_roles_asked_for(
    org_with_policies: Boto3ClientFactory, request_account: RequestAccount, custom_template: RoleTemplate
) -> None:
    # given a manager's request for a new account with every template
    counting = CountingClients(org_with_policies)
    account = request_account(clients=counting, templates=templates())

    # when the workers run the whole workflow
    drive(account, clients=counting)

    # then the account is active, in the Organization, and CreateAccount was sent exactly once
    account.refresh_from_db()
    assert account.state == AwsAccount.State.ACTIVE
    assert account.create_request_id.startswith("car-")
    members = {member.id: member.email for member in aws.list_accounts(clients=org_with_policies)}
    assert members[account.account_id] == "awsaccounts+acme@example.com"
    assert counting.operations.count("CreateAccount") == 1
    assert set(account.steps.values_list("status", flat=True)) == {OnboardingStep.Status.SUCCEEDED}

    # and, seen from inside the member account, each role is exactly its template
    iam = _member_iam(org_with_policies, account.account_id)
    roles = list(account.roles.select_related("template"))
    assert len(roles) == 4
    for role in roles:
        template = role.template
        seen = _role_as_aws_sees_it(iam, template.role_name)
        assert seen["path"] == "/switchyard/acme/"
        assert seen["trust"] == _expected_trust(template.require_mfa)
        assert seen["max_session"] == template.max_session_seconds
        assert seen["managed"] == sorted(template.managed_policy_arns)
        assert seen["inline"] == ({"switchyard": template.custom_policy} if template.custom_policy else {})
        assert seen["tags"]["managed-by"] == "switchyard"
        assert seen["tags"]["switchyard-client"] == "acme"
        assert role.state == AccountRole.State.ACTIVE and role.activated_at is not None
        assert role.arn == f"arn:aws:iam::{account.account_id}:role/switchyard/acme/{template.role_name}"
        assert f"account={account.account_id}" in role.switch_role_url

    # and no other role of ours exists there
    names = {r["RoleName"] for r in iam.list_roles(PathPrefix="/switchyard/")["Roles"]}
    assert names == {t.role_name for t in templates()}

    # and every step result was audited, in an intact chain
    events = AuditEvent.objects.filter(target_type="onboarding.awsaccount", target_id=str(account.pk))
    actions = list(events.order_by("sequence").values_list("action", flat=True))
    assert actions.count("onboarding.step.succeeded") == 6
    assert actions[0] == "onboarding.requested" and actions[-1] == "onboarding.account.active"
    assert audit_verify_chain().intact


def test_every_step_run_twice_changes_nothing_and_never_sends_create_account_twice(
    org_with_policies: Boto3ClientFactory, request_account: RequestAccount
) -> None:
    # given a request for an account with two roles
    counting = CountingClients(org_with_policies)
    account = request_account(clients=counting, templates=templates("SwitchyardEngineer", "SwitchyardOnCall"))

    # when every step, once it succeeded, is run a second time (a redelivered task)
    for _ in range(30):
        result = onboarding_advance(account_id=account.pk, clients=counting)
        if result.outcome == "idle":
            break
        if result.outcome == "succeeded":
            step = OnboardingStep.objects.get(account=account, kind=result.kind)
            OnboardingStep.objects.filter(pk=step.pk).update(status=OnboardingStep.Status.PENDING, finished_at=None)
            AwsAccount.objects.filter(pk=account.pk).update(state=AwsAccount.State.PROVISIONING)
            again = onboarding_advance(account_id=account.pk, clients=counting)
            assert (again.kind, again.outcome) == (result.kind, "succeeded")
        make_due(account)

    # then the account is active with one CreateAccount sent, one account and the same two roles
    account.refresh_from_db()
    assert account.state == AwsAccount.State.ACTIVE
    assert counting.operations.count("CreateAccount") == 1
    emails = [member.email for member in aws.list_accounts(clients=org_with_policies)]
    assert emails.count("awsaccounts+acme@example.com") == 1
    iam = _member_iam(org_with_policies, account.account_id)
    assert {r["RoleName"] for r in iam.list_roles(PathPrefix="/switchyard/")["Roles"]} == {
        "SwitchyardEngineer", "SwitchyardOnCall"
    }
    engineer = _role_as_aws_sees_it(iam, "SwitchyardEngineer")
    assert engineer["managed"] == ["arn:aws:iam::aws:policy/PowerUserAccess"]
    assert engineer["trust"] == _expected_trust(True)
    assert AccountRole.objects.filter(account=account, state=AccountRole.State.ACTIVE).count() == 2


def test_a_lost_create_account_answer_is_reconciled_not_sent_again(
    org: Boto3ClientFactory, request_account: RequestAccount
) -> None:
    # given a worker that sent CreateAccount and died before recording the answer
    bucket_lister = RoleTemplate.objects.create(
        name="Bucket lister", tier="custom", role_name="SwitchyardBuckets", console_color="efda95",
        custom_policy=CUSTOM_POLICY,
    )
    counting = CountingClients(org)
    account = request_account(clients=counting, templates=[bucket_lister])
    onboarding_advance(account_id=account.pk, clients=counting)
    step = OnboardingStep.objects.get(account=account, kind=OnboardingStep.Kind.CREATE_ACCOUNT)
    assert step.detail["sending"] is True
    AwsAccount.objects.filter(pk=account.pk).update(create_request_id="", account_id=None,
                                                    state=AwsAccount.State.CREATING)
    OnboardingStep.objects.filter(pk=step.pk).update(status=OnboardingStep.Status.PENDING, finished_at=None)

    # when the step runs again and the workflow goes on
    drive(account, clients=counting)

    # then AWS got a single CreateAccount and the account found is the one created
    account.refresh_from_db()
    assert counting.operations.count("CreateAccount") == 1
    assert "ListCreateAccountStatus" in counting.operations
    assert account.state == AwsAccount.State.ACTIVE
    assert [m.email for m in aws.list_accounts(clients=org)].count("awsaccounts+acme@example.com") == 1
    assert json.loads(json.dumps(account.steps.get(kind="create_account").detail))["reconciled"] is True
