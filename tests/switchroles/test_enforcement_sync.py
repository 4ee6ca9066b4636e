"""Enforcement in the main account (moto): after every change the IAM policies allow exactly the
granted role ARNs, group members follow the teams, and drift is found and repaired."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.utils import timezone

from onboarding.models import AwsAccount, Client
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory, allowed_role_arns
from switchroles import enforcement, services
from switchroles.models import AccountRole, DriftCheck, EnforcedPrincipal, Team
from switchroles.policies import MANAGED_POLICY_MAX_CHARS, MAX_MANAGED_POLICIES_PER_PRINCIPAL
from switchroles.selectors import links_for_person
from tests.factories import AccountRoleFactory, AwsAccountFactory

from .conftest import Estate, iam_user_create, tier


def iam() -> Any:
    return boto3.client("iam", region_name="us-east-1")


def attached_documents(kind: str, name: str) -> list[tuple[str, str]]:
    """(policy name, document text as IAM stores it) of the principal's attached policies, from IAM."""
    client = iam()
    if kind == "group":
        attached = client.list_attached_group_policies(GroupName=name)["AttachedPolicies"]
    else:
        attached = client.list_attached_user_policies(UserName=name)["AttachedPolicies"]
    found = []
    for policy in attached:
        meta = client.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]
        version = client.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=meta["DefaultVersionId"])
        document = version["PolicyVersion"]["Document"]
        found.append((policy["PolicyName"], document if isinstance(document, str) else json.dumps(document)))
    return found


def allowed_in_iam(kind: str, name: str) -> set[str]:
    """The role ARNs IAM's documents for the principal allow, parsed and expanded."""
    account_clients = {a or "": s for a, s in AwsAccount.objects.values_list("account_id", "client__slug")}
    documents = [json.loads(text) for _name, text in attached_documents(kind, name)]
    return allowed_role_arns(documents, account_clients=account_clients)


def role_arns(roles: Any) -> set[str]:
    return {f"arn:aws:iam::{r.account.account_id}:role{r.role_path}{r.role_name}" for r in roles}


def group_members(name: str) -> set[str]:
    return {user["UserName"] for user in iam().get_group(GroupName=name)["Users"]}


@pytest.fixture
def team(manager: Any, engineer: Any, aws: Boto3ClientFactory) -> Team:
    iam_user_create(engineer)
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    return team


def sync(aws: Boto3ClientFactory, **kwargs: Any) -> enforcement.SyncReport:
    with enforcement.enforcement_lock():
        return enforcement.enforcement_sync(clients=aws, **kwargs)


def test_after_a_grant_the_groups_policies_allow_exactly_the_granted_roles(
    estate: Estate, manager: Any, engineer: Any, team: Team, aws: Boto3ClientFactory,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given two clients with three tiers in each account
    acme = estate.client_with_roles("Acme Retail", accounts=3)
    estate.client_with_roles("Globex Logistics", accounts=2)
    # when a manager grants the team Engineer and On-call on Acme (the task runs on commit)
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_create(granted_by=manager, team=team, client=acme,
                              templates=[tier("engineer"), tier("oncall")], reason="runs Acme")
    # then IAM's documents for the team's group allow exactly those six role ARNs, with MFA
    granted = AccountRole.objects.filter(account__client=acme, template__tier__in=["engineer", "oncall"])
    assert allowed_in_iam("group", "platform-engineers") == role_arns(granted) == role_arns(
        links_for_person(person=engineer)
    )
    for _name, text in attached_documents("group", "platform-engineers"):
        for statement in json.loads(text)["Statement"]:
            assert statement["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}
    # and the engineer's IAM user is in the group; the change is audited
    assert group_members("platform-engineers") == {engineer.iam_username}
    assert AuditEvent.objects.filter(action="enforcement.applied", target_id=str(team.pk)).count() == 1


def test_after_a_revoke_only_the_remaining_grants_are_allowed_then_nothing(
    estate: Estate, manager: Any, team: Team, aws: Boto3ClientFactory, django_capture_on_commit_callbacks: Any,
) -> None:
    # given the team granted Engineer on Acme and On-call on one Globex account
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    globex = estate.client_with_roles("Globex Logistics", accounts=2)
    globex_account = globex.accounts.order_by("pk")[0]
    with django_capture_on_commit_callbacks(execute=True):
        acme_grant = services.grant_create(granted_by=manager, team=team, client=acme,
                                           templates=[tier("engineer")], reason="x")
        globex_grant = services.grant_create(granted_by=manager, team=team, account=globex_account,
                                             templates=[tier("oncall")], reason="y")
    globex_roles = AccountRole.objects.filter(account=globex_account, template__tier="oncall")
    acme_roles = AccountRole.objects.filter(account__client=acme, template__tier="engineer")
    assert allowed_in_iam("group", "platform-engineers") == role_arns(acme_roles) | role_arns(globex_roles)
    # when the Acme grant is revoked
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_revoke(grant=acme_grant, revoked_by=manager, reason="contract ended")
    # then exactly the Globex role is allowed
    assert allowed_in_iam("group", "platform-engineers") == role_arns(globex_roles)
    # when the last grant is revoked, then no Switchyard policy is left on the group
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_revoke(grant=globex_grant, revoked_by=manager, reason="done")
    assert attached_documents("group", "platform-engineers") == []
    assert allowed_in_iam("group", "platform-engineers") == set()


def test_personal_grants_are_enforced_on_the_persons_iam_user(
    estate: Estate, manager: Any, make_person: Any, aws: Boto3ClientFactory, django_capture_on_commit_callbacks: Any,
) -> None:
    # given a person with an IAM user
    sam = make_person("sam", "Engineer", iam_username="sam.oncall")
    iam_user_create(sam)
    globex = estate.client_with_roles("Globex Logistics")
    # when she is granted On-call personally
    with django_capture_on_commit_callbacks(execute=True):
        grant = services.grant_create(granted_by=manager, person=sam, client=globex, templates=[tier("oncall")],
                                      reason="incident")
    # then her IAM user allows exactly that role, under policies named for her
    expected = role_arns(AccountRole.objects.filter(account__client=globex, template__tier="oncall"))
    assert allowed_in_iam("user", "sam.oncall") == expected
    assert [name for name, _ in attached_documents("user", "sam.oncall")] == [f"switchyard-user-{sam.pk}-1"]
    # when it is revoked, then nothing is left
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_revoke(grant=grant, revoked_by=manager, reason="incident over")
    assert attached_documents("user", "sam.oncall") == []


def test_an_expired_grant_is_removed_from_aws_by_the_next_scheduled_sync(
    estate: Estate, manager: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given a grant expiring in an hour, applied
    acme = estate.client_with_roles("Acme Retail")
    expires = timezone.now() + timedelta(hours=1)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x",
                          expires_at=expires)
    sync(aws)
    assert len(allowed_in_iam("group", "platform-engineers")) == 1
    # when the every-minute sync runs after the expiry (nobody changed anything)
    sync(aws, at=expires + timedelta(seconds=30), reason="schedule")
    # then AWS no longer allows it
    assert allowed_in_iam("group", "platform-engineers") == set()


def test_a_person_leaving_the_team_leaves_its_iam_group(
    estate: Estate, manager: Any, engineer: Any, team: Team, aws: Boto3ClientFactory,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given the team has a grant and the engineer is in its IAM group
    acme = estate.client_with_roles("Acme Retail")
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    assert group_members("platform-engineers") == {engineer.iam_username}
    # when the engineer leaves the team
    with django_capture_on_commit_callbacks(execute=True):
        services.team_member_remove(team=team, person=engineer, removed_by=manager)
    # then AWS no longer lets them in through the group, while the policy stays for the others
    assert group_members("platform-engineers") == set()
    assert len(allowed_in_iam("group", "platform-engineers")) == 1


def test_a_team_granted_1000_accounts_across_300_clients_gets_policies_within_iams_limits(
    manager: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given 1,000 accounts across 300 clients, each with Engineer and On-call roles (bulk-created rows)
    clients = Client.objects.bulk_create(
        [Client(name=f"Client {n:03d}", slug=f"client-{n:03d}") for n in range(300)]
    )
    accounts = AwsAccount.objects.bulk_create([
        AwsAccountFactory.build(client=clients[n % 300], name=f"account-{n}", reason="scale")
        for n in range(1000)
    ])
    for n, account in enumerate(accounts):
        account.client = clients[n % 300]
    AccountRole.objects.bulk_create(
        [AccountRoleFactory.build(account=account, template=tier(name))
         for account in accounts for name in ("engineer", "oncall")]
    )
    # when the team is granted Engineer on every client, and enforcement runs
    for client in clients:
        services.grant_create(granted_by=manager, team=team, client=client, templates=[tier("engineer")],
                              reason="the whole estate")
    report = sync(aws)
    # then it applied within IAM's limits: at most 10 policies of at most 6,144 characters each
    assert report.failed == {}
    documents = attached_documents("group", "platform-engineers")
    assert 1 <= len(documents) <= MAX_MANAGED_POLICIES_PER_PRINCIPAL
    for _name, text in documents:
        assert len("".join(text.split())) <= MANAGED_POLICY_MAX_CHARS
    # and they allow exactly the 1,000 Engineer roles
    engineer_roles = AccountRole.objects.filter(template__tier="engineer").select_related("account")
    assert allowed_in_iam("group", "platform-engineers") == role_arns(engineer_roles)
    assert len(role_arns(engineer_roles)) == 1000


def test_a_second_sync_with_nothing_changed_writes_nothing(
    estate: Estate, manager: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given applied grants
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    first = sync(aws)
    events = AuditEvent.objects.filter(action__startswith="enforcement.").count()
    # when the sync runs again
    second = sync(aws)
    # then nothing is applied or audited again
    assert first.applied == [f"team-{team.pk}"]
    assert second.applied == [] and second.unchanged >= 1
    assert AuditEvent.objects.filter(action__startswith="enforcement.").count() == events


def test_drift_is_found_shown_as_missing_and_extra_arns_and_repaired(
    estate: Estate, manager: Any, engineer: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given the team's grant is applied
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    sync(aws)
    granted = role_arns(AccountRole.objects.filter(account__client=acme, template__tier="engineer"))
    # when someone edits the policy by hand in AWS (drops a role, adds the admin role) and adds a member
    admin_arn = next(iter(role_arns(AccountRole.objects.filter(account__client=acme,
                                                               template__tier="administrator"))))
    kept = sorted(granted)[0]
    hand_edit = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": [kept, admin_arn],
         "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}}}]}
    policy_arn = iam().list_attached_group_policies(GroupName="platform-engineers")["AttachedPolicies"][0]["PolicyArn"]
    iam().create_policy_version(PolicyArn=policy_arn, PolicyDocument=json.dumps(hand_edit), SetAsDefault=True)
    iam().create_user(UserName="intruder")
    iam().add_user_to_group(GroupName="platform-engineers", UserName="intruder")
    # then the drift check shows the difference, audits it, and marks the group for repair
    check = enforcement.enforcement_drift_check(clients=aws)
    finding = check.findings.get()
    assert (finding.principal_type, finding.principal_name) == ("group", "platform-engineers")
    assert set(finding.missing_arns) == granted - {kept}
    assert finding.extra_arns == [admin_arn]
    assert finding.extra_members == ["intruder"] and finding.missing_members == []
    assert AuditEvent.objects.filter(action="enforcement.drift_found", target_id=str(check.pk)).exists()
    assert EnforcedPrincipal.objects.get(team=team).needs_apply
    # when the next sync runs, then AWS says what the portal says again
    sync(aws)
    assert allowed_in_iam("group", "platform-engineers") == granted
    assert group_members("platform-engineers") == {engineer.iam_username}
    assert enforcement.enforcement_drift_check(clients=aws).drifted == 0


def test_a_policy_not_in_switchyards_form_is_reported_as_drift(
    estate: Estate, manager: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given an applied grant whose policy someone replaced with a wildcard
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    sync(aws)
    policy_arn = iam().list_attached_group_policies(GroupName="platform-engineers")["AttachedPolicies"][0]["PolicyArn"]
    iam().create_policy_version(PolicyArn=policy_arn, SetAsDefault=True, PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    # when drift is checked, then the finding says the policy may allow anything
    finding = enforcement.enforcement_drift_check(clients=aws).findings.get()
    assert "not in Switchyard's form" in finding.problem


def test_a_missing_iam_user_is_recorded_audited_once_and_does_not_stop_the_others(
    estate: Estate, manager: Any, make_person: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given a personal grant to someone whose IAM user does not exist, and a team grant
    ghost = make_person("ghost", "Engineer", iam_username="ghost.user")
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, person=ghost, client=acme, templates=[tier("oncall")], reason="x")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="y")
    # when enforcement runs twice
    first = sync(aws)
    second = sync(aws)
    # then the team is applied, the person's failure is kept and audited once
    assert f"team-{team.pk}" in first.applied
    assert "ghost.user" in first.failed[f"user-{ghost.pk}"] and f"user-{ghost.pk}" in second.failed
    assert "does not exist" in EnforcedPrincipal.objects.get(person=ghost).last_error
    assert AuditEvent.objects.filter(action="enforcement.failed", target_id=str(ghost.pk)).count() == 1
    # when the IAM user appears, the next sync applies it
    iam_user_create(ghost)
    assert f"user-{ghost.pk}" in sync(aws).applied
    assert EnforcedPrincipal.objects.get(person=ghost).last_error == ""


def test_renaming_a_teams_iam_group_removes_the_grants_from_the_old_group(
    estate: Estate, manager: Any, engineer: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given the team's grant applied to its group
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    sync(aws)
    # when the team's IAM group is renamed and enforcement runs
    Team.objects.filter(pk=team.pk).update(iam_group_name="platform-v2")
    sync(aws)
    # then the new group has the grants and the members, and the old one has neither
    assert len(allowed_in_iam("group", "platform-v2")) == 1
    assert group_members("platform-v2") == {engineer.iam_username}
    assert attached_documents("group", "platform-engineers") == []
    assert group_members("platform-engineers") == set()


def test_the_drift_check_task_records_a_clean_check(
    estate: Estate, manager: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given a grant not yet applied
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    # when the scheduled drift check runs (it applies pending changes first)
    from switchroles.tasks import enforcement_drift_check

    enforcement_drift_check.delay()
    # then AWS matches the portal
    check = DriftCheck.objects.get()
    assert (check.drifted, check.error, check.principals_checked) == (0, "", 1)


def test_clearing_a_persons_iam_user_name_takes_the_grants_off_the_old_user(
    estate: Estate, manager: Any, make_person: Any, aws: Boto3ClientFactory
) -> None:
    # given a personal grant applied to sam.oncall
    sam = make_person("sam", "Engineer", iam_username="sam.oncall")
    iam_user_create(sam)
    services.grant_create(granted_by=manager, person=sam, client=estate.client_with_roles("Acme Retail"),
                          templates=[tier("oncall")], reason="x")
    sync(aws)
    assert len(allowed_in_iam("user", "sam.oncall")) == 1
    # when her IAM user name is cleared and enforcement runs (twice)
    type(sam).objects.filter(pk=sam.pk).update(iam_username="")
    sync(aws)
    report = sync(aws)
    # then the old user allows nothing, and the grant is shown as not enforceable, audited once
    assert attached_documents("user", "sam.oncall") == []
    assert "no IAM user name" in report.not_enforceable[f"user-{sam.pk}"]
    assert AuditEvent.objects.filter(action="enforcement.failed", target_id=str(sam.pk)).count() == 1


def test_a_deactivated_person_leaves_the_groups_and_loses_personal_policies(
    estate: Estate, manager: Any, engineer: Any, team: Team, aws: Boto3ClientFactory
) -> None:
    # given the engineer in the team's group and with a personal grant
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("oncall")], reason="y")
    sync(aws)
    assert group_members("platform-engineers") == {engineer.iam_username}
    assert len(allowed_in_iam("user", engineer.iam_username)) == 1
    # when their account is deactivated
    type(engineer).objects.filter(pk=engineer.pk).update(is_active=False)
    sync(aws)
    # then AWS no longer lets them assume anything through Switchyard
    assert group_members("platform-engineers") == set()
    assert attached_documents("user", engineer.iam_username) == []
