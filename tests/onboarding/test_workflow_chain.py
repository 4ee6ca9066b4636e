"""One worker task carries an account through its steps one after another while they succeed: each
step still leased, recorded and audited on its own, the account reached with one AssumeRole, one
set of clients, and no message sent for a step the task runs itself. It stops at a wait, an error,
the end of the path, or when its time is up, and then leaves the rest to a new task as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import ANY
from django.utils import timezone

from onboarding import workflow
from onboarding.advance import onboarding_advance
from onboarding.models import AwsAccount, OnboardingStep
from onboarding.tasks import advance_account
from portal.audit import audit_verify_chain
from portal.audit.models import AuditEvent
from portal.aws import AwsError, Boto3ClientFactory, TemporaryCredentials
from switchroles.models import AccountRole
from tests.onboarding.conftest import CountingClients, make_account, mocked_organization, templates
from tests.onboarding.test_aws import MEMBER_ACCOUNT_ID, NOW, StubbedClients, creation_status

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
REQUEST_ID = "car-0123456789abcdef"
ROLE_NAMES = ("SwitchyardAdministrator", "SwitchyardEngineer", "SwitchyardOnCall")
CREATE_ACCOUNT_ARGS = {"Email": "awsaccounts+acme@example.com", "AccountName": "production", "Tags": ANY}


@pytest.fixture
def org_with_policies(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


@pytest.fixture
def stubbed() -> Iterator[StubbedClients]:
    clients = StubbedClients()
    yield clients
    clients.verify()  # every stubbed answer was used: no call missing, none extra


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, float]]:
    """Every "advance this account" message the workflow asks for: (account, countdown)."""
    sent: list[tuple[int, float]] = []
    monkeypatch.setattr("onboarding.advance._enqueue_advance",
                        lambda account_pk, *, countdown=0: sent.append((account_pk, countdown)))
    return sent


def _steps(account: AwsAccount) -> dict[str, OnboardingStep]:
    return {step.kind: step for step in OnboardingStep.objects.filter(account=account)}


def test_one_task_takes_a_new_account_to_active_reaching_it_once(
    org_with_policies: Boto3ClientFactory, enqueued: list[tuple[int, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a requested account with three roles, and a worker whose clients are counted
    account = make_account(role_names=ROLE_NAMES)
    counting = CountingClients(org_with_policies)
    monkeypatch.setattr("onboarding.advance.default_client_factory", lambda: counting)
    built: list[str] = []
    real_build = Boto3ClientFactory._build

    def build(self: Boto3ClientFactory, service: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service)
        return real_build(self, service, *args, **kwargs)

    monkeypatch.setattr(Boto3ClientFactory, "_build", build)

    # when one "advance" task runs
    outcome = advance_account.apply(args=(account.pk,)).get()

    # then the account is active after that one task, and no further message was sent
    account.refresh_from_db()
    assert (outcome, account.state) == ("succeeded", AwsAccount.State.ACTIVE)
    assert enqueued == []
    assert AccountRole.objects.filter(account=account, state=AccountRole.State.ACTIVE).count() == 3

    # and AWS saw the account reached once, each role created without a look first, and read back once
    per_role = {t.role_name: ["CreateRole"] + ["AttachRolePolicy"] * len(t.managed_policy_arns)
                for t in templates(*ROLE_NAMES)}
    read_back = ["GetRole", "ListAttachedRolePolicies", "ListRolePolicies"] * 3
    assert counting.operations[:-len(read_back)] == [
        "CreateAccount", "DescribeCreateAccountStatus", "AssumeRole",
        *[operation for name in sorted(per_role) for operation in per_role[name]],
    ]
    # (the three roles are read back side by side, so their reads come in any order)
    assert sorted(counting.operations[-len(read_back):]) == sorted(read_back)
    # with one client per service and account: Organizations (with and without retries), STS, member IAM
    assert sorted(built) == ["iam", "organizations", "organizations", "sts"]

    # and each step was leased once, recorded and audited as if it had run alone
    steps = _steps(account)
    assert {(s.status, s.attempts, s.lease_expires_at) for s in steps.values()} == {(Status.SUCCEEDED, 1, None)}
    assert AuditEvent.objects.filter(action="onboarding.step.succeeded").count() == len(steps) == 6
    assert audit_verify_chain().intact


def test_the_chain_stops_at_a_wait_and_asks_for_one_run_later(
    stubbed: StubbedClients, enqueued: list[tuple[int, float]]
) -> None:
    # given a requested account, and AWS that takes a while to create it
    account = make_account()
    org = stubbed.stub("organizations")
    org.add_response("create_account", creation_status("IN_PROGRESS"), CREATE_ACCOUNT_ARGS)
    org.add_response("describe_create_account_status", creation_status("IN_PROGRESS"),
                     {"CreateAccountRequestId": REQUEST_ID})

    # when a worker advances it with time to spare
    result = onboarding_advance(account_id=account.pk, clients=stubbed, chain_seconds=30)

    # then it sent the request, polled at once in the same run, and asked for one run after the wait
    steps = _steps(account)
    assert (result.kind, result.outcome) == (Kind.AWAIT_CREATION, "waiting")
    assert steps[Kind.CREATE_ACCOUNT].status == Status.SUCCEEDED
    assert steps[Kind.AWAIT_CREATION].status == Status.WAITING
    assert len(enqueued) == 1 and enqueued[0][0] == account.pk and enqueued[0][1] > 0
    assert list(AuditEvent.objects.order_by("sequence").values_list("action", flat=True)) == [
        "onboarding.step.succeeded", "onboarding.step.waiting",
    ]


def test_a_short_creation_poll_is_waited_for_in_the_worker_not_through_the_broker(
    stubbed: StubbedClients, enqueued: list[tuple[int, float]], settings: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given AWS that finishes creating the account just after the second poll, polled every second,
    # and a worker whose chain ends once the poll step is done
    settings.SWITCHYARD_CREATION_POLL_SECONDS = settings.SWITCHYARD_CREATION_POLL_MAX_SECONDS = 1
    account = make_account()
    org = stubbed.stub("organizations")
    org.add_response("create_account", creation_status("IN_PROGRESS"), CREATE_ACCOUNT_ARGS)
    for state, extra in (("IN_PROGRESS", {}), ("SUCCEEDED", {"AccountId": MEMBER_ACCOUNT_ID})):
        org.add_response("describe_create_account_status", creation_status(state, **extra),
                         {"CreateAccountRequestId": REQUEST_ID})
    clock = iter([0.0, 0.0, 100.0])
    monkeypatch.setattr("onboarding.advance.monotonic", lambda: next(clock))
    monkeypatch.setattr("onboarding.workflow.monotonic", lambda: 0.0)
    # (a quarter of a second goes by after CreateAccount's answer, and after each poll's)
    poll_clock = iter([0.0, 0.25, 1.0, 1.25, 2.0])
    monkeypatch.setattr("onboarding.steps_creation.monotonic", lambda: next(poll_clock))
    slept: list[float] = []
    monkeypatch.setattr("onboarding.steps_creation.sleep", slept.append)

    # when a worker advances it with time to spare
    result = onboarding_advance(account_id=account.pk, clients=stubbed, chain_seconds=30)

    # then it polled again in the same run: the creation is seen done, no wait was recorded, and
    # the only message asked for is the next step's, at once
    steps = _steps(account)
    assert (result.kind, result.outcome) == (Kind.AWAIT_CREATION, "succeeded")
    assert steps[Kind.AWAIT_CREATION].status == Status.SUCCEEDED
    # and each poll went a second after AWS was last asked (the first: after CreateAccount)
    assert slept == [0.75, 0.75]
    assert "onboarding.step.waiting" not in set(AuditEvent.objects.values_list("action", flat=True))
    assert enqueued == [(account.pk, 0)]


def test_a_chain_out_of_time_leaves_the_next_step_to_a_new_task(
    stubbed: StubbedClients, enqueued: list[tuple[int, float]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a worker whose time is up once its first step is done (a clock 31 s on at each look)
    account = make_account()
    ticks = iter(range(0, 10_000, 31))
    monkeypatch.setattr("onboarding.advance.monotonic", lambda: float(next(ticks)))
    stubbed.stub("organizations").add_response("create_account", creation_status("IN_PROGRESS"),
                                               CREATE_ACCOUNT_ARGS)

    # when it advances the account with 30 s to spend
    result = onboarding_advance(account_id=account.pk, clients=stubbed, chain_seconds=30)

    # then it ran that step only, and asked for a new task at once for the next (AWS got no poll)
    steps = _steps(account)
    assert (result.kind, result.outcome, result.carried_on) == (Kind.CREATE_ACCOUNT, "succeeded", False)
    assert steps[Kind.AWAIT_CREATION].status == Status.PENDING
    assert enqueued == [(account.pk, 0)]


def test_a_retryable_error_in_the_middle_of_a_chain_keeps_the_steps_done_before_it(
    stubbed: StubbedClients, enqueued: list[tuple[int, float]]
) -> None:
    # given AWS that accepts the account, then throttles the first poll
    account = make_account()
    org = stubbed.stub("organizations")
    org.add_response("create_account", creation_status("IN_PROGRESS"), CREATE_ACCOUNT_ARGS)
    org.add_client_error("describe_create_account_status", "TooManyRequestsException", "Rate exceeded", 400)

    # when a worker advances it
    with pytest.raises(AwsError) as raised:
        onboarding_advance(account_id=account.pk, clients=stubbed, chain_seconds=30)

    # then the error goes to the task's retry, the first step stays done and audited, the second is
    # given back with the error (and a re-drive time), and no message was sent for it
    steps = _steps(account)
    account.refresh_from_db()
    assert raised.value.code == "TooManyRequestsException"
    assert (account.create_request_id, steps[Kind.CREATE_ACCOUNT].status) == (REQUEST_ID, Status.SUCCEEDED)
    polling = steps[Kind.AWAIT_CREATION]
    assert (polling.status, polling.lease_expires_at, polling.last_error_code) == (
        Status.PENDING, None, "TooManyRequestsException")
    assert polling.next_run_at > timezone.now()
    assert enqueued == []
    assert AuditEvent.objects.filter(action="onboarding.step.succeeded").count() == 1


def test_reaching_the_account_assumes_its_role_even_with_credentials_from_earlier_in_the_chain(
    stubbed: StubbedClients,
) -> None:
    # given a chain that holds credentials for the account already
    account = make_account(at=Kind.ASSUME_ACCESS_ROLE, account_id=MEMBER_ACCOUNT_ID, create_request_id=REQUEST_ID)
    earlier = TemporaryCredentials("ASIAEARLIEREARLIER", "secret", "token")
    chain = workflow.Chain(member_credentials={MEMBER_ACCOUNT_ID: earlier})
    stubbed.stub("sts").add_response(
        "assume_role",
        {"Credentials": {"AccessKeyId": "ASIAFRESHFRESHFRESH", "SecretAccessKey": "secret", "SessionToken": "token",
                         "Expiration": NOW}},
        {"RoleArn": f"arn:aws:iam::{MEMBER_ACCOUNT_ID}:role/OrganizationAccountAccessRole",
         "RoleSessionName": "switchyard-onboarding", "DurationSeconds": 3600},
    )
    run = workflow.StepRun(step=_steps(account)[Kind.ASSUME_ACCESS_ROLE], account=account, clients=stubbed,
                           now=timezone.now(), chain=chain)

    # when the step that proves the access role works runs
    outcome = workflow.assume_access_role(run)

    # then it really called AssumeRole, and the steps after it get those fresh credentials
    assert outcome.result == "succeeded"
    assert chain.member_credentials[MEMBER_ACCOUNT_ID].access_key_id == "ASIAFRESHFRESHFRESH"
