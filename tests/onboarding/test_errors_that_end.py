"""Errors that end: an answer retrying cannot change fails the step at once; an unexplained AWS-side
failure is retried a few times, then fails clearly; raw HTML never reaches a person; a failed or
stuck step counts as needing attention on the home page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from onboarding import workflow
from onboarding.advance import onboarding_advance
from onboarding.models import AwsAccount, OnboardingStep
from onboarding.selectors import accounts_needing_attention
from portal.aws import AwsError, classify_client_error
from portal.people.models import User
from tests.onboarding.conftest import make_account
from tests.onboarding.test_aws import MEMBER_ACCOUNT_ID, StubbedClients

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State

# What a moto server (Flask) answers for an action it does not implement, and what a proxy might.
FLASK_500_PAGE = (
    "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
    "<p>The server encountered an internal error and was unable to complete your request.</p>\n"
)


@pytest.fixture
def stubbed() -> Iterator[StubbedClients]:
    clients = StubbedClients()
    yield clients
    clients.verify()


def _error(code: str, message: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "InviteAccountToOrganization",
    )


def _invite(account: AwsAccount) -> OnboardingStep:
    return OnboardingStep.objects.get(account=account, kind=Kind.INVITE_ACCOUNT)


def test_an_html_error_page_is_kept_as_its_words_without_markup() -> None:
    # given AWS (a proxy, or a local server) answering with an HTML error page
    error = classify_client_error(_error("500", FLASK_500_PAGE, 500))

    # then the raw message kept for the page has its words and no markup
    assert "<" not in error.raw_message and ">" not in error.raw_message
    assert "500 Internal Server Error" in error.raw_message
    assert "<" not in error.plain_message
    assert error.retryable


@pytest.mark.parametrize("code,status", [("NotImplemented", 501), ("NotImplementedException", 400),
                                         ("Whatever", 501)])
def test_an_operation_the_endpoint_does_not_implement_is_not_retryable(code: str, status: int) -> None:
    # when the endpoint says it does not implement the operation
    error = classify_client_error(_error(code, "The invite action has not been implemented", status))

    # then retrying is ruled out, and the message says why and what to do
    assert (error.code, error.retryable) == ("NotImplemented", False)
    assert "retrying will not help" in error.plain_message
    assert "InviteAccountToOrganization" in error.plain_message


def test_an_unknown_client_side_refusal_is_not_retried() -> None:
    # when AWS refuses with a 4xx code Switchyard does not know (not throttling)
    error = classify_client_error(_error("SomethingNewException", "nope", 400))

    # then it is final, and the person is told retrying will not change it
    assert not error.retryable
    assert "Retrying will not change that" in error.plain_message


def test_moto_in_process_not_implemented_fails_the_step_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # given an invited account, and an endpoint (moto in-process) raising NotImplementedError
    account = make_account(origin=AwsAccount.Origin.INVITED, account_id=MEMBER_ACCOUNT_ID)

    class Unimplemented:
        def invite_account_to_organization(self, **_: object) -> None:
            raise NotImplementedError("The invite_account_to_organization action has not been implemented")

    class Factory:
        def client(self, service: str, credentials: object = None, **_: object) -> Unimplemented:
            return Unimplemented()

    # when the worker runs the invitation step
    result = onboarding_advance(account_id=account.pk, clients=Factory())  # type: ignore[arg-type]

    # then the step failed on its first attempt with a plain message, and nothing is retried
    step, account = _invite(account), AwsAccount.objects.get(pk=account.pk)
    assert result.outcome == "failed"
    assert (step.status, step.attempts, account.state) == (Status.FAILED, 1, State.FAILED)
    assert step.last_error_code == "NotImplemented"
    assert "retrying will not help" in step.last_error_message
    assert onboarding_advance(account_id=account.pk, clients=Factory()).outcome == "idle"  # type: ignore[arg-type]


def test_the_sandbox_not_implemented_answer_fails_the_step_at_once(stubbed: StubbedClients) -> None:
    # given an invited account, and an endpoint answering 501 NotImplemented
    account = make_account(origin=AwsAccount.Origin.INVITED, account_id=MEMBER_ACCOUNT_ID)
    stubbed.stub("organizations").add_client_error(
        "invite_account_to_organization", "NotImplemented", "not implemented", 501,
        expected_params={"Target": {"Id": MEMBER_ACCOUNT_ID, "Type": "ACCOUNT"}, "Notes": ANY},
    )

    # when the worker runs the invitation step
    result = onboarding_advance(account_id=account.pk, clients=stubbed)

    # then it failed once, for a person
    step = _invite(account)
    assert (result.outcome, step.status, step.attempts) == ("failed", Status.FAILED, 1)


def test_an_unexplained_server_error_is_retried_a_few_times_then_fails_clearly(stubbed: StubbedClients) -> None:
    # given an endpoint that answers every invitation with an HTML 500 page
    account = make_account(origin=AwsAccount.Origin.INVITED, account_id=MEMBER_ACCOUNT_ID)
    org = stubbed.stub("organizations")
    tries = workflow.MAX_UNEXPLAINED_FAILURES
    # The first try sends; the later ones first look for an invitation the lost answer may have sent.
    org.add_client_error("invite_account_to_organization", "500", FLASK_500_PAGE, 500)
    for _ in range(tries - 1):
        org.add_response("list_handshakes_for_organization", {"Handshakes": []})
        org.add_client_error("invite_account_to_organization", "500", FLASK_500_PAGE, 500)

    # when the workers run the step until it stops
    retried = 0
    for _ in range(tries):
        try:
            onboarding_advance(account_id=account.pk, clients=stubbed)
        except AwsError as error:
            assert error.retryable
            retried += 1

    # then it was retried a bounded number of times and failed with a clear message and no HTML
    step = _invite(account)
    account.refresh_from_db()
    assert retried == tries - 1
    assert (step.status, step.attempts, account.state) == (Status.FAILED, tries, State.FAILED)
    assert f"failed {tries} times in a row" in step.last_error_message
    assert "Retry this step" in step.last_error_message
    assert "<" not in step.last_error_raw


def test_throttling_keeps_its_longer_allowance() -> None:
    # given throttling and an unexplained server error
    throttled = classify_client_error(_error("TooManyRequestsException", "Rate exceeded", 400))
    unexplained = classify_client_error(_error("500", FLASK_500_PAGE, 500))

    # then throttling is retried for longer than an error nobody can explain
    assert workflow.transient_failure_limit(throttled) == workflow.MAX_TRANSIENT_FAILURES
    assert workflow.transient_failure_limit(unexplained) == workflow.MAX_UNEXPLAINED_FAILURES
    assert workflow.MAX_UNEXPLAINED_FAILURES < workflow.MAX_TRANSIENT_FAILURES


def test_failed_and_stuck_steps_count_as_needing_attention(
    manager: User, signed_in: Callable[[User], HttpClient]
) -> None:
    # given a failed account, one retrying an AWS error, one whose step nobody picked up for an hour,
    # one waiting normally for its client, and an active one
    failed = make_account(client_slug="failed", state=State.FAILED, root_email="a+failed@example.com")
    retrying = make_account(client_slug="retrying", state=State.CREATING, root_email="a+retrying@example.com")
    OnboardingStep.objects.filter(account=retrying, position=1).update(
        last_error_code="500", next_run_at=timezone.now() + timedelta(minutes=5)
    )
    forgotten = make_account(client_slug="forgotten", state=State.CREATING, root_email="a+forgotten@example.com")
    OnboardingStep.objects.filter(account=forgotten, position=1).update(
        next_run_at=timezone.now() - timedelta(hours=1)
    )
    waiting = make_account(origin=AwsAccount.Origin.INVITED, at=Kind.AWAIT_HANDSHAKE, client_slug="waiting",
                           state=State.INVITING)
    OnboardingStep.objects.filter(account=waiting, kind=Kind.AWAIT_HANDSHAKE).update(
        status=Status.WAITING, next_run_at=timezone.now() + timedelta(minutes=5)
    )
    make_account(client_slug="active", state=State.ACTIVE, root_email="a+active@example.com")

    # when a manager opens the home page
    page = signed_in(manager).get(reverse("home")).content.decode()

    # then the failed and the stuck accounts need attention, the others do not
    assert set(accounts_needing_attention()) == {failed, retrying, forgotten}
    assert "3 needing attention" in page
