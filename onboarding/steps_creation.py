"""The creation steps of a created account's onboarding (:data:`onboarding.workflow.CREATED_PATH`):
send CreateAccount once, taking a creation slot first (``onboarding.creation_queue``), then wait for
AWS to finish creating the account. ``onboarding.workflow.HANDLERS`` names them.

CreateAccount is not idempotent: the step writes its intent first and, on any later attempt, looks
for the creation it may have sent before sending again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from time import monotonic, sleep
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from onboarding import creation_queue
from onboarding.models import AwsAccount
from portal import aws
from portal.aws import AwsError
from portal.steps import Outcome, backoff_seconds

if TYPE_CHECKING:
    from onboarding.workflow import StepRun

logger = logging.getLogger(__name__)

# A wait at most this long (the next creation poll) is spent in the worker rather than through the broker.
IN_WORKER_WAIT_SECONDS = 2


def _record_creation(account: AwsAccount, request: aws.CreateAccountRequest) -> None:
    fields: dict[str, Any] = {}
    if request.request_id and request.request_id != account.create_request_id:
        fields["create_request_id"] = request.request_id
    if request.account_id and request.account_id != account.account_id:
        fields["account_id"] = request.account_id
    if fields:
        AwsAccount.objects.filter(pk=account.pk).update(**fields)
        for name, value in fields.items():
            setattr(account, name, value)


def create_account(run: StepRun) -> Outcome:
    account, step = run.account, run.step
    if account.create_request_id or account.account_id:
        return Outcome.succeeded(request_id=account.create_request_id, reconciled=True)
    email = account.root_email or ""
    abandoned = set(step.detail.get("abandoned_request_ids", []))
    # Attempts count from 1 for this run: anything earlier, or a recorded intent, may have reached AWS
    # (earlier attempts that only waited for a creation slot sent nothing).
    if step.detail.get("sending") or (step.attempts > 1 and not step.detail.get("waiting_for_slot")):
        intent = parse_datetime(str(step.detail.get("intent_at") or ""))
        found = aws.find_account_creation(
            clients=run.clients,
            email=email,
            account_name=account.name,
            requested_after=(intent - timedelta(minutes=5)) if intent else None,
        )
        if found is not None and found.request_id not in abandoned:
            _record_creation(account, found)
            logger.info("onboarding.create_account.reconciled", extra={"account": account.pk})
            return Outcome.succeeded(request_id=found.request_id, account_id=found.account_id, reconciled=True)
    slot = creation_queue.creation_slot_take(account=account)
    if not slot.taken:
        return Outcome.waiting(
            creation_queue.RECHECK_SECONDS,
            f"Waiting for a creation slot ({slot.ahead} ahead): AWS creates at most "
            f"{settings.SWITCHYARD_MAX_CREATIONS_IN_FLIGHT} accounts at a time in the Organization.",
            waiting_for_slot=True, ahead=slot.ahead,
        )
    run.save_detail(sending=True, intent_at=run.now.isoformat(), email=email, account_name=account.name)
    try:
        request = aws.start_account_creation(
            clients=run.clients,
            email=email,
            account_name=account.name,
            tags={aws.MANAGED_BY_TAG_KEY: aws.MANAGED_BY_TAG_VALUE, "switchyard-client": account.client.slug},
        )
    except AwsError as error:
        if not error.retryable:  # AWS refused it: nothing is being created, the slot is free again
            creation_queue.creation_slot_release(account_pk=account.pk)
        raise
    run.chain.creation_sent_at = monotonic()
    _record_creation(account, request)
    return Outcome.succeeded(request_id=request.request_id, state=request.state)


def await_creation(run: StepRun) -> Outcome:
    account = run.account
    if not account.create_request_id:
        if account.account_id:  # found by e-mail in the Organization; AWS no longer keeps the request
            return Outcome.succeeded(account_id=account.account_id)
        raise AwsError(
            "CreateAccountRequestMissing",
            "No CreateAccount request id was recorded for this account.",
            "Switchyard has no record of the account-creation request. Retry the first step.",
            False,
        )
    waited = 0
    # When AWS was last asked: the CreateAccount this call sent (AWS is never done at once, so the
    # first poll is a poll interval after it), else not yet (poll at once).
    asked_at = run.chain.creation_sent_at
    request: aws.CreateAccountRequest | None = None
    while True:
        if asked_at is not None:
            wait = backoff_seconds(run.step.attempts + waited, base=settings.SWITCHYARD_CREATION_POLL_SECONDS,
                                   cap=settings.SWITCHYARD_CREATION_POLL_MAX_SECONDS)
            if wait <= IN_WORKER_WAIT_SECONDS and run.can_wait(wait):
                # A short poll is waited for in this process: a broker round trip, a new claim of the
                # step and its record cost about as much as the wait itself, and every second a
                # finished creation goes unseen keeps the next account in line from its slot. (At
                # most the Organization's 5 creations in flight hold a process this way.) The wait
                # runs from when AWS was last asked: its answer and the lease renewal take part of it.
                waited += 1
                sleep(max(0.0, wait - (monotonic() - asked_at)))
            elif request is not None:
                return Outcome.waiting(wait, "AWS is still creating the account.", request_id=request.request_id)
        asked_at = monotonic()
        request = aws.describe_account_creation(clients=run.clients, request_id=account.create_request_id)
        if request.state != aws.CREATION_IN_PROGRESS:
            break
        creation_queue.creation_slot_keep(account=account)
    # AWS is done with it either way: the next account in line may be created.
    creation_queue.creation_slot_release(account_pk=account.pk)
    if request.state == aws.CREATION_SUCCEEDED:
        _record_creation(account, request)
        return Outcome.succeeded(request_id=request.request_id, account_id=request.account_id)
    return Outcome.failed(aws.creation_failure_error(request), request_id=request.request_id)
