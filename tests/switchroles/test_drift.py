"""Drift checks against moto: roles changed, deleted or added behind the portal's back in a member
account, and main-account policies that no longer match the grants, are found, shown to managers
and auditors, audited, and repaired to the portal's version (read back from AWS)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.stub import Stubber
from django.test import Client as HttpClient
from django.urls import reverse

from onboarding.models import AwsAccount
from onboarding.workflow import role_spec_for
from portal import aws
from portal.aws import Boto3ClientFactory, ClientFactory, TemporaryCredentials
from portal.models import AuditEvent, User
from switchroles import drift
from switchroles import services as grants
from switchroles.models import AccountRole, DriftCheck, RoleDriftFinding, Team
from tests.onboarding.conftest import MAIN_ACCOUNT_ID, mocked_organization, request_account, templates
from tests.onboarding.handback_support import main_account_allowed, member_iam, onboard
from tests.switchroles.conftest import reauthenticated

__all__ = ["request_account"]  # the onboarding fixture, used here

pytestmark = pytest.mark.django_db

Kind = RoleDriftFinding.Kind
SignedIn = Callable[[User], HttpClient]


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


@pytest.fixture
def account(org: Boto3ClientFactory, request_account: Any) -> AwsAccount:
    return onboard(request_account, org)


def _role(account: AwsAccount, name: str) -> AccountRole:
    return AccountRole.objects.select_related("template", "account", "account__client").get(
        account=account, role_name=name)


def _role_findings(check: DriftCheck) -> list[RoleDriftFinding]:
    return list(check.role_findings.order_by("role_name"))


def test_a_trust_policy_changed_behind_the_portals_back_is_flagged_and_repair_restores_it(
    org: Boto3ClientFactory, account: AwsAccount, manager: User, auditor: User, signed_in: SignedIn,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given an onboarded account that AWS and the portal agree on
    assert _role_findings(drift.drift_check_run(clients=org)) == []
    # when someone with the member account's credentials loosens a role's trust policy
    iam = member_iam(org, account.account_id)
    principals = [f"arn:aws:iam::{MAIN_ACCOUNT_ID}:root", "arn:aws:iam::999999999999:root"]
    iam.update_assume_role_policy(RoleName="SwitchyardEngineer", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": principals}}],
    }))
    check = drift.drift_check_run(clients=org)

    # then the check flags exactly that role, in plain words, and audits it
    [finding] = _role_findings(check)
    assert (finding.kind, finding.role_name, finding.account_id) == (Kind.DIFFERENT, "SwitchyardEngineer", account.pk)
    assert finding.differences == [
        "trust policy differs",
        "it also trusts AWS arn:aws:iam::999999999999:root",
        "it lets the main account in without MFA",
    ]
    found = AuditEvent.objects.get(action="drift.found")
    assert found.target_id == str(finding.account_role_id) and found.details["kind"] == "different"
    # and managers and auditors see it on the drift page; only managers get a repair button
    auditor_page = signed_in(auditor).get(reverse("switchroles:drift")).content.decode()
    assert "it also trusts AWS arn:aws:iam::999999999999:root" in auditor_page
    repair_url = reverse("switchroles:drift_repair", args=[finding.pk])
    assert repair_url not in auditor_page
    manager_http = reauthenticated(signed_in(manager), manager)
    assert repair_url in manager_http.get(reverse("switchroles:drift")).content.decode()

    # when a manager repairs it (a worker re-applies the template)
    with django_capture_on_commit_callbacks(execute=True):
        response = manager_http.post(repair_url)

    # then the role read back from AWS is exactly the portal's spec again, and both steps are audited
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.repair_status == RoleDriftFinding.Repair.REPAIRED
    spec = role_spec_for(_role(account, "SwitchyardEngineer"))
    current = aws.read_role(clients=org, credentials=aws.assume_access_role(
        clients=org, account_id=account.account_id, session_name="test"), path=spec.path, name=spec.name)
    assert current is not None
    assert current.trust_policy == spec.trust_policy
    assert aws.role_differences(current, spec) == ()
    assert AuditEvent.objects.get(action="drift.repair_requested").actor == manager
    assert AuditEvent.objects.get(action="drift.repaired").details["action"] == "updated"
    assert _role_findings(drift.drift_check_run(clients=org)) == []


def test_a_deleted_role_is_flagged_missing_and_repair_creates_it_again(
    org: Boto3ClientFactory, account: AwsAccount, manager: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a role deleted in the member account by someone else
    credentials = aws.assume_access_role(clients=org, account_id=account.account_id, session_name="test")
    aws.delete_role(clients=org, credentials=credentials, name="SwitchyardOnCall")

    # when the check runs, then it is reported missing
    [finding] = _role_findings(drift.drift_check_run(clients=org))
    assert (finding.kind, finding.role_name) == (Kind.MISSING, "SwitchyardOnCall")

    # when a manager repairs it, then the role exists again exactly as its template says
    with django_capture_on_commit_callbacks(execute=True):
        drift.drift_repair_request(finding=finding, actor=manager)
    spec = role_spec_for(_role(account, "SwitchyardOnCall"))
    current = aws.read_role(clients=org, credentials=credentials, path=spec.path, name=spec.name)
    assert current is not None and aws.role_differences(current, spec) == ()
    assert AuditEvent.objects.get(action="drift.repaired").details["action"] == "created"


def test_a_switchyard_role_the_portal_does_not_know_is_reported_and_another_role_is_not(
    org: Boto3ClientFactory, account: AwsAccount, manager: User,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given two roles added under /switchyard/ behind the portal's back, one marked as Switchyard's
    iam = member_iam(org, account.account_id)
    trust = json.dumps(role_spec_for(_role(account, "SwitchyardEngineer")).trust_policy)
    iam.create_role(RoleName="SwitchyardLeftover", Path="/switchyard/acme/", AssumeRolePolicyDocument=trust,
                    Tags=[{"Key": "managed-by", "Value": "switchyard"}])
    iam.create_role(RoleName="ClientsOwnRole", Path="/switchyard/acme/", AssumeRolePolicyDocument=trust)

    # when the check runs
    [finding] = _role_findings(drift.drift_check_run(clients=org))

    # then only the one marked as Switchyard's is reported, as unknown to the portal
    assert (finding.kind, finding.role_name, finding.account_role) == (Kind.UNKNOWN, "SwitchyardLeftover", None)
    assert finding.role_arn == f"arn:aws:iam::{account.account_id}:role/switchyard/acme/SwitchyardLeftover"

    # when a manager repairs it, then the portal's version wins: that role is deleted, the other stays
    with django_capture_on_commit_callbacks(execute=True):
        drift.drift_repair_request(finding=finding, actor=manager)
    names = {r["RoleName"] for r in iam.list_roles(PathPrefix="/switchyard/")["Roles"]}
    assert names == {"SwitchyardEngineer", "SwitchyardOnCall", "ClientsOwnRole"}


def test_drift_still_there_at_the_next_check_is_audited_once_and_keeps_when_it_was_first_seen(
    org: Boto3ClientFactory, account: AwsAccount,
) -> None:
    # given a role whose session length was changed behind the portal's back
    member_iam(org, account.account_id).update_role(RoleName="SwitchyardOnCall", MaxSessionDuration=7200)

    # when two checks run
    first = _role_findings(drift.drift_check_run(clients=org))
    second = _role_findings(drift.drift_check_run(clients=org))

    # then both show it, first seen at the first check, and it was audited once
    assert [f.differences for f in first] == [f.differences for f in second] == [
        ["maximum session duration is 7200s, expected 43200s"]]
    assert second[0].first_seen_at == first[0].first_seen_at
    assert AuditEvent.objects.filter(action="drift.found").count() == 1


class _DeniedAccess:
    """moto, except that AssumeRole into member accounts is refused."""

    def __init__(self, inner: ClientFactory) -> None:
        self.inner = inner

    def client(self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True) -> Any:
        client = self.inner.client(service, credentials, retries=retries)
        if service == "sts":
            stubber = Stubber(client)
            stubber.add_client_error("assume_role", service_error_code="AccessDenied", http_status_code=403,
                                     service_message="not authorized to perform: sts:AssumeRole")
            stubber.activate()
        return client


def test_an_account_switchyard_cannot_enter_is_reported_with_the_aws_code(
    org: Boto3ClientFactory, account: AwsAccount
) -> None:
    # given an account whose OrganizationAccountAccessRole refuses Switchyard
    # when the roles are checked
    check = drift.drift_roles_check(check=DriftCheck.objects.create(checked_at=account.created_at),
                                    clients=_DeniedAccess(org))

    # then the account is reported as not checked, with AWS's code
    [finding] = _role_findings(check)
    assert (finding.kind, finding.error_code, finding.account_id) == (Kind.UNREACHABLE, "AccessDenied", account.pk)
    assert not drift.finding_repairable(finding)


def test_a_main_account_policy_changed_behind_the_portals_back_is_flagged_and_repair_rewrites_it(
    org: Boto3ClientFactory, account: AwsAccount, manager: User, engineer: User, signed_in: SignedIn,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a team granted the account's Engineer role, enforced in the main account
    iam = org.client("iam")
    iam.create_user(UserName=engineer.iam_username)
    team = grants.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    grants.team_member_add(team=team, person=engineer, added_by=manager)
    with django_capture_on_commit_callbacks(execute=True):
        grants.grant_create(granted_by=manager, team=team, account=account,
                            templates=templates("SwitchyardEngineer"), reason="runs it")
    granted = {_role(account, "SwitchyardEngineer").arn}
    assert main_account_allowed(org, "group", "platform-engineers") == granted
    # and someone detaches the group's Switchyard policy by hand
    for policy in iam.list_attached_group_policies(GroupName="platform-engineers")["AttachedPolicies"]:
        iam.detach_group_policy(GroupName="platform-engineers", PolicyArn=policy["PolicyArn"])

    # when the drift check runs
    check = drift.drift_check_run(clients=org)

    # then the team's group is reported with the role AWS no longer allows, on the drift page too
    [finding] = list(check.findings.all())
    assert (finding.principal_name, finding.missing_arns, finding.team) == ("platform-engineers", sorted(granted),
                                                                          Team.objects.get())
    http = reauthenticated(signed_in(manager), manager)
    page = http.get(reverse("switchroles:drift")).content.decode()
    assert "platform-engineers" in page and reverse("switchroles:drift_repair_main_account") in page

    # when a manager repairs the main account
    with django_capture_on_commit_callbacks(execute=True):
        assert http.post(reverse("switchroles:drift_repair_main_account")).status_code == 302

    # then AWS allows exactly the granted role again, and the repair is audited
    assert main_account_allowed(org, "group", "platform-engineers") == granted
    repaired = AuditEvent.objects.get(action="drift.repaired")
    assert repaired.actor == manager and repaired.details["still_different"] == 0


def test_a_manager_can_ask_for_a_check_now(
    org: Boto3ClientFactory, account: AwsAccount, manager: User, signed_in: SignedIn,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # when a manager presses "Check AWS now"
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(manager).post(reverse("switchroles:drift_check"))

    # then a full check ran (the account's two roles compared), and the request is audited
    assert response.status_code == 302
    check = DriftCheck.objects.get()
    assert check.roles_checked == 2
    assert AuditEvent.objects.get(action="drift.check_requested").actor == manager


def test_engineers_cannot_see_the_drift_page(engineer: User, auditor: User, signed_in: SignedIn) -> None:
    assert signed_in(engineer).get(reverse("switchroles:drift")).status_code == 403
    assert signed_in(auditor).get(reverse("switchroles:drift")).status_code == 200


def test_auditors_get_403_on_every_drift_rollout_and_hand_back_post(
    auditor: User, signed_in: SignedIn, estate: Any,
) -> None:
    # given a finding, a roll-out part and an account to point at
    from onboarding.models import Client
    from switchroles.models import RolloutAccount, TemplateRollout
    from tests.onboarding.conftest import mark_reauthenticated

    account_row = estate.account(estate.client("Acme Retail", "acme"))
    role = estate.role(account_row, "engineer")
    finding = RoleDriftFinding.objects.create(
        check_run=DriftCheck.objects.create(checked_at=account_row.created_at, roles_checked=1),
        kind=Kind.MISSING, account=account_row, account_role=role, role_name=role.role_name,
        first_seen_at=account_row.created_at,
    )
    rollout = TemplateRollout.objects.create(template=role.template, revision=2, started_at=account_row.created_at)
    part = RolloutAccount.objects.create(rollout=rollout, account_role=role, status=RolloutAccount.Status.FAILED)
    http = mark_reauthenticated(signed_in(auditor), auditor)
    urls = [
        reverse("switchroles:drift_check"),
        reverse("switchroles:drift_repair", args=[finding.pk]),
        reverse("switchroles:drift_repair_main_account"),
        reverse("switchroles:rollout_account_retry", args=[role.template_id, part.pk]),
        reverse("onboarding:account_handback", args=[account_row.pk]),
        reverse("onboarding:client_handback", args=[Client.objects.get().pk]),
    ]
    events = AuditEvent.objects.count()

    # when an auditor POSTs to each, then each answers 403 and nothing changes
    for url in urls:
        assert http.post(url, {"reason": "x", "roles": "delete"}).status_code == 403, url
    finding.refresh_from_db()
    part.refresh_from_db()
    assert finding.repair_status == "" and part.status == RolloutAccount.Status.FAILED
    assert AuditEvent.objects.count() == events


def test_a_repair_that_aws_does_not_show_afterwards_fails_instead_of_claiming_success(
    org: Boto3ClientFactory, account: AwsAccount, manager: User, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a role whose trust was loosened behind the portal's back, found by a check
    iam = member_iam(org, account.account_id)
    iam.update_assume_role_policy(RoleName="SwitchyardEngineer", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                       "Principal": {"AWS": "arn:aws:iam::999999999999:root"}}],
    }))
    [finding] = _role_findings(drift.drift_check_run(clients=org))
    # and an IAM that answers the repair's writes but does not apply them (as a write lost in IAM's
    # eventual consistency, or a guard in the account, would look)
    real_ensure_role = aws.ensure_role

    def ensure_role_that_changes_nothing(*, clients: ClientFactory, credentials: Any, spec: Any) -> Any:
        current = aws.read_role(clients=clients, credentials=credentials, path=spec.path, name=spec.name)
        assert current is not None
        result = real_ensure_role(clients=clients, credentials=credentials, spec=spec)
        member_iam(org, account.account_id).update_assume_role_policy(
            RoleName=spec.name, PolicyDocument=json.dumps(current.trust_policy))
        return result

    monkeypatch.setattr(aws, "ensure_role", ensure_role_that_changes_nothing)

    # when the repair runs
    drift.drift_repair_request(finding=finding, actor=manager)
    repaired = drift.drift_repair_run(finding_id=finding.pk, clients=org)

    # then the read-back catches it: the repair failed, in plain words, and is audited as failed
    assert repaired is not None and repaired.repair_status == RoleDriftFinding.Repair.FAILED
    assert "AWS still shows differences after the repair" in repaired.repair_error
    assert AuditEvent.objects.filter(action="drift.repair_failed").exists()
    assert not AuditEvent.objects.filter(action="drift.repaired").exists()
