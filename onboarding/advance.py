"""Advancing the onboarding state machine (workers): claim an account's current step, run its
handler, record the outcome (audited), and carry on with the next step or ask a worker to; and the
reconciler that re-drives what a broker lost.

The state machine itself (paths, handlers, outcomes) is in :mod:`onboarding.workflow`; the manager's
request, retry and cancel are in :mod:`onboarding.services`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic
from typing import Any

from django.db import transaction
from django.utils import timezone

from onboarding import creation_queue, dispatch, selectors, workflow
from onboarding.models import AwsAccount, OnboardingStep
from onboarding.notices import onboarding_step_notify
from portal import steps
from portal.audit import audit_record
from portal.aws import ClientFactory, default_client_factory
from switchroles.models import AccountRole

logger = logging.getLogger(__name__)

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State


# --------------------------------------------------------------------------------------------------
# Enqueueing
# --------------------------------------------------------------------------------------------------


def _enqueue_advance(account_pk: int, *, countdown: float = 0) -> None:
    """Ask a worker to advance the account once the current transaction commits (the one enqueue
    policy, :func:`portal.steps.enqueue_on_commit`: the reconciler re-drives what a broker lost)."""
    dispatch.advance_later(account_pk, countdown=countdown)


# --------------------------------------------------------------------------------------------------
# Advancing the state machine (workers)
# --------------------------------------------------------------------------------------------------


# A worker that finished a step goes on with the next one itself for this long at most, then leaves
# the rest to a new task: well inside the task's time limits, so every lease still outlasts its worker.
CHAIN_SECONDS = 30.0


@dataclass(frozen=True)
class Advanced:
    """What one call of :func:`onboarding_advance` did (with a chain: its last step). ``outcome``:
    a :class:`~portal.steps.Result` (the step ran), or a :class:`~portal.steps.Skip`: BUSY (another
    worker holds it), NOT_DUE (a wait not over yet), IDLE (nothing to do: finished, failed,
    cancelled or gone), LOST_LEASE. ``carried_on``: the step succeeded and this call went on to the
    next one itself, so no worker was asked to."""

    account_id: int
    kind: str | None
    outcome: steps.Result | steps.Skip
    retry_in: float | None = None
    carried_on: bool = False


def _claim(account_id: int, now: datetime) -> tuple[OnboardingStep, AwsAccount, str] | Advanced:
    with transaction.atomic():
        account = AwsAccount.objects.select_for_update().select_related("client").filter(pk=account_id).first()
        if account is None or account.state in AwsAccount.FINAL_STATES or account.state == State.FAILED:
            return Advanced(account_id, None, steps.Skip.IDLE)
        steps_locked_for_advance = OnboardingStep.objects.select_for_update().filter(account=account)
        step = steps_locked_for_advance.exclude(status=Status.SUCCEEDED).order_by("position").first()
        if step is None or step.status in (Status.FAILED, Status.CANCELLED):
            return Advanced(account_id, step.kind if step else None, steps.Skip.IDLE)
        if steps.lease_busy(step, now=now) and step.lease_expires_at is not None:
            # Its worker is on it, or died: look again as soon as the lease runs out.
            return Advanced(account_id, step.kind, steps.Skip.BUSY,
                            retry_in=(step.lease_expires_at - now).total_seconds() + 1)
        if step.status == Status.WAITING and not workflow.is_due(step, now):
            return Advanced(account_id, step.kind, steps.Skip.NOT_DUE)
        previous_status = steps.lease_take(step, now=now, lease=steps.lease_duration())
        if previous_status == Status.RUNNING:
            logger.warning("onboarding.step.lease_expired", extra={"account": account_id, "step": step.kind})
        step.started_at = step.started_at or now
        step.save(update_fields=["status", "attempts", "lease_expires_at", "started_at"])
        state = workflow.ACCOUNT_STATE_DURING[step.kind]
        if account.state != state:
            account.state = state
            account.save(update_fields=["state", "updated_at"])
        return step, account, previous_status


def onboarding_advance(
    *, account_id: int, clients: ClientFactory | None = None, chain_seconds: float = 0
) -> Advanced:
    """Run the account's current step once, if it is due and nobody else holds it.

    Leases the step (so a second worker skips it), runs its handler against AWS outside any
    database transaction, then records the outcome, writes an audit event, releases the lease and
    asks a worker to continue (at once for the next step, after a countdown for a wait). Safe to
    call any number of times, concurrently or after a crash: a lease that ran out is taken over.

    With ``chain_seconds`` (the task passes :data:`CHAIN_SECONDS`), a step that succeeded is
    followed by the next one in this same call, for as long as ``chain_seconds`` after the call
    began: each step is leased, recorded and audited exactly as if it ran alone, and no worker is
    asked for a step this call runs itself. The chain stops at a step that waits, fails or ends, at
    the end of the path, or when the time is up (a worker is then asked as above). Its steps reach
    the member account with one AssumeRole between them (the step that proves the access role works
    always assumes it). Returns what the last step run did.

    Raises a *retryable* ``AwsError`` (throttling, network, AWS-side failure) after recording it on
    the step and releasing the lease; the caller retries later. A non-retryable one fails the step.
    """
    factory = clients or default_client_factory()
    chain = workflow.Chain()
    deadline = monotonic() + chain_seconds if chain_seconds > 0 else None
    result = _advance_step(account_id, factory, chain, deadline)
    while result.carried_on:
        following = _advance_step(account_id, factory, chain, deadline)
        if following.outcome in (steps.Skip.BUSY, steps.Skip.NOT_DUE, steps.Skip.IDLE):
            # Someone else took the next step (a re-drive) or a manager stopped the account: theirs now.
            return result
        result = following
    return result


def _advance_step(account_id: int, clients: ClientFactory, chain: workflow.Chain, deadline: float | None) -> Advanced:
    now = timezone.now()
    claimed = _claim(account_id, now)
    if isinstance(claimed, Advanced):
        return claimed
    step, account, previous_status = claimed
    run = workflow.StepRun(step=step, account=account, clients=clients, now=now, chain=chain, deadline=deadline)
    outcome = steps.run_handler(
        lambda: workflow.HANDLERS[step.kind](run),
        policy=workflow.RETRY_POLICY,
        failures_so_far=int(step.detail.get("transient_failures", 0)),
        on_transient=lambda transient: _record_transient(step, transient, now),
        # Time limit or a bug: give the step back at once rather than after the lease runs out.
        on_crash=lambda: steps.lease_give_back(OnboardingStep, pk=step.pk, attempt=step.attempts,
                                               next_run_at=now + steps.redrive_after()),
    )
    carry_on = deadline is not None and monotonic() < deadline
    return _record_outcome(step.pk, step.attempts, account.pk, previous_status, outcome, carry_on=carry_on)


def _record_transient(step: OnboardingStep, transient: steps.Transient, now: datetime) -> None:
    error = transient.error
    steps.lease_give_back(
        OnboardingStep, pk=step.pk, attempt=step.attempts,
        next_run_at=now + timedelta(seconds=transient.retry_in),
        last_error_code=error.code[:100],
        last_error_raw=error.raw_message,
        last_error_message=error.plain_message,
        detail={**step.detail, "transient_failures": transient.count},
    )
    logger.warning(
        "onboarding.step.transient_error",
        extra={"account": step.account_id, "step": step.kind, "code": error.code, "count": transient.count},
    )


def _record_outcome(
    step_pk: int, attempt: int, account_pk: int, previous_status: str, outcome: steps.Outcome, *,
    carry_on: bool = False,
) -> Advanced:
    now = timezone.now()
    with transaction.atomic():
        account = AwsAccount.objects.select_for_update().select_related("client").get(pk=account_pk)
        steps_locked_for_advance = list(
            OnboardingStep.objects.select_for_update().filter(account=account).order_by("position")
        )
        step = next(s for s in steps_locked_for_advance if s.pk == step_pk)
        if steps.lease_lost(step, attempt=attempt):
            # Our lease ran out and another worker took the step over (or a manager cancelled it).
            logger.warning("onboarding.step.lease_lost", extra={"account": account_pk, "step": step.kind})
            return Advanced(account_pk, step.kind, steps.Skip.LOST_LEASE)
        error = outcome.error
        step.lease_expires_at = None
        step.detail = {**step.detail, **outcome.detail, "note": outcome.note}
        step.detail.pop("transient_failures", None)
        step.last_error_code = error.code[:100] if error else ""
        step.last_error_raw = error.raw_message if error else ""
        step.last_error_message = error.plain_message if error else ""
        fields = ["status", "lease_expires_at", "detail", "last_error_code", "last_error_raw",
                  "last_error_message", "next_run_at", "finished_at"]
        audit: dict[str, Any] = {"step": step.kind, "attempt": step.attempts}
        if error is not None:
            audit.update(code=error.code, message=error.plain_message)
        following = [s for s in steps_locked_for_advance if s.position > step.position]

        if outcome.result == steps.Result.SUCCEEDED:
            step.status, step.finished_at, step.next_run_at = Status.SUCCEEDED, now, None
            step.save(update_fields=fields)
            audit_record(action="onboarding.step.succeeded", target=account, details={**audit, **outcome.detail})
            upcoming = next((s for s in following if s.status != Status.SUCCEEDED), None)
            if upcoming is None:
                _account_state(account, workflow.state_when_done(step.kind))
                audit_record(
                    action=f"onboarding.account.{account.state}",
                    target=account,
                    details={"account_id": account.account_id,
                             "roles": list(account.roles.filter(state=AccountRole.State.ACTIVE)
                                           .values_list("arn", flat=True))},
                )
            else:
                # Also the reconciler's cue should this worker die before the next step is run.
                upcoming.next_run_at = now + steps.redrive_after()
                upcoming.save(update_fields=["next_run_at"])
                _account_state(account, workflow.ACCOUNT_STATE_DURING[upcoming.kind])
                if carry_on:
                    return Advanced(account.pk, step.kind, outcome.result, carried_on=True)
                _enqueue_advance(account.pk)
        elif outcome.result == steps.Result.WAITING:
            step.status = Status.WAITING
            step.next_run_at = now + timedelta(seconds=outcome.wait_seconds)
            step.save(update_fields=fields)
            if previous_status != Status.WAITING:
                audit_record(action="onboarding.step.waiting", target=account,
                             details={**audit, "note": outcome.note})
                if step.kind in (OnboardingStep.Kind.AWAIT_HANDSHAKE, OnboardingStep.Kind.AWAIT_ACCESS_ROLE):
                    onboarding_step_notify(account=account, step=step, waiting_for_client=True)
            _enqueue_advance(account.pk, countdown=outcome.wait_seconds)
            if step.kind == Kind.CREATE_ACCOUNT:
                # A slot freed while this step looked was not offered to it (it was running): once
                # it waits, look again, so the slot goes to the next in line now, not at its recheck.
                transaction.on_commit(creation_queue.creation_queue_wake)
        elif outcome.result == steps.Result.FAILED:
            step.status, step.finished_at, step.next_run_at = Status.FAILED, now, None
            step.save(update_fields=fields)
            _account_state(account, State.FAILED)
            if step.kind == Kind.CREATE_ACCOUNT:  # nothing is being created for it: free its slot
                creation_queue.creation_slot_release(account_pk=account.pk)
            audit_record(action="onboarding.step.failed", target=account, details=audit)
            onboarding_step_notify(account=account, step=step)
            logger.warning("onboarding.step.failed", extra={"account": account.pk, "step": step.kind,
                                                            "code": audit.get("code")})
        else:  # Result.ENDED: the client answered for us
            step.status, step.finished_at, step.next_run_at = Status.FAILED, now, None
            step.save(update_fields=fields)
            for later in following:
                later.status = Status.CANCELLED
                later.save(update_fields=["status"])
            _account_state(account, outcome.end_state or State.CANCELLED)
            audit_record(action=f"onboarding.account.{account.state}", target=account, details=audit)
        return Advanced(account.pk, step.kind, outcome.result)


def _account_state(account: AwsAccount, state: str) -> None:
    if account.state != state:
        account.state = state
        account.save(update_fields=["state", "updated_at"])


# --------------------------------------------------------------------------------------------------
# Reconciler (beat)
# --------------------------------------------------------------------------------------------------


def onboarding_reconcile(*, now: datetime | None = None) -> list[int]:
    """Ask a worker to advance every account whose current step is due: a wait that is over, a
    lease that ran out (its worker died), or a pending step nobody picked up (a lost message).
    Returns the account ids. Safe to run as often as wanted: a step is only ever run by the
    worker that holds its lease."""
    due = list(selectors.accounts_due_for_advance(now=now or timezone.now()).values_list("pk", flat=True))
    for account_pk in due:
        _enqueue_advance(account_pk)
    if due:
        logger.info("onboarding.reconcile", extra={"accounts": due})
    return due
