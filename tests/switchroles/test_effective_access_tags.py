"""Trust only Switchyard's people can meet: with the principal-tag condition on, enforcement tags
the IAM users of the people it manages, strangers with AdministratorAccess no longer reach the
console roles, tag drift is reported, and the trust is rolled out through the normal roll-out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from portal.aws import Boto3ClientFactory
from switchroles import access_checks, enforcement, services
from switchroles.models import AccessFinding, AccountRole, RoleTemplate, TemplateRollout

from .conftest import Estate, reauthenticated, tier
from .test_effective_access_aws import ADMIN, MAIN, iam

TAG = "switchyard-person"


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


def user_tags(name: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in iam().list_user_tags(UserName=name)["Tags"]}


@pytest.fixture
def tagged_estate(estate: Estate, manager: Any, engineer: Any, aws: Boto3ClientFactory, settings: Any) -> dict:
    settings.SWITCHYARD_PRINCIPAL_TAG_CONDITION = True
    acme = estate.client_with_roles("Acme Retail")
    iam().create_user(UserName=engineer.iam_username)
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    with enforcement.enforcement_lock():
        enforcement.enforcement_sync(clients=aws)
    return {"acme": acme, "team": team}


def test_enforcement_tags_its_people_and_untags_who_leaves(
    tagged_estate: dict, manager: Any, engineer: Any, aws: Boto3ClientFactory
) -> None:
    # then the team member's IAM user carries the tag
    assert user_tags(engineer.iam_username) == {TAG: engineer.iam_username}
    # when they leave the team (and have no other grant), the next sync takes it off
    services.team_member_remove(team=tagged_estate["team"], person=engineer, removed_by=manager)
    with enforcement.enforcement_lock():
        report = enforcement.enforcement_sync(clients=aws)
    assert report.untagged == (engineer.iam_username,)
    assert user_tags(engineer.iam_username) == {}


def test_with_the_tag_condition_a_stranger_with_administrator_access_no_longer_reaches_console_roles(
    tagged_estate: dict, engineer: Any, aws: Boto3ClientFactory
) -> None:
    # given an untagged main-account admin, and a tagged stranger
    client = iam()
    client.create_user(UserName="ada-admin")
    client.attach_user_policy(UserName="ada-admin", PolicyArn=ADMIN)
    client.create_user(UserName="sly", Tags=[{"Key": TAG, "Value": "sly"}])
    # when the effective-access check runs
    check = access_checks.effective_access_check(clients=aws)
    # then the admin reaches only the access roles (the console trust needs the tag), and says why
    reached = set(AccessFinding.objects.filter(kind=AccessFinding.Kind.UNGRANTED, principal_name="ada-admin")
                  .values_list("role_arn", flat=True))
    assert reached and all(arn.endswith("/OrganizationAccountAccessRole") for arn in reached)
    assert any(b["principal"] == "ada-admin" and "lacks the tag" in b["reason"] for b in check.blocked)
    # and the engineer still reaches the granted role: no finding about them
    assert not AccessFinding.objects.filter(principal_name=engineer.iam_username, resolved_at__isnull=True).exists()
    # and the tagged stranger is tag drift
    drift = AccessFinding.objects.get(kind=AccessFinding.Kind.TAG_DRIFT, resolved_at__isnull=True)
    assert drift.principal_name == "sly" and "not one of Switchyard's people" in drift.detail
    assert check.tag_condition is True


def test_an_untagged_person_is_tag_drift_until_a_forced_sync_tags_them(
    tagged_estate: dict, engineer: Any, aws: Boto3ClientFactory
) -> None:
    # given someone took the tag off the engineer
    iam().untag_user(UserName=engineer.iam_username, TagKeys=[TAG])
    access_checks.effective_access_check(clients=aws)
    assert AccessFinding.objects.filter(kind=AccessFinding.Kind.TAG_DRIFT, principal_name=engineer.iam_username,
                                        resolved_at__isnull=True).exists()
    # when a repair forces the sync, then the tag is back and the drift resolves
    with enforcement.enforcement_lock():
        enforcement.enforcement_sync(clients=aws, force=True)
    access_checks.effective_access_check(clients=aws)
    assert user_tags(engineer.iam_username) == {TAG: engineer.iam_username}
    assert not AccessFinding.objects.filter(kind=AccessFinding.Kind.TAG_DRIFT, resolved_at__isnull=True).exists()


def test_the_trust_is_rolled_out_through_the_normal_roll_out_and_the_setting_off_is_said(
    tagged_estate: dict, manager: Any, auditor: Any, signed_in: Any, aws: Boto3ClientFactory, settings: Any,
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # when a manager rolls the trust out (the workers' part is queued, not run here)
    monkeypatch.setattr("switchroles.rollout._enqueue_work", lambda rollout_pk, **kwargs: None)
    revisions = dict(RoleTemplate.objects.filter(is_active=True).values_list("pk", "revision"))
    response = reauthenticated(signed_in(manager), manager).post("/drift/access/trust-rollout/")
    # then each active template has a new revision and a roll-out covering its active roles
    assert response.status_code == 302
    for pk, revision in RoleTemplate.objects.filter(is_active=True).values_list("pk", "revision"):
        assert revision == revisions[pk] + 1
        rollout = TemplateRollout.objects.get(template_id=pk)
        assert rollout.accounts.count() == AccountRole.objects.filter(template_id=pk,
                                                                      state=AccountRole.State.ACTIVE).count()
    # when the setting is off, the analysis says so
    settings.SWITCHYARD_PRINCIPAL_TAG_CONDITION = False
    access_checks.effective_access_check(clients=aws)
    assert 'data-tag-condition="off"' in signed_in(auditor).get("/drift/").content.decode()
