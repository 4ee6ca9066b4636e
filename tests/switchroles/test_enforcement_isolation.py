"""A sync failure for one principal never leaves another principal's change unapplied (issue 12):
an IAM user name AWS would refuse on one team member must not keep a removed member in the team's
IAM group, nor keep a new member out of it."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from portal.aws import Boto3ClientFactory
from switchroles import enforcement, services
from switchroles.models import EnforcedPrincipal, Team

from .conftest import Estate, iam_user_create, tier


def group_members(name: str) -> set[str]:
    iam = boto3.client("iam", region_name="us-east-1")
    return {user["UserName"] for user in iam.get_group(GroupName=name)["Users"]}


def sync(aws: Boto3ClientFactory) -> enforcement.SyncReport:
    with enforcement.enforcement_lock():
        return enforcement.enforcement_sync(clients=aws)


@pytest.mark.django_db
def test_a_member_with_an_iam_user_name_aws_refuses_does_not_stop_the_teams_other_membership_changes(
    estate: Estate, manager: Any, engineer: Any, make_person: Any, aws: Boto3ClientFactory
) -> None:
    # given a granted team whose IAM group holds the engineer
    iam_user_create(engineer)
    newcomer = make_person("nia", "Engineer", iam_username="nia")
    iam_user_create(newcomer)
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    sync(aws)
    assert group_members("platform-engineers") == {engineer.iam_username}
    # and a member whose IAM user name has a letter AWS refuses (saved before forms checked it)
    mistyped = make_person("jose", "Engineer", iam_username="jösé")
    services.team_member_add(team=team, person=mistyped, added_by=manager)
    # when the engineer leaves, another person joins, and enforcement runs
    services.team_member_remove(team=team, person=engineer, removed_by=manager)
    services.team_member_add(team=team, person=newcomer, added_by=manager)
    report = sync(aws)
    # then AWS follows both changes, and the refused name is reported on the team, not hidden
    assert group_members("platform-engineers") == {"nia"}
    row = EnforcedPrincipal.objects.get(team=team)
    assert "jösé" in row.last_error
    assert "jösé" in report.not_enforceable[f"team-{team.pk}"]


@pytest.mark.django_db
def test_a_failure_to_add_one_member_still_removes_the_one_who_left(
    estate: Estate, manager: Any, engineer: Any, make_person: Any, aws: Boto3ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a granted team whose IAM group holds the engineer
    iam_user_create(engineer)
    team: Team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    sync(aws)
    # and AWS refusing to add anyone to a group (say, a permission taken away from Switchyard)
    from botocore.exceptions import ClientError

    real_client = aws.client

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        made = real_client(service, *args, **kwargs)
        if service == "iam":
            def refuse(**_: Any) -> None:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "AddUserToGroup")
            made.add_user_to_group = refuse
        return made

    monkeypatch.setattr(aws, "client", client)
    # when the engineer leaves and someone else joins
    other = make_person("omar", "Engineer", iam_username="omar")
    services.team_member_remove(team=team, person=engineer, removed_by=manager)
    services.team_member_add(team=team, person=other, added_by=manager)
    sync(aws)
    # then the one who left is out of the IAM group all the same
    assert engineer.iam_username not in group_members("platform-engineers")
