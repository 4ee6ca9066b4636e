"""The workflow through what moto cannot do, with botocore's Stubber at the AWS seam: creation in
progress then done, each creation failure, the client's answer to an invitation, throttling, and a
new account's IAM refusing AssumeRole for a while."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.stub import ANY
from django.utils import timezone
from django.utils.html import escape

from onboarding.advance import onboarding_advance
from onboarding.models import AwsAccount, OnboardingStep
from onboarding.tasks import advance_account
from portal.audit.models import AuditEvent
from portal.aws import FAILURE_REASON_MESSAGES, AwsError
from portal.celery import app as celery_app
from tests.onboarding.conftest import make_account, make_due
from tests.onboarding.test_aws import MEMBER_ACCOUNT_ID, NOW, StubbedClients, creation_status, handshake

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State
REQUEST_ID = "car-0123456789abcdef"
CREDENTIALS = {
    "Credentials": {
        "AccessKeyId": "ASIAEXAMPLEEXAMPLE", "SecretAccessKey": "secret", "SessionToken": "token", "Expiration": NOW,
    }
}


@pytest.fixture
def stubbed() -> Iterator[StubbedClients]:
    clients = StubbedClients()
    yield clients
    clients.verify()  # every stubbed answer was used: no call missing, none extra


def _step(account: AwsAccount, kind: str) -> OnboardingStep:
    return OnboardingStep.objects.get(account=account, kind=kind)


def _advance(account: AwsAccount, stubbed: StubbedClients) -> tuple[str | None, str]:
    result = onboarding_advance(account_id=account.pk, clients=stubbed)
    account.refresh_from_db()
    return result.kind, result.outcome


def test_creation_in_progress_is_polled_until_it_succeeds(stubbed: StubbedClients) -> None:
    # given a requested account, and AWS that takes a while to create it
    account = make_account()
    org = stubbed.stub("organizations")
    org.add_response("create_account", creation_status("IN_PROGRESS"),
                     {"Email": "awsaccounts+acme@example.com", "AccountName": "production", "Tags": ANY})
    org.add_response("describe_create_account_status", creation_status("IN_PROGRESS"),
                     {"CreateAccountRequestId": REQUEST_ID})
    org.add_response("describe_create_account_status",
                     creation_status("SUCCEEDED", AccountId=MEMBER_ACCOUNT_ID, CompletedTimestamp=NOW),
                     {"CreateAccountRequestId": REQUEST_ID})

    # when the worker sends the request and polls
    sent = _advance(account, stubbed)
    request_id_after_sending = account.create_request_id
    first_poll = _advance(account, stubbed)
    waiting = _step(account, Kind.AWAIT_CREATION)
    too_early = _advance(account, stubbed)
    make_due(account)
    second_poll = _advance(account, stubbed)

    # then the request id is kept at once, the first poll waits, an early wake-up asks AWS nothing,
    # and the second poll records the new account id
    assert sent == (Kind.CREATE_ACCOUNT, "succeeded")
    assert request_id_after_sending == REQUEST_ID
    assert first_poll == (Kind.AWAIT_CREATION, "waiting")
    assert waiting.status == Status.WAITING and waiting.next_run_at > timezone.now()
    assert waiting.detail["note"] == "AWS is still creating the account."
    assert too_early == (Kind.AWAIT_CREATION, "not_due")
    assert second_poll == (Kind.AWAIT_CREATION, "succeeded")
    assert account.account_id == MEMBER_ACCOUNT_ID
    assert account.state == State.PROVISIONING


@pytest.mark.parametrize("reason", sorted(FAILURE_REASON_MESSAGES))
def test_each_creation_failure_fails_the_account_with_its_plain_message_and_raw_code(
    stubbed: StubbedClients, reason: str, manager: Any, signed_in: Any
) -> None:
    # given an account whose creation AWS reports as FAILED for this reason
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id=REQUEST_ID)
    stubbed.stub("organizations").add_response(
        "describe_create_account_status", creation_status("FAILED", FailureReason=reason),
        {"CreateAccountRequestId": REQUEST_ID},
    )

    # when the worker polls it
    outcome = _advance(account, stubbed)

    # then the account needs attention, the step keeps the raw reason and says what it means
    step = _step(account, Kind.AWAIT_CREATION)
    assert outcome == (Kind.AWAIT_CREATION, "failed")
    assert account.state == State.FAILED
    assert (step.status, step.last_error_code) == (Status.FAILED, reason)
    assert step.last_error_message == FAILURE_REASON_MESSAGES[reason]
    assert AuditEvent.objects.filter(action="onboarding.step.failed", details__code=reason).exists()

    # and the account page shows the plain message with the raw code beside it
    page = signed_in(manager).get(account.get_absolute_url())
    assert escape(FAILURE_REASON_MESSAGES[reason]) in page.content.decode()
    assert f"<code>{reason}</code>" in page.content.decode()


@pytest.mark.parametrize(
    ("answer", "account_state", "step_status"),
    [
        ("ACCEPTED", State.AWAITING_ACCESS_ROLE, Status.SUCCEEDED),
        ("DECLINED", State.DECLINED, Status.FAILED),
        ("EXPIRED", State.EXPIRED, Status.FAILED),
        ("CANCELED", State.CANCELLED, Status.FAILED),
    ],
)
def test_invitation_is_followed_from_open_to_the_clients_answer(
    stubbed: StubbedClients, answer: str, account_state: str, step_status: str
) -> None:
    # given an invited account, and a client who answers after a while
    account = make_account(origin=AwsAccount.Origin.INVITED, account_id=MEMBER_ACCOUNT_ID)
    org = stubbed.stub("organizations")
    org.add_response("invite_account_to_organization", handshake("OPEN"),
                     {"Target": {"Id": MEMBER_ACCOUNT_ID, "Type": "ACCOUNT"}, "Notes": ANY})
    org.add_response("describe_handshake", handshake("OPEN"), {"HandshakeId": "h-0123456789abcdef"})
    org.add_response("describe_handshake", handshake(answer), {"HandshakeId": "h-0123456789abcdef"})

    # when the worker invites and polls twice
    invited = _advance(account, stubbed)
    state_while_open = account.state
    still_open = _advance(account, stubbed)
    make_due(account)
    answered = _advance(account, stubbed)

    # then the handshake is recorded, polled while open, and its answer decides the account's state
    assert invited == (Kind.INVITE_ACCOUNT, "succeeded")
    assert account.handshake_id == "h-0123456789abcdef"
    assert account.handshake_expires_at == NOW + timedelta(days=15)
    assert state_while_open == State.INVITING
    assert still_open == (Kind.AWAIT_HANDSHAKE, "waiting")
    assert answered[0] == Kind.AWAIT_HANDSHAKE
    assert account.state == account_state
    assert _step(account, Kind.AWAIT_HANDSHAKE).status == step_status
    if answer != "ACCEPTED":
        assert _step(account, Kind.PROVISION_ROLES).status == Status.CANCELLED
        assert _step(account, Kind.AWAIT_HANDSHAKE).last_error_message
        assert onboarding_advance(account_id=account.pk, clients=stubbed).outcome == "idle"


def test_throttling_is_recorded_and_the_next_run_succeeds(stubbed: StubbedClients) -> None:
    # given AWS Organizations throttling the first poll
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id=REQUEST_ID)
    org = stubbed.stub("organizations")
    org.add_client_error("describe_create_account_status", "TooManyRequestsException", "Rate exceeded", 400)
    org.add_response("describe_create_account_status",
                     creation_status("SUCCEEDED", AccountId=MEMBER_ACCOUNT_ID, CompletedTimestamp=NOW))

    # when the worker runs the step and is throttled
    with pytest.raises(AwsError) as raised:
        onboarding_advance(account_id=account.pk, clients=stubbed)
    throttled = _step(account, Kind.AWAIT_CREATION)

    # then the error is raised for a retry, recorded, and the lease given back
    assert (raised.value.code, raised.value.retryable) == ("TooManyRequestsException", True)
    assert throttled.status == Status.PENDING and throttled.lease_expires_at is None
    assert throttled.last_error_code == "TooManyRequestsException"
    assert throttled.next_run_at > timezone.now()  # the reconciler's fallback if the retry is lost

    # and the retry succeeds and clears the error
    assert _advance(account, stubbed) == (Kind.AWAIT_CREATION, "succeeded")
    step = _step(account, Kind.AWAIT_CREATION)
    assert (step.last_error_code, step.attempts, account.account_id) == ("", 2, MEMBER_ACCOUNT_ID)


def test_the_task_retries_throttling_by_itself(stubbed: StubbedClients, monkeypatch: pytest.MonkeyPatch) -> None:
    # given AWS throttling twice, then answering
    monkeypatch.setattr("onboarding.advance.default_client_factory", lambda: stubbed)
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id=REQUEST_ID)
    org = stubbed.stub("organizations")
    org.add_client_error("describe_create_account_status", "Throttling", "Rate exceeded", 400)
    org.add_client_error("describe_create_account_status", "TooManyRequestsException", "Rate exceeded", 400)
    org.add_response("describe_create_account_status",
                     creation_status("SUCCEEDED", AccountId=MEMBER_ACCOUNT_ID, CompletedTimestamp=NOW))
    # (the task then carries on with the next step, where the new account's IAM is not ready yet)
    stubbed.stub("sts").add_client_error("assume_role", "AccessDenied", "not authorized", 403)

    # when the Celery task runs (eagerly: its retries run at once, errors are kept in the result)
    celery_app.conf.task_eager_propagates = False  # the autouse eager fixture sets it back for the next test
    result = advance_account.apply(args=(account.pk,))

    # then it retried until AWS answered, and went on to the next step, which waits for IAM
    assert result.get() == "waiting"
    account.refresh_from_db()
    assert account.account_id == MEMBER_ACCOUNT_ID
    assert _step(account, Kind.AWAIT_CREATION).status == Status.SUCCEEDED
    assert _step(account, Kind.ASSUME_ACCESS_ROLE).status == Status.WAITING


def test_a_non_retryable_error_fails_the_step_without_retrying(stubbed: StubbedClients) -> None:
    # given AWS refusing CreateAccount because the Organization is full
    account = make_account()
    stubbed.stub("organizations").add_client_error(
        "create_account", "ConstraintViolationException", "limit", 400,
        response_meta={}, modeled_fields={"Reason": "ACCOUNT_NUMBER_LIMIT_EXCEEDED"},
    )

    # when the worker sends it
    outcome = _advance(account, stubbed)

    # then the step failed once with what to do next, and nothing is retried
    step = _step(account, Kind.CREATE_ACCOUNT)
    assert outcome == (Kind.CREATE_ACCOUNT, "failed")
    assert (account.state, step.attempts) == (State.FAILED, 1)
    assert "quota" in step.last_error_message
    assert onboarding_advance(account_id=account.pk, clients=stubbed).outcome == "idle"


def test_assume_role_refused_after_creation_is_retried_with_backoff_until_allowed(stubbed: StubbedClients) -> None:
    # given a new account whose IAM refuses AssumeRole twice, then allows it
    account = make_account(at=Kind.ASSUME_ACCESS_ROLE, account_id=MEMBER_ACCOUNT_ID, create_request_id=REQUEST_ID)
    sts = stubbed.stub("sts")
    expected = {"RoleArn": f"arn:aws:iam::{MEMBER_ACCOUNT_ID}:role/OrganizationAccountAccessRole",
                "RoleSessionName": "switchyard-onboarding", "DurationSeconds": 3600}
    sts.add_client_error("assume_role", "AccessDenied", "not authorized to perform sts:AssumeRole", 403)
    sts.add_client_error("assume_role", "AccessDenied", "not authorized to perform sts:AssumeRole", 403)
    sts.add_response("assume_role", CREDENTIALS, expected)

    # when the worker tries three times
    first = _advance(account, stubbed)
    first_wait = _step(account, Kind.ASSUME_ACCESS_ROLE).next_run_at - timezone.now()
    make_due(account)
    second = _advance(account, stubbed)
    waiting = _step(account, Kind.ASSUME_ACCESS_ROLE)
    second_wait = waiting.next_run_at - timezone.now()
    make_due(account)
    third = _advance(account, stubbed)

    # then it waited, longer the second time, showing why, and went on once allowed
    assert (first, second, third) == (
        (Kind.ASSUME_ACCESS_ROLE, "waiting"), (Kind.ASSUME_ACCESS_ROLE, "waiting"),
        (Kind.ASSUME_ACCESS_ROLE, "succeeded"),
    )
    assert second_wait > first_wait
    assert waiting.last_error_code == "AccessDenied" and "not ready yet" in waiting.last_error_message
    step = _step(account, Kind.ASSUME_ACCESS_ROLE)
    assert (step.status, step.attempts, step.last_error_code) == (Status.SUCCEEDED, 3, "")
    assert account.state == State.PROVISIONING


def test_assume_role_still_refused_after_hours_fails_with_a_plain_message(stubbed: StubbedClients) -> None:
    # given a new account whose IAM has refused AssumeRole for three hours
    account = make_account(at=Kind.ASSUME_ACCESS_ROLE, account_id=MEMBER_ACCOUNT_ID, create_request_id=REQUEST_ID)
    OnboardingStep.objects.filter(account=account, kind=Kind.ASSUME_ACCESS_ROLE).update(
        status=Status.WAITING, started_at=timezone.now() - timedelta(hours=3), attempts=20,
        next_run_at=timezone.now() - timedelta(seconds=1),
    )
    stubbed.stub("sts").add_client_error("assume_role", "AccessDenied", "not authorized", 403)

    # when the worker tries again
    outcome = _advance(account, stubbed)

    # then it stops and says what to check
    step = _step(account, Kind.ASSUME_ACCESS_ROLE)
    assert outcome == (Kind.ASSUME_ACCESS_ROLE, "failed")
    assert account.state == State.FAILED
    assert "after two hours" in step.last_error_message and step.last_error_code == "AccessDenied"


def test_a_lost_invitation_answer_is_reconciled_not_sent_again(stubbed: StubbedClients) -> None:
    # given a worker that sent the invitation and died before recording the handshake
    account = make_account(origin=AwsAccount.Origin.INVITED, account_id=MEMBER_ACCOUNT_ID)
    OnboardingStep.objects.filter(account=account, kind=Kind.INVITE_ACCOUNT).update(
        attempts=1, detail={"sending": True})
    other = handshake("OPEN")["Handshake"] | {"Id": "h-other", "Parties": [{"Id": "111122223333", "Type": "ACCOUNT"}]}
    stubbed.stub("organizations").add_response(
        "list_handshakes_for_organization",
        {"Handshakes": [other, handshake("OPEN")["Handshake"]]},
        {"Filter": {"ActionType": "INVITE"}},
    )

    # when the step runs again
    outcome = _advance(account, stubbed)

    # then it adopts the open invitation for this account and sends none (no invite was stubbed)
    assert outcome == (Kind.INVITE_ACCOUNT, "succeeded")
    assert account.handshake_id == "h-0123456789abcdef"
    assert _step(account, Kind.INVITE_ACCOUNT).detail["reconciled"] is True
