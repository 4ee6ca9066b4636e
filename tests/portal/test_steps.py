"""The step machine (portal.steps) on its own: leases, claims, backoff, the retry policy, the due
filter, and the one enqueue-on-commit helper. Rows are onboarding steps written straight to the
database (no AWS); the machine only reads their status, attempts, lease and next run."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError

from onboarding.models import AwsAccount, Client, OnboardingStep
from portal import steps
from portal.steps import Outcome, Result, RetryPolicy, Transient

pytestmark = pytest.mark.django_db

Status = OnboardingStep.Status
LEASE = timedelta(seconds=200)


def _account(slug: str = "acme") -> AwsAccount:
    client = Client.objects.create(slug=slug, name=f"{slug.title()} Retail")
    return AwsAccount.objects.create(client=client, name="production", origin=AwsAccount.Origin.CREATED,
                                     reason="test", root_email=f"awsaccounts+{slug}@example.com")


def _step(account: AwsAccount, position: int = 1, **fields: Any) -> OnboardingStep:
    return OnboardingStep.objects.create(account=account, position=position,
                                         kind=list(OnboardingStep.Kind)[position - 1], **fields)


def _claimable(account: AwsAccount) -> Callable[[datetime], QuerySet[OnboardingStep]]:
    def claimable(now: datetime) -> QuerySet[OnboardingStep]:
        return OnboardingStep.objects.filter(account=account).filter(
            steps.due_filter(now=now, scheduled=False)
        ).exclude(status=Status.RUNNING, lease_expires_at__isnull=True)

    return claimable


# --- claims and leases -----------------------------------------------------------------------------


def test_two_workers_claiming_the_same_row_one_wins_and_the_other_gets_nothing() -> None:
    # given one pending row
    account = _account()
    row = _step(account)
    now = timezone.now()

    # when two workers claim it one after the other (the second before the first's lease runs out)
    first = steps.claim_next(_claimable(account), now=now, lease=LEASE)
    second = steps.claim_next(_claimable(account), now=now + timedelta(seconds=1), lease=LEASE)

    # then the first holds it, leased, at its first attempt; the second got nothing
    assert first is not None and first.pk == row.pk
    assert second is None
    row.refresh_from_db()
    assert (row.status, row.attempts, row.lease_expires_at) == (Status.RUNNING, 1, now + LEASE)


def test_a_row_whose_lease_ran_out_is_claimed_again_and_its_first_worker_has_lost_it() -> None:
    # given a row claimed by a worker that then died
    account = _account()
    _step(account)
    now = timezone.now()
    dead = steps.claim_next(_claimable(account), now=now, lease=LEASE)
    assert dead is not None

    # when another worker claims after the lease ran out
    again = steps.claim_next(_claimable(account), now=now + LEASE + timedelta(seconds=1), lease=LEASE)

    # then it takes the row over at the next attempt, and the dead worker's attempt no longer holds it
    assert again is not None and again.attempts == 2
    again.refresh_from_db()
    assert steps.lease_lost(again, attempt=1)
    assert not steps.lease_lost(again, attempt=2)


def test_a_locked_row_under_a_live_lease_is_busy_and_one_whose_lease_ran_out_is_taken_over() -> None:
    # given a row running under a lease that ends in a minute
    now = timezone.now()
    row = _step(_account(), status=Status.RUNNING, attempts=1, lease_expires_at=now + timedelta(minutes=1))

    # then it is busy now, and not once the lease has run out
    assert steps.lease_busy(row, now=now)
    assert not steps.lease_busy(row, now=now + timedelta(minutes=2))

    # when a worker takes it over then
    previous = steps.lease_take(row, now=now + timedelta(minutes=2), lease=LEASE)

    # then the takeover is visible (it was running) and the row is leased anew, one attempt more
    assert previous == Status.RUNNING
    assert (row.status, row.attempts, row.lease_expires_at) == (Status.RUNNING, 2, now + timedelta(minutes=2) + LEASE)


def test_giving_a_row_back_only_works_for_the_worker_that_still_holds_it() -> None:
    # given a row taken over by a second worker (attempt 2)
    now = timezone.now()
    row = _step(_account(), status=Status.RUNNING, attempts=2, lease_expires_at=now + LEASE)

    # when the first worker (attempt 1) gives it back, then the second
    stale = steps.lease_give_back(OnboardingStep, pk=row.pk, attempt=1, next_run_at=now, last_error_code="Old")
    current = steps.lease_give_back(OnboardingStep, pk=row.pk, attempt=2, next_run_at=now + timedelta(seconds=60),
                                    last_error_code="Throttling")

    # then only the second counted: pending, no lease, due in a minute, with its error
    row.refresh_from_db()
    assert (stale, current) == (False, True)
    assert (row.status, row.lease_expires_at, row.next_run_at, row.last_error_code) == (
        Status.PENDING, None, now + timedelta(seconds=60), "Throttling")


def test_a_claim_takes_one_row_and_leaves_the_others_as_they_were() -> None:
    # given three pending rows of one account, all at the same attempt (a mutation survivor:
    # a claim that forgot the row's pk leased every row at that attempt)
    account = _account()
    rows = [_step(account, position) for position in (1, 2, 3)]
    now = timezone.now()

    # when one worker claims
    claimed = steps.claim_next(_claimable(account), now=now, lease=LEASE)

    # then it holds exactly the first row; the other two are still pending and unleased
    assert claimed is not None and claimed.pk == rows[0].pk
    states = {r.pk: (r.status, r.attempts, r.lease_expires_at) for r in OnboardingStep.objects.filter(account=account)}
    assert states == {rows[0].pk: (Status.RUNNING, 1, now + LEASE),
                      rows[1].pk: (Status.PENDING, 0, None), rows[2].pk: (Status.PENDING, 0, None)}


def test_giving_a_row_back_leaves_other_running_rows_alone() -> None:
    # given two rows held by workers at the same attempt (a mutation survivor: a give-back that
    # forgot the pk put every running row at that attempt back to pending)
    now = timezone.now()
    mine = _step(_account("acme"), status=Status.RUNNING, attempts=1, lease_expires_at=now + LEASE)
    theirs = _step(_account("globex"), status=Status.RUNNING, attempts=1, lease_expires_at=now + LEASE)

    # when the first worker gives its row back
    assert steps.lease_give_back(OnboardingStep, pk=mine.pk, attempt=1, next_run_at=now) is True

    # then only that row is pending; the other worker still holds its own
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert (mine.status, theirs.status, theirs.lease_expires_at) == (Status.PENDING, Status.RUNNING, now + LEASE)


# --- backoff -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("attempt", "seconds"), [(0, 30), (1, 30), (2, 60), (3, 120), (5, 480), (6, 900),
                                                   (7, 900), (10_000, 900)])
def test_the_backoff_doubles_from_its_base_and_stops_at_its_cap(attempt: int, seconds: int) -> None:
    assert steps.backoff_seconds(attempt, base=30, cap=900) == seconds


# --- the retry policy ------------------------------------------------------------------------------


class FakeAwsError(Exception):
    def __init__(self, code: str, retryable: bool) -> None:
        super().__init__(code)
        self.code, self.retryable = code, retryable
        self.raw_message, self.plain_message = f"raw {code}", f"plain {code}"


def _gave_up(error: FakeAwsError, tries: int) -> FakeAwsError:
    gave_up = FakeAwsError(error.code, False)
    gave_up.plain_message = f"gave up after {tries}"
    return gave_up


POLICY = RetryPolicy(error_type=FakeAwsError, limit=lambda error: 3, gave_up=_gave_up,
                     invalid=lambda exc: FakeAwsError("InvalidRequest", False), base=30, cap=900)


def _raising(error: BaseException) -> Callable[[], Outcome]:
    def handler() -> Outcome:
        raise error

    return handler


def test_a_transient_error_below_the_limit_is_given_back_with_backoff_and_raised() -> None:
    # given a handler AWS throttles, for the second time in a row
    transients: list[Transient] = []
    crashes: list[bool] = []

    # when it runs
    with pytest.raises(FakeAwsError):
        steps.run_handler(_raising(FakeAwsError("Throttling", True)), policy=POLICY, failures_so_far=1,
                          on_transient=transients.append, on_crash=lambda: crashes.append(True))

    # then the row is given back as the second failure, to be retried after the backoff
    assert [(t.error.code, t.count, t.retry_in) for t in transients] == [("Throttling", 2, 60)]
    assert crashes == []


def test_at_the_transient_limit_the_step_fails_with_the_gave_up_error_and_is_not_retried() -> None:
    # given a handler throttled for the third time in a row (the policy's limit)
    transients: list[Transient] = []

    # when it runs
    outcome = steps.run_handler(_raising(FakeAwsError("Throttling", True)), policy=POLICY, failures_so_far=2,
                                on_transient=transients.append, on_crash=lambda: None)

    # then the step fails for a person, with the policy's words, and nothing is given back to retry
    assert outcome.result == Result.FAILED
    assert outcome.error is not None and outcome.error.plain_message == "gave up after 3"
    assert not outcome.error.retryable
    assert transients == []


def test_an_error_that_is_not_retryable_fails_the_step_with_that_error() -> None:
    error = FakeAwsError("RoleConflict", False)
    outcome = steps.run_handler(_raising(error), policy=POLICY, failures_so_far=0,
                                on_transient=lambda t: pytest.fail("not transient"), on_crash=lambda: None)
    assert (outcome.result, outcome.error) == (Result.FAILED, error)


def test_a_value_aws_would_refuse_fails_the_step_with_the_invalid_request_error() -> None:
    outcome = steps.run_handler(_raising(ValueError("name too long")), policy=POLICY, failures_so_far=0,
                                on_transient=lambda t: None, on_crash=lambda: None)
    assert outcome.result == Result.FAILED and outcome.error is not None
    assert outcome.error.code == "InvalidRequest"


def test_anything_else_gives_the_row_back_at_once_and_is_raised() -> None:
    crashes: list[bool] = []
    with pytest.raises(KeyError):
        steps.run_handler(_raising(KeyError("bug")), policy=POLICY, failures_so_far=0,
                          on_transient=lambda t: None, on_crash=lambda: crashes.append(True))
    assert crashes == [True]


def test_a_handler_that_returns_an_outcome_is_passed_through() -> None:
    outcome = steps.run_handler(lambda: Outcome.waiting(10, "not yet"), policy=POLICY, failures_so_far=0,
                                on_transient=lambda t: None, on_crash=lambda: None)
    assert (outcome.result, outcome.wait_seconds, outcome.note) == (Result.WAITING, 10, "not yet")
    assert outcome.result == "waiting"  # an enum that still reads as its word in rows and audit details


# --- what the reconciler re-drives -----------------------------------------------------------------


def test_the_due_filter_picks_lost_messages_dead_workers_and_waits_that_are_over() -> None:
    # given rows of every kind around now
    now = timezone.now()
    account = _account()
    past, future = now - timedelta(seconds=1), now + timedelta(minutes=5)
    rows = {
        "pending, message lost": _step(account, 1, next_run_at=past),
        "pending, message on its way": _step(account, 2, next_run_at=future),
        "running, worker died": _step(account, 3, status=Status.RUNNING, lease_expires_at=past),
        "running, worker alive": _step(account, 4, status=Status.RUNNING, lease_expires_at=future),
        "waiting, over": _step(account, 5, status=Status.WAITING, next_run_at=past),
        "waiting, not yet": _step(account, 6, status=Status.WAITING, next_run_at=future),
        "done": _step(account, 7, status=Status.SUCCEEDED, next_run_at=past),
    }

    # when the reconciler asks which are due
    due = set(OnboardingStep.objects.filter(steps.due_filter(now=now, waiting=Status.WAITING))
              .values_list("pk", flat=True))

    # then exactly the lost, the dead and the waits that are over
    assert {name for name, row in rows.items() if row.pk in due} == {
        "pending, message lost", "running, worker died", "waiting, over"}


# --- enqueue on commit -----------------------------------------------------------------------------


class FakeTask:
    def __init__(self, failure: BaseException | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.failure = failure

    def apply_async(self, *args: Any, **kwargs: Any) -> None:
        if self.failure is not None:
            raise self.failure
        self.sent.append(kwargs)


NAMED_TASK = FakeTask()


def test_a_task_is_sent_only_once_the_transaction_commits(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a task asked for inside a transaction
    task = FakeTask()
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            steps.enqueue_on_commit(task, 7, countdown=5)
            # then nothing is sent while the transaction is open
            assert task.sent == []
        assert task.sent == []  # (the test's own outer transaction stands for the commit)

    # and it is sent once it commits, with its arguments and countdown
    assert task.sent == [{"args": (7,), "kwargs": None, "countdown": 5}]


def test_a_task_asked_for_in_a_transaction_that_rolls_back_is_never_sent(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    task = FakeTask()
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            steps.enqueue_on_commit(task, 7)
            raise RuntimeError("the write failed")
    assert task.sent == []


def test_a_task_named_by_its_dotted_path_is_looked_up_when_sent_and_sent_as_many_times_as_asked(
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    NAMED_TASK.sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        steps.enqueue_on_commit(f"{__name__}.NAMED_TASK", 3, copies=2, reason="test")
    assert NAMED_TASK.sent == [{"args": (3,), "kwargs": {"reason": "test"}}] * 2


def test_a_broker_that_is_down_is_logged_not_raised_and_other_errors_propagate(
    django_capture_on_commit_callbacks: Callable[..., Any], caplog: pytest.LogCaptureFixture,
) -> None:
    # given a broker that refuses the connection
    with caplog.at_level(logging.WARNING, logger="portal.steps.enqueue"):
        with django_capture_on_commit_callbacks(execute=True):
            steps.enqueue_on_commit(FakeTask(OperationalError("connection refused")), 1)

    # then the commit stands and the failure is logged (the reconciler re-drives the row)
    assert [record.message for record in caplog.records] == ["steps.enqueue.failed"]

    # but an error of the task itself (eager in tests) is not hidden
    with pytest.raises(ZeroDivisionError), django_capture_on_commit_callbacks(execute=True):
        steps.enqueue_on_commit(FakeTask(ZeroDivisionError()), 1)
