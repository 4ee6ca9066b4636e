"""Bringing accounts in, against moto in-process with the sandbox's handshake extension: invite →
the client accepts and deploys the access-role template → verify → Active; decline and expiry;
an old OrganizationAccountAccessRole; adopting a member with a hand-made role; bulk requests."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.exceptions import ValidationError

from onboarding import adoption
from onboarding.advance import onboarding_advance
from onboarding.models import AwsAccount, ExistingRole, OnboardingStep
from onboarding.sandbox_client import (
    OLD_MANAGEMENT_ACCOUNT_ID,
    client_of,
    old_access_role_ensure,
    sandbox_client_answer,
)
from onboarding.views import access_role_template_for
from portal import aws, sandbox_moto
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from portal.sandbox_moto import handshakes
from switchroles.models import RoleTemplate
from tests.onboarding.conftest import MAIN_ACCOUNT_ID, make_due, mocked_organization, templates

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State
OUTSIDE_ACCOUNT_ID = "444455556666"


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    """moto in-process with the sandbox's extensions and an Organization; the sandbox's settings."""
    sandbox_moto.install()
    settings.SANDBOX = True
    yield from mocked_organization(monkeypatch, settings, managed_policies=False)


@pytest.fixture(autouse=True)
def inline_only() -> RoleTemplate:
    """A tier with an inline policy only (moto in-process then needs no AWS managed policies: fast)."""
    return RoleTemplate.objects.create(
        name="Read buckets", tier="custom", role_name="SwitchyardReadBuckets", console_color="yellow",
        custom_policy={"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]},
    )


def tiers() -> list[RoleTemplate]:
    return templates("SwitchyardReadBuckets")


def _advance_until_settled(account: AwsAccount, clients: Boto3ClientFactory, *, limit: int = 30) -> list[str]:
    """Run the workflow until it stops at a wait that needs someone else, or ends."""
    kinds: list[str] = []
    for _ in range(limit):
        result = onboarding_advance(account_id=account.pk, clients=clients)
        kinds.append(f"{result.kind}:{result.outcome}")
        if result.outcome in ("idle", "failed", "ended"):
            break
        if result.outcome == "waiting" and result.kind in (Kind.AWAIT_HANDSHAKE, Kind.AWAIT_ACCESS_ROLE) \
                and kinds.count(f"{result.kind}:waiting") >= 2:
            break
        make_due(account)
    account.refresh_from_db()
    return kinds


def _invite(
    manager: User, clients: Boto3ClientFactory, account_id: str = OUTSIDE_ACCOUNT_ID, **extra: Any
) -> AwsAccount:
    from onboarding.services import onboarding_request

    return onboarding_request(
        actor=manager, client_name="Acme Retail", client_slug="acme", origin=AwsAccount.Origin.INVITED,
        account_name="production", account_id=account_id, templates=tiers(), reason="Client's own account",
        clients=clients, **extra,
    )


def test_moto_still_lacks_every_patched_handshake_action() -> None:
    # given moto as installed, without the sandbox's patch (a fresh interpreter)
    code = ("from moto.organizations.responses import OrganizationsResponse as R\n"
            "from moto.organizations.models import OrganizationsBackend as B\n"
            f"names = {list(handshakes.PATCHED_ACTIONS)!r}\n"
            "print([n for n in names if hasattr(R, n) or hasattr(B, n)])")
    native = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    # then none of them is native yet: once one is, this fails and the patch of it should go
    assert native == "[]"
    assert handshakes.native_actions() == []


def test_an_invited_account_accepts_deploys_the_template_and_reaches_active(
    org: Boto3ClientFactory, manager: User
) -> None:
    # given an invitation sent to an account outside the Organization
    account = _invite(manager, org)
    before = _advance_until_settled(account, org)
    handshake = aws.describe_handshake(clients=org, handshake_id=account.handshake_id)

    # when the client accepts and deploys the template, and the workers carry on
    answer = sandbox_client_answer(account_id=OUTSIDE_ACCOUNT_ID, accept=True)
    make_due(account)
    _advance_until_settled(account, org)

    # then the invitation was followed to ACCEPTED, the account joined as INVITED, and it is Active
    assert f"{Kind.AWAIT_HANDSHAKE}:waiting" in before
    assert handshake.state == "OPEN" and handshake.account_id == OUTSIDE_ACCOUNT_ID
    assert (answer.state, answer.stack_status) == ("ACCEPTED", "CREATE_COMPLETE")
    assert answer.access_role_arn == f"arn:aws:iam::{OUTSIDE_ACCOUNT_ID}:role/SwitchyardAccessRole"
    members = {m.id: m for m in aws.list_accounts(clients=org)}
    assert members[OUTSIDE_ACCOUNT_ID].joined_method == "INVITED"
    assert account.state == State.ACTIVE, [(s.kind, s.last_error_message) for s in account.steps.all()]
    # and every role in the account trusts the main account with MFA, as AWS sees it
    iam = client_of(OUTSIDE_ACCOUNT_ID, "iam")
    for role in account.roles.all():
        trust = iam.get_role(RoleName=role.role_name)["Role"]["AssumeRolePolicyDocument"]
        statement = trust["Statement"][0]
        assert statement["Principal"] == {"AWS": f"arn:aws:iam::{MAIN_ACCOUNT_ID}:root"}
        assert statement["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}
        assert role.arn.startswith(f"arn:aws:iam::{OUTSIDE_ACCOUNT_ID}:role/switchyard/acme/")


def test_a_declined_invitation_ends_the_account(org: Boto3ClientFactory, manager: User) -> None:
    # given an open invitation
    account = _invite(manager, org)
    _advance_until_settled(account, org)

    # when the client declines it
    sandbox_client_answer(account_id=OUTSIDE_ACCOUNT_ID, accept=False)
    make_due(account)
    _advance_until_settled(account, org)

    # then the account ends as declined, with what to do, and nothing more runs
    step = OnboardingStep.objects.get(account=account, kind=Kind.AWAIT_HANDSHAKE)
    assert account.state == State.DECLINED
    assert "declined" in step.last_error_message
    assert OnboardingStep.objects.get(account=account, kind=Kind.PROVISION_ROLES).status == Status.CANCELLED


def test_an_expired_invitation_ends_the_account(org: Boto3ClientFactory, manager: User) -> None:
    # given an open invitation nobody answers for 15 days
    account = _invite(manager, org)
    _advance_until_settled(account, org)
    handshakes.expire_for_tests(account.handshake_id)

    # when the workers look again
    make_due(account)
    _advance_until_settled(account, org)

    # then it ended as expired
    assert account.state == State.EXPIRED
    assert "expired" in OnboardingStep.objects.get(account=account, kind=Kind.AWAIT_HANDSHAKE).last_error_message


def test_the_template_deploys_beside_an_old_organization_access_role(org: Boto3ClientFactory, manager: User) -> None:
    # given an account from another Organization, with its OrganizationAccountAccessRole
    old_arn = old_access_role_ensure(account_id=OUTSIDE_ACCOUNT_ID)
    account = _invite(manager, org)
    _advance_until_settled(account, org)

    # when the client accepts and deploys the template
    answer = sandbox_client_answer(account_id=OUTSIDE_ACCOUNT_ID, accept=True)
    make_due(account)
    _advance_until_settled(account, org)

    # then the stack created Switchyard's own role beside the old one, which is left alone
    assert answer.stack_status == "CREATE_COMPLETE"
    assert old_arn.endswith(":role/OrganizationAccountAccessRole")
    iam = client_of(OUTSIDE_ACCOUNT_ID, "iam")
    old = iam.get_role(RoleName="OrganizationAccountAccessRole")["Role"]["AssumeRolePolicyDocument"]
    assert old["Statement"][0]["Principal"] == {"AWS": f"arn:aws:iam::{OLD_MANAGEMENT_ACCOUNT_ID}:root"}
    assert account.state == State.ACTIVE


def test_an_access_role_that_trusts_someone_else_is_named_on_the_page(
    org: Boto3ClientFactory, manager: User, manager_http: Any
) -> None:
    # given an invited account set to use its old OrganizationAccountAccessRole, which trusts another account
    old_access_role_ensure(account_id=OUTSIDE_ACCOUNT_ID)
    account = _invite(manager, org)
    AwsAccount.objects.filter(pk=account.pk).update(access_role_name="OrganizationAccountAccessRole")
    _advance_until_settled(account, org)
    organizations = client_of(OUTSIDE_ACCOUNT_ID, "organizations")
    organizations.accept_handshake(HandshakeId=account.handshake_id)

    # when the workers verify access
    make_due(account)
    _advance_until_settled(account, org)
    page = manager_http.get(account.get_absolute_url()).content.decode()

    # then the step fails, and the page says exactly whom the role trusts
    step = OnboardingStep.objects.get(account=account, kind=Kind.AWAIT_ACCESS_ROLE)
    assert (account.state, step.status, step.last_error_code) == (State.FAILED, Status.FAILED,
                                                                   "AccessRoleTrustsSomeoneElse")
    assert f"trusts arn:aws:iam::{OLD_MANAGEMENT_ACCOUNT_ID}:root, not Switchyard" in page


def test_the_access_role_template_is_least_privilege_and_uses_the_accounts_role_name() -> None:
    # given an invited account whose manager chose another access role name
    account = AwsAccount(origin=AwsAccount.Origin.INVITED, account_id=OUTSIDE_ACCOUNT_ID,
                         access_role_name="AcmeSwitchyardAccess")

    # when its template is generated
    template = yaml.safe_load(access_role_template_for(account))

    # then the role is named by the parameter, trusts only Switchyard's workers, and has no administrator access
    assert template["Parameters"]["RoleName"]["Default"] == "AcmeSwitchyardAccess"
    role = template["Resources"]["SwitchyardAccessRole"]["Properties"]
    assert role["RoleName"] == {"Ref": "RoleName"}
    assert "ManagedPolicyArns" not in role
    statement = role["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Condition"] == {"ArnEquals": {"aws:PrincipalArn": {"Ref": "SwitchyardPrincipalArn"}}}
    policy = role["Policies"][0]["PolicyDocument"]["Statement"]
    allows = [s for s in policy if s["Effect"] == "Allow" and s["Action"] not in (["iam:Get*", "iam:List*"],)]
    assert all(s["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/switchyard/*"}
               for s in allows)
    guard = next(s for s in policy if s["Sid"] == "NoIamWritesOutsideSwitchyardPath")
    assert guard["Effect"] == "Deny" and "iam:AttachRolePolicy" in guard["Action"]
    assert "*" not in json.dumps([s["Action"] for s in allows])


def test_the_access_role_template_passes_cfn_lint(tmp_path: Any) -> None:
    # given the template an invited account gets
    path = tmp_path / "switchyard-access-role.yaml"
    path.write_text(access_role_template_for(AwsAccount(origin=AwsAccount.Origin.INVITED,
                                                        account_id=OUTSIDE_ACCOUNT_ID)))

    # when cfn-lint checks it
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(path)], capture_output=True, text=True)  # noqa: S603

    # then it finds nothing
    assert (result.returncode, result.stdout) == (0, "")


# --------------------------------------------------------------------------------------------------
# Adoption
# --------------------------------------------------------------------------------------------------


def _member(org: Boto3ClientFactory, name: str) -> str:
    request = aws.start_account_creation(clients=org, email=f"{name}@legacy.example", account_name=name, tags={})
    return request.account_id or ""


def _hand_made_role(account_id: str, name: str = "ops-admin") -> None:
    credentials = aws.assume_access_role(clients=boto3_factory(), account_id=account_id, session_name="setup")
    iam = boto3_factory().client("iam", credentials=credentials)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MAIN_ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}
    ]}))


def boto3_factory() -> Boto3ClientFactory:
    return Boto3ClientFactory(region_name="us-east-1")


def test_members_switchyard_does_not_manage_are_listed_and_searchable(org: Boto3ClientFactory) -> None:
    # given two members made before Switchyard, and one Switchyard manages
    legacy = _member(org, "legacy-billing")
    other = _member(org, "data-lake")
    managed = _member(org, "managed")
    AwsAccount.objects.create(client=_client(), name="managed", origin=AwsAccount.Origin.ADOPTED,
                              account_id=managed, reason="x")

    # when a manager lists them, and searches
    listed = adoption.unmanaged_members(clients=org)
    searched = adoption.unmanaged_members(clients=org, search="BILLING")

    # then only the unmanaged members show (never the management account), with how they joined
    assert {m.id for m in listed} == {legacy, other}
    assert [m.id for m in searched] == [legacy]
    assert searched[0].joined_method == "CREATED" and searched[0].email == "legacy-billing@legacy.example"


def _client() -> Any:
    from onboarding.models import Client

    return Client.objects.get_or_create(slug="acme", defaults={"name": "Acme Retail"})[0]


@pytest.mark.parametrize("choice", ["adopt", "report"])
def test_an_adopted_member_finds_its_hand_made_role_and_reaches_active(
    org: Boto3ClientFactory, manager: User, choice: str
) -> None:
    # given a member with a cross-account role the team made by hand
    account_id = _member(org, "legacy")
    _hand_made_role(account_id)

    # when a manager adopts it, choosing what to do with such roles, and the workers run
    account = adoption.adoption_request(
        actor=manager, account_id=account_id, account_name="legacy", client_name="Acme Retail",
        templates=tiers(), reason="Before Switchyard", existing_roles=choice, clients=org,
    )
    _advance_until_settled(account, org)

    # then it is Active with its tier, and the hand-made role is recorded as chosen
    found = ExistingRole.objects.get(account=account)
    assert account.state == State.ACTIVE and account.origin == AwsAccount.Origin.ADOPTED
    assert [s.kind for s in account.steps.order_by("position")][:2] == [Kind.ASSUME_ACCESS_ROLE, Kind.DISCOVER_ROLES]
    assert found.arn == f"arn:aws:iam::{account_id}:role/ops-admin"
    assert found.adopted is (choice == "adopt")
    assert found.trusted_principals == [f"arn:aws:iam::{MAIN_ACCOUNT_ID}:root"]
    assert account.roles.get().state == "active"


def test_bulk_refuses_every_bad_row_and_creates_nothing(org: Boto3ClientFactory, manager: User) -> None:
    # given members, and a list with a duplicate name for one client, an account outside the Organization,
    # and a malformed id
    first, second = _member(org, "one"), _member(org, "two")
    rows = adoption.bulk_rows(
        "account id,client,account name\n"
        f"{first},Acme Retail,production\n"
        f"{second},acme retail,Production\n"
        f"{OUTSIDE_ACCOUNT_ID},Globex,prod\n"
        "12345,Globex,staging\n"
    )

    # when a manager adopts them
    with pytest.raises(ValidationError) as refused:
        adoption.bulk_request(actor=manager, origin=AwsAccount.Origin.ADOPTED, rows=rows,
                              templates=tiers(), reason="Bulk", existing_roles="report",
                              clients=org)

    # then each problem names its line and field, and nothing was created
    problems = refused.value.message_dict["rows"]
    assert any(p.startswith("Line 3 (account name)") and "line 2" in p for p in problems)
    assert any(p.startswith("Line 4 (account id)") and "not a member" in p for p in problems)
    assert any(p.startswith("Line 5 (account id)") for p in problems)
    assert not AwsAccount.objects.exists()


def test_bulk_adopts_each_account_in_its_own_workflow(org: Boto3ClientFactory, manager: User) -> None:
    # given three members
    ids = [_member(org, f"legacy-{n}") for n in range(3)]
    text = "\n".join(f"{account_id},Client {n % 2},legacy-{n}" for n, account_id in enumerate(ids))

    # when a manager adopts them in one go and the workers run
    batch = adoption.bulk_request(actor=manager, origin=AwsAccount.Origin.ADOPTED, rows=adoption.bulk_rows(text),
                                  templates=tiers(), reason="Bulk", existing_roles="report",
                                  clients=org)
    for account in batch.accounts.all():
        _advance_until_settled(account, org)

    # then each is its own account with its own steps, all Active; two new clients were made
    accounts = list(batch.accounts.order_by("account_id"))
    assert sorted(a.account_id for a in accounts) == sorted(ids)
    assert {a.state for a in accounts} == {State.ACTIVE}
    assert {a.client.name for a in accounts} == {"Client 0", "Client 1"}


def test_the_sandbox_seeds_one_member_to_adopt_with_a_hand_made_role(org: Boto3ClientFactory) -> None:
    from portal.sandbox import LEGACY_ROLE_NAME, sandbox_legacy_member_ensure

    # when the sandbox comes up twice
    first = sandbox_legacy_member_ensure(clients=org)
    second = sandbox_legacy_member_ensure(clients=org)

    # then one member Switchyard does not manage is there, with its role trusting the main account
    assert first == second
    assert [m.id for m in adoption.unmanaged_members(clients=org)] == [first]
    credentials = aws.assume_access_role(clients=org, account_id=first, session_name="check")
    found = aws.roles_trusting_account(clients=org, credentials=credentials, trusted_account_id=MAIN_ACCOUNT_ID,
                                       ignore_names=["OrganizationAccountAccessRole"])
    assert [role.name for role in found] == [LEGACY_ROLE_NAME]
