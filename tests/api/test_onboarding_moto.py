"""The MSP's automation, through the API alone, against moto in-process (Celery eager): a signed
contract onboards a new account, a grant gives the on-call team its engineer role, a revoke takes
it away. The engineer's own token reads their links before, in between and after, and AWS (the
team's main-account IAM policies) follows each change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.utils import timezone

from onboarding.models import AwsAccount
from onboarding.tasks import reconcile_onboarding
from portal import aws as onboarding_aws
from portal.aws import Boto3ClientFactory, allowed_role_arns
from portal.models import ApiToken, AuditEvent, User
from switchroles import services as switchroles_services
from tests.api.conftest import ApiClient, MakeToken
from tests.onboarding.conftest import make_due, mocked_organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


def _team_allows(group: str) -> set[str]:
    """The role ARNs the team's main-account IAM policies allow, as IAM holds them."""
    iam = boto3.client("iam", region_name="us-east-1")
    documents = []
    for attached in iam.list_attached_group_policies(GroupName=group)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"])
        document = version["PolicyVersion"]["Document"]
        documents.append(document if isinstance(document, dict) else json.loads(document))
    account_clients = {a or "": s for a, s in AwsAccount.objects.values_list("account_id", "client__slug")}
    return allowed_role_arns(documents, account_clients=account_clients)


def test_an_onboarding_a_grant_and_a_revoke_through_the_api_alone(
    org: Boto3ClientFactory, manager: User, engineer: User, make_token: MakeToken,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given the on-call team with the engineer in it (their IAM user exists in the main account), and
    # a read-write token of the manager's and a read token of the engineer's
    boto3.client("iam", region_name="us-east-1").create_user(UserName=engineer.iam_username)
    team = switchroles_services.team_create(name="On-call", iam_group_name="oncall", created_by=manager)
    switchroles_services.team_member_add(team=team, person=engineer, added_by=manager)
    automation = ApiClient(make_token(manager))
    rota = ApiClient(make_token(engineer, ApiToken.Scope.READ))
    assert rota.get("/api/v1/links").json() == []

    # When the PSA opens an onboarding for a new client (the worker runs as the request commits)
    with django_capture_on_commit_callbacks(execute=True):
        started = automation.post("/api/v1/onboardings", {
            "client_name": "Initech", "client_slug": "initech", "account_name": "production", "origin": "create",
            "root_email": "awsaccounts+initech@example.com", "tiers": ["engineer", "oncall"],
            "reason": "Contract 2026-117 signed",
        })
    assert started.status_code == 202, started.content
    account_id = started.json()["account"]["id"]
    # ...and polls the account until it is active (beat re-drives any step that waits)
    for _ in range(10):
        account = automation.get(f"/api/v1/accounts/{account_id}").json()
        if account["state"] == "active":
            break
        make_due(AwsAccount.objects.get(pk=account_id))
        with django_capture_on_commit_callbacks(execute=True):
            reconcile_onboarding.delay()

    # Then the account is in the Organization with both roles, every step done
    assert account["state"] == "active", account
    assert {step["status"] for step in account["steps"]} == {"succeeded"}
    aws_id = account["aws_account_id"]
    assert aws_id in {a["Id"] for a in boto3.client("organizations").list_accounts()["Accounts"]}
    roles = {role["tier"]: role for role in account["roles"]}
    assert {tier: role["state"] for tier, role in roles.items()} == {"engineer": "active", "oncall": "active"}
    engineer_arn = roles["engineer"]["role_arn"]
    member_iam = org.client("iam", credentials=onboarding_aws.assume_access_role(
        clients=org, account_id=aws_id, session_name="test-inspector"))
    assert member_iam.get_role(RoleName=engineer_arn.rsplit("/", 1)[1])["Role"]["Arn"] == engineer_arn
    # and the engineer has no link to it yet
    assert rota.get("/api/v1/links").json() == []

    # When the rota script grants the team the engineer tier of the new client
    client_id = account["client"]["id"]
    with django_capture_on_commit_callbacks(execute=True):
        granted = automation.post("/api/v1/grants", {
            "team": team.pk, "client": client_id, "tiers": ["engineer"], "reason": "On-call for Initech",
            "expires_at": (timezone.now() + timedelta(days=30)).isoformat()})
    assert granted.status_code == 201, granted.content

    # Then the engineer's links show exactly that role, and IAM lets the team assume it
    links = rota.get("/api/v1/links").json()
    assert [(link["aws_account_id"], link["role_arn"], link["tier"]) for link in links] == [
        (aws_id, engineer_arn, "engineer")]
    assert links[0]["switch_role_url"].startswith(f"https://signin.aws.amazon.com/switchrole?account={aws_id}&")
    assert engineer_arn in _team_allows("oncall")

    # When the grant is revoked
    with django_capture_on_commit_callbacks(execute=True):
        revoked = automation.post(f"/api/v1/grants/{granted.json()['id']}/revoke", {"reason": "Rota changed"})

    # Then the link is gone from the engineer's links and from the team's IAM policies
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert rota.get("/api/v1/links").json() == []
    assert engineer_arn not in _team_allows("oncall")
    # and each of the three writes was audited as the manager, naming the manager's token
    token = ApiToken.objects.get(owner=manager)
    for action in ("onboarding.requested", "grant.created", "grant.revoked"):
        event = AuditEvent.objects.get(action=action)
        assert event.actor == manager
        assert event.details["api_token"]["id"] == token.pk and event.details["api_token"]["prefix"] == token.prefix


def test_an_invitation_is_recorded_through_the_api(org: Boto3ClientFactory, manager: User,
                                                  make_token: MakeToken) -> None:
    # When the PSA asks to invite a client's existing account (the worker is not run here)
    response = ApiClient(make_token(manager)).post("/api/v1/onboardings", {
        "client_name": "Globex", "client_slug": "globex", "account_name": "production", "origin": "invite",
        "aws_account_id": "210987654321", "tiers": ["administrator"], "reason": "Globex moves its account to us"})

    # Then the account is recorded as invited, waiting for its steps, with the role it will get
    assert response.status_code == 202, response.content
    account = response.json()["account"]
    assert (account["origin"], account["state"], account["aws_account_id"]) == ("invited", "requested", "210987654321")
    assert account["steps"][0] == {"kind": "invite_account", "status": "pending", "attempts": 0, "last_error": None}
    assert [(role["tier"], role["state"]) for role in account["roles"]] == [("administrator", "pending")]
    assert AuditEvent.objects.get(action="onboarding.requested").details["api_token"]["scope"] == "read-write"
