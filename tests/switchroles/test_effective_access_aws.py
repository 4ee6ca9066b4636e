"""Effective access against moto as the main account: what AWS really lets main-account users
and roles assume, next to the grants, on the drift page and in the CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.test import override_settings
from moto import mock_aws
from moto.iam.models import iam_backends

from onboarding.models import AwsAccount
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from switchroles import access_checks, enforcement, services
from switchroles.models import AccessCheck, AccessFinding

from .conftest import Estate, iam_user_create, tier

MAIN = "123456789012"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    """moto as the main account, with AWS managed policies loaded so AdministratorAccess attaches."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    settings.AWS_ENDPOINT_URL = ""
    settings.AWS_REGION = "us-east-1"
    settings.SWITCHYARD_MAIN_ACCOUNT_ID = MAIN
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield Boto3ClientFactory(region_name="us-east-1")


def iam() -> Any:
    return boto3.client("iam", region_name="us-east-1")


def put_user_permissions_boundary(user_name: str, policy_arn: str) -> None:
    """moto 5.2 lacks PutUserPermissionsBoundary: set what GetAccountAuthorizationDetails reports."""
    iam_backends[MAIN]["global"].users[user_name].permissions_boundary = {
        "PermissionsBoundaryType": "PermissionsBoundaryPolicy", "PermissionsBoundaryArn": policy_arn,
    }


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def open_findings(kind: str) -> dict[tuple[str, str], AccessFinding]:
    return {(f.principal_name, f.role_arn): f
            for f in AccessFinding.objects.filter(kind=kind, resolved_at__isnull=True)}


@pytest.fixture
def main_account(estate: Estate, manager: Any, engineer: Any, make_person: Any, aws: Boto3ClientFactory) -> dict:
    """A client with one account, a team granted its Engineer role, and the main account's IAM
    as a new user of AWS would leave it."""
    acme = estate.client_with_roles("Acme Retail")
    account = AwsAccount.objects.get(client=acme)
    roles = {r.template.tier: r for r in account.roles.select_related("template")}
    iam_user_create(engineer)
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    with enforcement.enforcement_lock():
        enforcement.enforcement_sync(clients=aws)
    client = iam()
    # AdministratorAccess on a group with a member
    client.create_user(UserName="ada-admin")
    client.create_group(GroupName="admins")
    client.attach_group_policy(GroupName="admins", PolicyArn=ADMIN)
    client.add_user_to_group(GroupName="admins", UserName="ada-admin")
    # inline sts:AssumeRole on * on a user
    client.create_user(UserName="ivan-inline")
    client.put_user_policy(UserName="ivan-inline", PolicyName="assume-anything",
                           PolicyDocument=policy({"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}))
    # an Allow cancelled by a Deny in a customer managed policy at a deep path
    client.create_user(UserName="dora-denied")
    client.attach_user_policy(UserName="dora-denied", PolicyArn=ADMIN)
    deny = client.create_policy(PolicyName="no-switching", Path="/guard/rails/", PolicyDocument=policy(
        {"Sid": "NoAssume", "Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*"}))["Policy"]["Arn"]
    client.attach_user_policy(UserName="dora-denied", PolicyArn=deny)
    # NotAction
    client.create_user(UserName="nate-notaction")
    client.put_user_policy(UserName="nate-notaction", PolicyName="all-but-iam",
                           PolicyDocument=policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}))
    # limited by a permissions boundary
    client.create_user(UserName="bob-bounded")
    client.attach_user_policy(UserName="bob-bounded", PolicyArn=ADMIN)
    boundary = client.create_policy(PolicyName="s3-only", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}))["Policy"]["Arn"]
    put_user_permissions_boundary("bob-bounded", boundary)
    # a main-account role with AdministratorAccess (role sessions)
    client.create_role(RoleName="ci-deployer", Path="/automation/", AssumeRolePolicyDocument=policy(
        {"Effect": "Allow", "Principal": {"Service": "codebuild.amazonaws.com"}, "Action": "sts:AssumeRole"}))
    client.attach_role_policy(RoleName="ci-deployer", PolicyArn=ADMIN)
    # the team's own group: a customer managed policy outside /switchyard/ and an inline policy
    hand_made = client.create_policy(PolicyName="assume-admin", Path="/hand-made/", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::*:role/switchyard/*/"
         "SwitchyardAdministrator"}))["Policy"]["Arn"]
    client.attach_group_policy(GroupName="platform-engineers", PolicyArn=hand_made)
    # an extra group membership with an inline group policy
    client.create_group(GroupName="legacy-ops")
    client.put_group_policy(GroupName="legacy-ops", PolicyName="oncall-everywhere", PolicyDocument=policy(
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "arn:aws:iam::*:role/switchyard/*"}))
    client.add_user_to_group(GroupName="legacy-ops", UserName=engineer.iam_username)
    return {"acme": acme, "account": account, "roles": roles, "team": team, "deny": deny, "boundary": boundary,
            "hand_made": hand_made}


def test_each_kind_of_main_account_principal_is_classified_as_aws_would(
    main_account: dict, engineer: Any, aws: Boto3ClientFactory
) -> None:
    # given the main account above
    account, roles = main_account["account"], main_account["roles"]
    admin_role, oncall_role = roles["administrator"].arn, roles["oncall"].arn
    engineer_role = roles["engineer"].arn
    access_role = f"arn:aws:iam::{account.account_id}:role/OrganizationAccountAccessRole"
    # when the effective-access check runs
    check = access_checks.effective_access_check(clients=aws)
    # then it read the main account in a bounded number of calls
    assert check.error == ""
    assert check.api_calls <= 3  # one authorization-details page + AdministratorAccess's policy and version
    ungranted = open_findings(AccessFinding.Kind.UNGRANTED)
    # AdministratorAccess through a group: every role, the access role included, with MFA for console roles
    assert {arn for (who, arn) in ungranted if who == "ada-admin"} == {admin_role, engineer_role, oncall_role,
                                                                        access_role}
    assert ungranted[("ada-admin", admin_role)].policy == f"managed policy {ADMIN} (via group admins)"
    assert ungranted[("ada-admin", admin_role)].detail.startswith("Reachable with MFA: an Administrator role")
    assert ungranted[("ada-admin", access_role)].detail.startswith("Reachable: the account's access role")
    # inline sts:AssumeRole on *
    assert ungranted[("ivan-inline", oncall_role)].policy == "inline policy assume-anything"
    assert ungranted[("ivan-inline", oncall_role)].statement == "statement #1"
    # NotAction iam:* allows sts:AssumeRole
    assert ungranted[("nate-notaction", access_role)].policy == "inline policy all-but-iam"
    # the Deny and the boundary stop the other two, and the page will say why
    assert not [key for key in ungranted if key[0] in ("dora-denied", "bob-bounded")]
    reasons = {(b["principal"], b["reason"]) for b in check.blocked}
    assert ("dora-denied", f"an explicit Deny in managed policy {main_account['deny']} statement NoAssume") in reasons
    assert ("bob-bounded", f"its permissions boundary {main_account['boundary']} does not allow sts:AssumeRole "
                           "there") in reasons
    # a role session reaches the access role only: console roles need aws:username
    assert {arn for (who, arn) in ungranted if who == "ci-deployer"} == {access_role}
    assert any(b["principal"] == "ci-deployer" and "a role session has no aws:username" in b["reason"]
               for b in check.blocked)
    # the team's engineer: the granted role is explained; the hand-made group policy (customer
    # managed, outside /switchyard/) and the extra group's inline policy are named
    name = engineer.iam_username
    assert (name, engineer_role) not in ungranted
    assert ungranted[(name, admin_role)].policy in {
        f"managed policy {main_account['hand_made']} (via group platform-engineers)",
        "inline policy oncall-everywhere (via group legacy-ops)",
    }
    assert ungranted[(name, oncall_role)].policy == "inline policy oncall-everywhere (via group legacy-ops)"
    assert ungranted[(name, oncall_role)].person == engineer
    # the short list: who reaches every client's access role
    assert {item["principal"] for item in check.administrators_everywhere} == {
        "ada-admin", "ivan-inline", "nate-notaction", "ci-deployer"}
    assert AuditEvent.objects.filter(action="access.findings_changed").count() == 1


def test_findings_show_on_the_drift_page_and_in_the_csv(
    main_account: dict, auditor: Any, signed_in: Any, aws: Boto3ClientFactory
) -> None:
    # given a check has run (and the main-account policies themselves match the grants)
    enforcement.enforcement_drift_check(clients=aws)
    access_checks.effective_access_check(clients=aws)
    # when an auditor opens the drift page and the CSV
    client = signed_in(auditor)
    page = client.get("/drift/").content.decode()
    rows = list(csv.DictReader(io.StringIO(client.get("/drift/access/findings.csv").content.decode())))
    # then the page never says AWS matches, and names each principal
    assert "AWS allows exactly what the grants say" not in page
    for name in ("ada-admin", "ivan-inline", "nate-notaction", "ci-deployer"):
        assert f'data-principal="{name}"' in page
    assert "an explicit Deny in managed policy" in page and "does not allow sts:AssumeRole there" in page
    assert "a role session has no aws:username" in page
    by_principal: dict[str, set[str]] = {}
    for row in rows:
        by_principal.setdefault(row["principal"], set()).add(row["kind"])
    assert by_principal["ada-admin"] == {"Reachable without a grant"}
    assert "dora-denied" not in by_principal and "bob-bounded" not in by_principal
    assert any(row["principal"] == "ci-deployer" and row["role_arn"].endswith("/OrganizationAccountAccessRole")
               for row in rows)


def test_a_finding_resolves_when_aws_no_longer_allows_it_and_only_then_the_page_says_it_matches(
    main_account: dict, auditor: Any, signed_in: Any, engineer: Any, aws: Boto3ClientFactory
) -> None:
    # given findings are open, and the main account's Switchyard policies are repaired
    access_checks.effective_access_check(clients=aws)
    from switchroles import drift

    drift.main_account_repair_run(actor_id=None, clients=aws)
    # then a repair does not make the page say AWS matches while findings are open
    assert "AWS allows exactly what the grants say" not in signed_in(auditor).get("/drift/").content.decode()
    # when every hand-made permission is taken away
    client = iam()
    client.remove_user_from_group(GroupName="admins", UserName="ada-admin")
    for user in ("ivan-inline", "nate-notaction"):
        client.delete_user_policy(UserName=user, PolicyName=client.list_user_policies(UserName=user)["PolicyNames"][0])
    client.detach_role_policy(RoleName="ci-deployer", PolicyArn=ADMIN)
    client.detach_group_policy(GroupName="platform-engineers", PolicyArn=main_account["hand_made"])
    client.remove_user_from_group(GroupName="legacy-ops", UserName=engineer.iam_username)
    check = access_checks.effective_access_check(clients=aws)
    # then every finding is resolved, kept with its dates, and the page says AWS matches
    assert not AccessFinding.objects.filter(resolved_at__isnull=True).exists()
    assert AccessFinding.objects.filter(resolved_at=AccessFinding.objects.first().resolved_at).exists()
    assert check.administrators_everywhere == []
    assert "AWS allows exactly what the grants say" in signed_in(auditor).get("/drift/").content.decode()


def test_a_later_check_keeps_what_it_sees_again_dates_what_is_gone_by_the_last_check_that_saw_it(
    main_account: dict, aws: Boto3ClientFactory
) -> None:
    # given two checks that saw the same findings, and a door into the client recorded by the
    # drift check's own look
    first = access_checks.effective_access_check(clients=aws)
    second = access_checks.effective_access_check(clients=aws)
    opened = {f.pk: f for f in AccessFinding.objects.filter(resolved_at__isnull=True)}
    assert opened and all(f.last_check_id == first.pk for f in opened.values())
    door = AccessFinding.objects.create(
        kind=AccessFinding.Kind.DOOR, principal_type="account", principal_name="account 999999999999",
        principal_arn="999999999999", account=main_account["account"], role_arn="arn:aws:iam::1:role/vendor",
        opened_at=first.checked_at, last_seen_at=first.checked_at)
    # when one user's inline policy is taken away and the check runs again
    iam().delete_user_policy(UserName="ivan-inline", PolicyName="assume-anything")
    third = access_checks.effective_access_check(clients=aws)
    # then what it sees again keeps its row as it was (open: seen by the latest check); ivan's
    # are resolved by the third, dated by the second, the last check that saw them; nothing new
    # opens; the door is not the main-account check's
    rows = {f.pk: f for f in AccessFinding.objects.filter(pk__in=opened)}
    gone = {pk for pk, f in opened.items() if f.principal_name == "ivan-inline"}
    assert gone and len(gone) < len(opened)
    for pk, finding in rows.items():
        assert finding.opened_at == opened[pk].opened_at
        if pk in gone:
            assert finding.resolved_at == third.checked_at
            assert (finding.last_check_id, finding.last_seen_at) == (second.pk, second.checked_at)
        else:
            assert finding.resolved_at is None
            assert (finding.last_check_id, finding.last_seen_at) == (first.pk, first.checked_at)
    assert AccessFinding.objects.filter(resolved_at__isnull=True).exclude(pk=door.pk).count() == len(opened) - len(gone)
    door.refresh_from_db()
    assert door.resolved_at is None and door.last_check_id is None and door.last_seen_at == first.checked_at


def test_a_grant_aws_does_not_allow_is_granted_not_allowed(
    main_account: dict, engineer: Any, aws: Boto3ClientFactory
) -> None:
    # given the engineer's IAM user is taken out of the team's group (and the extra one) behind
    # Switchyard's back
    iam().remove_user_from_group(GroupName="platform-engineers", UserName=engineer.iam_username)
    iam().remove_user_from_group(GroupName="legacy-ops", UserName=engineer.iam_username)
    # when the check runs
    access_checks.effective_access_check(clients=aws)
    # then the granted Engineer role is "granted, not allowed", on the engineer
    finding = open_findings(AccessFinding.Kind.NOT_ALLOWED)[(engineer.iam_username,
                                                            main_account["roles"]["engineer"].arn)]
    assert finding.person == engineer
    assert "the IAM group platform-engineers" in finding.detail


def test_granted_people_whose_iam_user_name_aws_cannot_use_are_granted_not_allowed(
    main_account: dict, manager: Any, make_person: Any, aws: Boto3ClientFactory
) -> None:
    # given a team member without an IAM user name, a person granted a role directly under a name
    # IAM refuses, and a person with neither a usable name nor a grant
    nameless = make_person("nia", "Engineer")
    type(nameless).objects.filter(pk=nameless.pk).update(iam_username="")
    services.team_member_add(team=main_account["team"], person=nameless, added_by=manager)
    mistyped = make_person("jose", "Engineer", iam_username="jösé")
    services.grant_create(granted_by=manager, person=mistyped, account=main_account["account"],
                          templates=[tier("engineer")], reason="x")
    ungranted = make_person("kemal", "Engineer")
    type(ungranted).objects.filter(pk=ungranted.pk).update(iam_username="")
    # when the check runs
    access_checks.effective_access_check(clients=aws)
    # then the two granted people are "granted, not allowed", each with what to do, and nobody else is
    findings = {f.principal_name: f for f in AccessFinding.objects.filter(
        kind=AccessFinding.Kind.NOT_ALLOWED, principal_type="person", resolved_at__isnull=True)}
    assert set(findings) == {"nia", "jose"}
    assert "the profile has no IAM user name" in findings["nia"].detail
    assert "'jösé' is not one IAM accepts" in findings["jose"].detail
    assert all(f.person_id is not None and "Set the person's IAM user name" in f.detail for f in findings.values())


def test_an_aws_failure_is_shown_and_leaves_open_findings_open(
    main_account: dict, aws: Boto3ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given open findings
    access_checks.effective_access_check(clients=aws)
    opened = AccessFinding.objects.filter(resolved_at__isnull=True).count()
    # when AWS refuses the read
    from botocore.exceptions import ClientError

    from portal.aws import translate

    def refuse(**_: Any) -> Any:  # as the seam raises it
        raise translate(ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}},
                                    "GetAccountAuthorizationDetails"))

    monkeypatch.setattr(access_checks, "read_authorization_details", refuse)
    check = access_checks.effective_access_check(clients=aws)
    # then the check says so in plain words, with the code, and nothing is resolved
    assert "AccessDenied" in check.error
    assert AccessFinding.objects.filter(resolved_at__isnull=True).count() == opened
    assert AccessCheck.objects.count() == 2


@override_settings(SWITCHYARD_MAIN_ACCOUNT_ID=MAIN)
def test_a_manager_asks_for_a_check_from_the_drift_page(
    main_account: dict, manager: Any, auditor: Any, signed_in: Any, django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch, aws: Boto3ClientFactory,
) -> None:
    monkeypatch.setattr("switchroles.tasks.default_client_factory", lambda: aws)
    # when a manager presses the button (an auditor cannot)
    assert signed_in(auditor).post("/drift/access/check/").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(manager).post("/drift/access/check/")
    # then the check ran, and the request is audited
    assert response.status_code == 302
    assert AccessCheck.objects.count() == 1
    assert AuditEvent.objects.filter(action="access.check_requested", actor=manager).count() == 1


def test_findings_show_in_the_access_matrix_its_csv_the_persons_history_and_the_home_page(
    main_account: dict, engineer: Any, auditor: Any, signed_in: Any, aws: Boto3ClientFactory
) -> None:
    # given the engineer's IAM user is out of the team's group, and a check has run
    iam().remove_user_from_group(GroupName="platform-engineers", UserName=engineer.iam_username)
    iam().remove_user_from_group(GroupName="legacy-ops", UserName=engineer.iam_username)
    access_checks.effective_access_check(clients=aws)
    client = signed_in(auditor)
    acme = main_account["acme"]
    # when an auditor reads the matrix (with findings), its CSV, the engineer's history and home
    matrix = client.get(f"/audit/?client={acme.pk}&aws=any").content.decode()
    response = client.get(f"/audit/access.csv?client={acme.pk}")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    history = client.get(f"/audit/people/{engineer.pk}/").content.decode()
    home = client.get("/").content.decode()
    # then the granted row AWS refuses is marked, and the reaches without a grant are listed
    assert 'data-aws-refuses="1"' in matrix
    assert 'data-principal="ada-admin"' in matrix
    granted = [r for r in rows if r["via"] == "team"]
    assert [(r["person"], r["aws"]) for r in granted] == [(engineer.username, "granted, not allowed")]
    assert "the IAM group platform-engineers" in granted[0]["aws_detail"]
    ungranted = {(r["person"], r["role"]) for r in rows if r["aws"] == "reachable without a grant"}
    assert ("ada-admin", main_account["roles"]["administrator"].arn) in ungranted
    assert ("ci-deployer", f"arn:aws:iam::{main_account['account'].account_id}:role/OrganizationAccountAccessRole") \
        in ungranted
    assert "Granted, not allowed" in history
    count = AccessFinding.objects.filter(resolved_at__isnull=True).count()
    assert f'data-access-findings="{count}"' in home


def test_a_person_aws_refuses_sees_it_on_their_directory(
    main_account: dict, engineer: Any, signed_in: Any, aws: Boto3ClientFactory
) -> None:
    # given the engineer's IAM user left the team's group behind Switchyard's back, and a check ran
    iam().remove_user_from_group(GroupName="platform-engineers", UserName=engineer.iam_username)
    iam().remove_user_from_group(GroupName="legacy-ops", UserName=engineer.iam_username)
    access_checks.effective_access_check(clients=aws)
    # when they open their directory, then their links are marked with why and what to do
    browser = signed_in(engineer)
    page = browser.get("/links/").content.decode()
    status = browser.get("/links/aws-status/").content.decode()
    assert 'data-aws-refuses="1"' in page
    assert "data-aws-refuses-link>" in page
    assert "the IAM group platform-engineers" in page.split("data-aws-refuses-link>")[1]
    assert 'data-aws-refuses="1"' in status and "the IAM group platform-engineers" in status
