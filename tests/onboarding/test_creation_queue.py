"""The queue for AWS's creation slots, run synchronously against moto: every request is accepted,
at most SWITCHYARD_MAX_CREATIONS_IN_FLIGHT CreateAccount are in flight, accounts go in request order."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from onboarding import creation_queue
from onboarding.advance import onboarding_advance
from onboarding.models import AwsAccount, OnboardingStep
from onboarding.services import onboarding_cancel
from portal.aws import Boto3ClientFactory
from portal.operations.capacity import slot_holders
from portal.people.models import User
from tests.onboarding.conftest import RequestAccount, make_due

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind


def _request(request_account: RequestAccount, org: Boto3ClientFactory, count: int) -> list[AwsAccount]:
    return [
        request_account(clients=org, client_name=f"Client {i}", client_slug=f"client{i}",
                        root_email=f"awsaccounts+client{i}@example.com")
        for i in range(count)
    ]


def _creation(account: AwsAccount) -> OnboardingStep:
    return OnboardingStep.objects.get(account=account, kind=Kind.CREATE_ACCOUNT)


@pytest.fixture
def two_slots(settings: Any) -> None:
    settings.SWITCHYARD_MAX_CREATIONS_IN_FLIGHT = 2
    settings.SWITCHYARD_ORG_ACCOUNT_QUOTA = 100


def test_accounts_beyond_the_slots_wait_and_say_how_many_are_ahead(
    org: Boto3ClientFactory, request_account: RequestAccount, two_slots: None
) -> None:
    # given four accounts requested (all accepted) with two creation slots
    accounts = _request(request_account, org, 4)

    # when a worker takes up each one's first step
    for account in accounts:
        onboarding_advance(account_id=account.pk, clients=org)

    # then the first two sent CreateAccount and hold the slots; the others wait in request order
    for account in accounts:
        account.refresh_from_db()
    assert [bool(a.create_request_id) for a in accounts] == [True, True, False, False]
    assert slot_holders(pool=creation_queue.CREATION_POOL, capacity=2) == [
        creation_queue.holder_for(accounts[0].pk), creation_queue.holder_for(accounts[1].pk)]
    third, fourth = _creation(accounts[2]), _creation(accounts[3])
    assert third.status == fourth.status == OnboardingStep.Status.WAITING
    assert third.detail["note"].startswith("Waiting for a creation slot (0 ahead)")
    assert fourth.detail["note"].startswith("Waiting for a creation slot (1 ahead)")


def test_a_finished_creation_gives_its_slot_to_the_next_in_line_not_to_a_later_one(
    org: Boto3ClientFactory, request_account: RequestAccount, two_slots: None
) -> None:
    # given two accounts holding the slots and two waiting
    accounts = _request(request_account, org, 4)
    for account in accounts:
        onboarding_advance(account_id=account.pk, clients=org)

    # when AWS reports the first creation done (moto: at once)
    make_due(accounts[0])
    result = onboarding_advance(account_id=accounts[0].pk, clients=org)

    # then its slot is free and the next in line (the third) is woken for now
    assert (result.kind, result.outcome) == (Kind.AWAIT_CREATION, "succeeded")
    assert len(slot_holders(pool=creation_queue.CREATION_POOL, capacity=2)) == 1
    assert _creation(accounts[2]).next_run_at <= timezone.now()
    assert creation_queue.creation_queue_ahead(account=accounts[3]) == 1

    # and the fourth, asking first, still waits for the third
    onboarding_advance(account_id=accounts[3].pk, clients=org)
    accounts[3].refresh_from_db()
    assert not accounts[3].create_request_id
    onboarding_advance(account_id=accounts[2].pk, clients=org)
    accounts[2].refresh_from_db()
    assert accounts[2].create_request_id


def test_a_manager_can_cancel_an_account_waiting_for_a_slot(
    org: Boto3ClientFactory, request_account: RequestAccount, two_slots: None, manager: User
) -> None:
    # given a third account waiting for a slot
    accounts = _request(request_account, org, 3)
    for account in accounts:
        onboarding_advance(account_id=account.pk, clients=org)
    waiting = AwsAccount.objects.get(pk=accounts[2].pk)
    assert waiting.state == AwsAccount.State.CREATING

    # when the manager cancels it
    cancelled = onboarding_cancel(account=waiting, actor=manager, clients=org)

    # then it is cancelled and nothing was ever sent to AWS for it
    assert cancelled.state == AwsAccount.State.CANCELLED
    assert not cancelled.create_request_id
    assert _creation(cancelled).status == OnboardingStep.Status.CANCELLED


def test_a_slot_freed_while_an_account_looked_for_one_goes_to_it_once_it_waits(
    org: Boto3ClientFactory, request_account: RequestAccount, two_slots: None, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given two accounts holding the slots, and the first creation finishing while a third account,
    # being run, has just found no slot (the freed slot's wake-up passes it by: it is running)
    accounts = _request(request_account, org, 3)
    for account in accounts[:2]:
        onboarding_advance(account_id=account.pk, clients=org)
    asked: list[tuple[int, float]] = []
    monkeypatch.setattr("onboarding.dispatch.advance_later",
                        lambda account_pk, *, countdown=0: asked.append((account_pk, countdown)))
    take = creation_queue.creation_slot_take

    def take_while_the_first_creation_finishes(*, account: AwsAccount) -> creation_queue.SlotAnswer:
        answer = take(account=account)
        creation_queue.creation_slot_release(account_pk=accounts[0].pk)
        return answer

    monkeypatch.setattr(creation_queue, "creation_slot_take", take_while_the_first_creation_finishes)

    # when its wait is recorded
    with django_capture_on_commit_callbacks(execute=True):
        onboarding_advance(account_id=accounts[2].pk, clients=org)

    # then it is asked for again at once (not only at its recheck), and is due now
    assert _creation(accounts[2]).status == OnboardingStep.Status.WAITING
    assert (accounts[2].pk, creation_queue.RECHECK_SECONDS) in asked
    assert (accounts[2].pk, 0) in asked
    due_at = _creation(accounts[2]).next_run_at
    assert due_at is not None and due_at <= timezone.now()
