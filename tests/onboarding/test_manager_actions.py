"""What managers and the reconciler do to a running workflow: retry a failed step, cancel before
anything exists in AWS, check an invited account's access role now, and re-drive lost work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from botocore.stub import ANY
from django.core.exceptions import ValidationError
from django.utils import timezone

from onboarding.advance import onboarding_advance, onboarding_reconcile
from onboarding.models import AwsAccount, OnboardingStep
from onboarding.services import access_role_verify_now, onboarding_cancel, onboarding_step_retry
from onboarding.tasks import advance_account, reconcile_onboarding
from portal.audit.models import AuditEvent
from portal.people.models import User
from tests.onboarding.conftest import AwsMustNotBeCalled, make_account
from tests.onboarding.test_aws import MEMBER_ACCOUNT_ID, NOW, StubbedClients, creation_status, handshake

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State
OLD_REQUEST = "car-0123456789abcdef"
NEW_REQUEST = "car-fedcba9876543210"


@pytest.fixture
def stubbed() -> Iterator[StubbedClients]:
    clients = StubbedClients()
    yield clients
    clients.verify()


def _step(account: AwsAccount, kind: str) -> OnboardingStep:
    return OnboardingStep.objects.get(account=account, kind=kind)


def _failed_creation(stubbed: StubbedClients) -> AwsAccount:
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id=OLD_REQUEST)
    stubbed.stub("organizations").add_response(
        "describe_create_account_status", creation_status("FAILED", FailureReason="CONCURRENT_ACCOUNT_MODIFICATION"),
        {"CreateAccountRequestId": OLD_REQUEST},
    )
    onboarding_advance(account_id=account.pk, clients=stubbed)
    account.refresh_from_db()
    assert account.state == State.FAILED
    return account


def test_retrying_a_failed_creation_sends_a_new_request_and_never_adopts_the_failed_one(
    stubbed: StubbedClients, manager: User, django_capture_on_commit_callbacks: Any
) -> None:
    # given a creation AWS reported as failed
    account = _failed_creation(stubbed)
    org = stubbed._stubbers["organizations"]
    failed_status = creation_status("FAILED", FailureReason="CONCURRENT_ACCOUNT_MODIFICATION")["CreateAccountStatus"]
    # the retry reconciles first (the step was attempted before): AWS only knows the old failure
    org.add_response("list_accounts", {"Accounts": []})
    org.add_response("list_create_account_status", {"CreateAccountStatuses": [failed_status]})
    fresh = {**creation_status("IN_PROGRESS")["CreateAccountStatus"], "Id": NEW_REQUEST}
    org.add_response("create_account", {"CreateAccountStatus": fresh},
                     {"Email": "awsaccounts+acme@example.com", "AccountName": "production", "Tags": ANY})

    # when a manager retries the failed step
    with django_capture_on_commit_callbacks() as callbacks:
        onboarding_step_retry(step=_step(account, Kind.AWAIT_CREATION), actor=manager)
    account.refresh_from_db()
    creation = _step(account, Kind.CREATE_ACCOUNT)

    # then the creation starts over, the failed request remembered as abandoned, and a worker is asked
    assert account.state == State.CREATING and account.create_request_id == ""
    assert creation.status == Status.PENDING and creation.detail["abandoned_request_ids"] == [OLD_REQUEST]
    assert _step(account, Kind.AWAIT_CREATION).last_error_code == ""
    previous = _step(account, Kind.AWAIT_CREATION).detail["previous_errors"]
    assert previous[0]["code"] == "CONCURRENT_ACCOUNT_MODIFICATION"
    assert len(callbacks) == 1
    event = AuditEvent.objects.get(action="onboarding.step.retried")
    assert (event.actor, event.details["step"]) == (manager, Kind.AWAIT_CREATION)

    # and the next run sends a fresh CreateAccount
    OnboardingStep.objects.filter(pk=creation.pk).update(attempts=1, detail={**creation.detail, "sending": True})
    assert onboarding_advance(account_id=account.pk, clients=stubbed).outcome == "succeeded"
    account.refresh_from_db()
    assert account.create_request_id == NEW_REQUEST


def test_only_a_failed_step_can_be_retried(manager: User) -> None:
    account = make_account()
    with pytest.raises(ValidationError):
        onboarding_step_retry(step=_step(account, Kind.CREATE_ACCOUNT), actor=manager)
    assert not AuditEvent.objects.filter(action="onboarding.step.retried").exists()


def test_a_requested_account_can_be_cancelled_before_anything_is_sent(manager: User) -> None:
    # given an account no worker has started on
    account = make_account()

    # when a manager cancels it
    onboarding_cancel(account=account, actor=manager, clients=AwsMustNotBeCalled())

    # then it is cancelled with all its steps, audited, and a worker finds nothing to do
    account.refresh_from_db()
    assert account.state == State.CANCELLED
    assert set(account.steps.values_list("status", flat=True)) == {Status.CANCELLED}
    assert AuditEvent.objects.get(action="onboarding.account.cancelled").actor == manager
    assert onboarding_advance(account_id=account.pk, clients=AwsMustNotBeCalled()).outcome == "idle"


def test_an_account_whose_creation_failed_can_be_cancelled(stubbed: StubbedClients, manager: User) -> None:
    account = _failed_creation(stubbed)
    onboarding_cancel(account=account, actor=manager, clients=AwsMustNotBeCalled())
    account.refresh_from_db()
    assert account.state == State.CANCELLED


@pytest.mark.parametrize("state", [State.CREATING, State.PROVISIONING, State.ACTIVE])
def test_an_account_being_created_or_existing_cannot_be_cancelled(manager: User, state: str) -> None:
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id=OLD_REQUEST, state=state,
                           account_id=MEMBER_ACCOUNT_ID if state != State.CREATING else None)
    with pytest.raises(ValidationError):
        onboarding_cancel(account=account, actor=manager, clients=AwsMustNotBeCalled())
    account.refresh_from_db()
    assert account.state == state


def test_cancelling_an_open_invitation_withdraws_it_in_aws(stubbed: StubbedClients, manager: User) -> None:
    # given an invitation the client has not answered
    account = make_account(origin=AwsAccount.Origin.INVITED, at=Kind.AWAIT_HANDSHAKE, state=State.INVITING,
                           handshake_id="h-0123456789abcdef")
    stubbed.stub("organizations").add_response("cancel_handshake", handshake("CANCELED"),
                                               {"HandshakeId": "h-0123456789abcdef"})

    # when a manager cancels the onboarding
    onboarding_cancel(account=account, actor=manager, clients=stubbed)

    # then AWS withdrew the invitation and the account is cancelled
    account.refresh_from_db()
    assert account.state == State.CANCELLED
    assert AuditEvent.objects.get(action="onboarding.account.cancelled").details == {"handshake_cancelled": True}


def test_an_invitation_the_client_just_accepted_cannot_be_cancelled(stubbed: StubbedClients, manager: User) -> None:
    account = make_account(origin=AwsAccount.Origin.INVITED, at=Kind.AWAIT_HANDSHAKE, state=State.INVITING,
                           handshake_id="h-0123456789abcdef")
    org = stubbed.stub("organizations")
    org.add_client_error("cancel_handshake", "InvalidHandshakeTransitionException", "already accepted", 400)
    org.add_response("describe_handshake", handshake("ACCEPTED"), {"HandshakeId": "h-0123456789abcdef"})

    with pytest.raises(ValidationError) as raised:
        onboarding_cancel(account=account, actor=manager, clients=stubbed)

    assert "just accepted" in raised.value.messages[0]
    account.refresh_from_db()
    assert account.state == State.INVITING


def test_verify_access_now_makes_the_waiting_check_due_at_once(
    stubbed: StubbedClients, manager: User, django_capture_on_commit_callbacks: Any
) -> None:
    # given an invited account waiting (for an hour more) for the client's access role
    account = make_account(origin=AwsAccount.Origin.INVITED, at=Kind.AWAIT_ACCESS_ROLE,
                           state=State.AWAITING_ACCESS_ROLE, handshake_id="h-0123456789abcdef")
    OnboardingStep.objects.filter(account=account, kind=Kind.AWAIT_ACCESS_ROLE).update(
        status=Status.WAITING, attempts=4, next_run_at=timezone.now() + timedelta(hours=1))
    stubbed.stub("sts").add_response("assume_role", {"Credentials": {
        "AccessKeyId": "ASIAEXAMPLEEXAMPLE", "SecretAccessKey": "s", "SessionToken": "t", "Expiration": NOW}})
    # (and the role, read back through the session it gave, trusts the main account)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}]}
    stubbed.stub("iam").add_response("get_role", {"Role": {
        "Path": "/", "RoleName": "SwitchyardAccessRole", "RoleId": "AROAEXAMPLEEXAMPLE1",
        "Arn": "arn:aws:iam::210987654321:role/SwitchyardAccessRole", "CreateDate": NOW,
        "AssumeRolePolicyDocument": json.dumps(trust)}}, {"RoleName": "SwitchyardAccessRole"})

    # when the manager says the client has deployed the template
    with django_capture_on_commit_callbacks() as callbacks:
        access_role_verify_now(account=account, actor=manager)

    # then a worker is asked at once, and its check goes through now
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="onboarding.access_role.verify_requested").exists()
    result = onboarding_advance(account_id=account.pk, clients=stubbed)
    assert (result.kind, result.outcome) == (Kind.AWAIT_ACCESS_ROLE, "succeeded")


def test_verify_access_now_is_refused_when_nothing_waits_for_it(manager: User) -> None:
    account = make_account()
    with pytest.raises(ValidationError):
        access_role_verify_now(account=account, actor=manager)


# --------------------------------------------------------------------------------------------------
# Leases and the reconciler
# --------------------------------------------------------------------------------------------------


def _held(account: AwsAccount, *, lease_ends_in: timedelta) -> None:
    """A worker took the creation poll and (maybe) died: the step is running under its lease."""
    OnboardingStep.objects.filter(account=account, kind=Kind.AWAIT_CREATION).update(
        status=Status.RUNNING, attempts=1, started_at=timezone.now() - timedelta(minutes=10),
        lease_expires_at=timezone.now() + lease_ends_in,
    )
    AwsAccount.objects.filter(pk=account.pk).update(state=State.CREATING)


def test_a_step_under_a_live_lease_is_left_to_its_worker() -> None:
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id=OLD_REQUEST)
    _held(account, lease_ends_in=timedelta(minutes=3))

    result = onboarding_advance(account_id=account.pk, clients=AwsMustNotBeCalled())

    assert result.outcome == "busy"
    assert onboarding_reconcile() == []


def test_the_reconciler_re_drives_a_step_whose_worker_died(
    stubbed: StubbedClients, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    # given a step whose worker died (its lease ran out), and AWS that has since finished the account
    monkeypatch.setattr("onboarding.advance.default_client_factory", lambda: stubbed)
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id=OLD_REQUEST)
    _held(account, lease_ends_in=-timedelta(seconds=1))
    stubbed.stub("organizations").add_response(
        "describe_create_account_status",
        creation_status("SUCCEEDED", AccountId=MEMBER_ACCOUNT_ID, CompletedTimestamp=NOW),
        {"CreateAccountRequestId": OLD_REQUEST},
    )
    # (the worker then carries on with the next step, where the new account's IAM is not ready yet)
    stubbed.stub("sts").add_client_error("assume_role", "AccessDenied", "not authorized", 403)

    # when beat runs the reconciler, and the worker runs what it queued
    with django_capture_on_commit_callbacks() as queued:
        reconcile_onboarding.apply()
    for send in queued:
        send()

    # then the step was taken over (a second attempt) and completed
    step = _step(account, Kind.AWAIT_CREATION)
    account.refresh_from_db()
    assert len(queued) == 1
    assert (step.status, step.attempts, step.lease_expires_at) == (Status.SUCCEEDED, 2, None)
    assert account.account_id == MEMBER_ACCOUNT_ID


def test_the_reconciler_re_drives_due_waits_and_forgotten_steps_only() -> None:
    # given: a wait that is over, a wait still running, a pending step nobody picked up, a fresh
    # request, a finished account and one that needs attention
    now = timezone.now()
    over = make_account(client_slug="over", at=Kind.AWAIT_CREATION, state=State.CREATING)
    OnboardingStep.objects.filter(account=over, kind=Kind.AWAIT_CREATION).update(
        status=Status.WAITING, next_run_at=now - timedelta(seconds=5))
    later = make_account(client_slug="later", at=Kind.AWAIT_CREATION, state=State.CREATING)
    OnboardingStep.objects.filter(account=later, kind=Kind.AWAIT_CREATION).update(
        status=Status.WAITING, next_run_at=now + timedelta(minutes=1))
    forgotten = make_account(client_slug="forgotten")
    OnboardingStep.objects.filter(account=forgotten, position=1).update(next_run_at=now - timedelta(minutes=1))
    fresh = make_account(client_slug="fresh")
    OnboardingStep.objects.filter(account=fresh, position=1).update(next_run_at=now + timedelta(minutes=2))
    make_account(client_slug="done", at=Kind.PUBLISH_LINKS, state=State.ACTIVE)
    make_account(client_slug="broken", state=State.FAILED)

    # when the reconciler looks
    due = onboarding_reconcile(now=now)

    # then it re-drives exactly the wait that is over and the forgotten step
    assert due == sorted([over.pk, forgotten.pk])


def test_a_redelivered_task_finding_the_step_leased_looks_again_when_the_lease_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a step leased for 30 more seconds by a worker that was killed (its message redelivered)
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id=OLD_REQUEST)
    _held(account, lease_ends_in=timedelta(seconds=30))
    scheduled: list[dict[str, Any]] = []
    monkeypatch.setattr(advance_account, "apply_async", lambda **options: scheduled.append(options))

    # when the redelivered task runs on a worker
    outcome = advance_account.run(account.pk)

    # then it leaves the step alone and comes back just after the lease ends
    assert outcome == "busy"
    assert scheduled[0]["args"] == (account.pk,) and 30 <= scheduled[0]["countdown"] <= 32
