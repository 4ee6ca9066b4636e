"""Writes for root credentials: turning on the Organization's root-access features, checking each
account's root posture, and a manager's request to remove an account's root credentials.

The daily root-posture check fans out (:data:`ROOT_POSTURE` on ``portal.operations.fan_out``): one
leased part per account due, worked by ``SWITCHYARD_DRIFT_CONCURRENCY`` tasks side by side, each
account's posture recorded once with its part's DONE, and a killed worker's account checked by
another after its lease. A check a person asks for runs as one task for that account.

The removal itself runs as steps of the account's workflow (``onboarding.root_steps``, through the
one step machine in ``onboarding.advance.onboarding_advance``). Every state change writes an audit event.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from onboarding import dispatch, workflow
from onboarding.models import AwsAccount, OnboardingStep, RootPosture, RootPostureRun, RootPostureRunAccount
from portal import aws
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory, RootCredentials, RootFeatures, default_client_factory
from portal.operations import fan_out
from portal.operations.fan_out import PartRetry, Worked
from portal.people.models import User
from portal.steps import enqueue_on_commit, redrive_after

logger = logging.getLogger(__name__)

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State

# Root posture is looked at again after this long (the beat entry runs more often and picks the due ones).
RECHECK_AFTER = timedelta(hours=24)
# Accounts whose root Switchyard looks at: members of the Organization that are Switchyard's.
CHECKED_STATES = (State.ACTIVE, State.REMOVING_ROOT, State.FAILED)
# A part of the daily check is held this long by its worker; then another may take the account over.
ROOT_PART_LEASE_SECONDS = 120.0
# Throttling or network trouble: the account is looked at again (by any worker) this many times.
ROOT_PART_TRIES = 4
ROOT_PART_RETRY_SECONDS = 30.0
ROOT_POSTURE_TASK = "onboarding.tasks.check_root_posture"



# --------------------------------------------------------------------------------------------------
# The Organization's features
# --------------------------------------------------------------------------------------------------


def root_features_enable(
    *, actor: User, request: HttpRequest | None = None, clients: ClientFactory | None = None
) -> RootFeatures:
    """Turn on trusted access for IAM and both IAM features (RootCredentialsManagement, RootSessions),
    each only if off, and write an ``onboarding.root.features_enabled`` audit event with what AWS
    reports before and after. Raises ``ValidationError`` with AWS's refusal in plain words (nothing
    is recorded then; whatever AWS did turn on before refusing is what the page shows next)."""
    factory = clients or default_client_factory()
    try:
        before = aws.root_features(clients=factory)
        after = aws.enable_root_features(clients=factory, current=before)
    except AwsError as error:
        logger.warning("onboarding.root.features_refused", extra={"code": error.code})
        raise ValidationError({NON_FIELD_ERRORS: [f"{error.plain_message} (AWS said: {error.code})"]}) from error
    audit_record(
        action="onboarding.root.features_enabled", actor=actor, request=request, target_label="AWS Organization",
        details={"organization_id": after.organization_id,
                 "before": _features_detail(before), "after": _features_detail(after)},
    )
    return after


def _features_detail(features: RootFeatures) -> dict[str, bool]:
    return {"trusted_access": features.trusted_access,
            "root_credentials_management": features.root_credentials_management,
            "root_sessions": features.root_sessions}


# --------------------------------------------------------------------------------------------------
# Root posture
# --------------------------------------------------------------------------------------------------


def root_posture_record(
    *, account: AwsAccount, found: RootCredentials | None = None, error: AwsError | None = None,
    now: datetime | None = None, source: str = "check",
) -> RootPosture:
    """Store what AWS reported about the account's root user (``found``) or why it could not be
    asked (``error``). Writes an ``onboarding.root.posture_changed`` audit event when the counts
    change (the first look included) and ``onboarding.root.check_failed`` when a new error appears."""
    moment = now or timezone.now()
    with transaction.atomic():
        posture, _ = RootPosture.objects.select_for_update().get_or_create(account=account)
        if found is not None:
            values = {"password": found.password, "mfa_devices": len(found.mfa_devices),
                      "access_keys": len(found.access_keys), "signing_certificates": len(found.signing_certificates)}
            changed = not posture.known or any(getattr(posture, k) != v for k, v in values.items())
            for name, value in values.items():
                setattr(posture, name, value)
            posture.checked_at = posture.attempted_at = moment
            posture.last_error_code = posture.last_error_message = ""
            posture.full_clean()
            posture.save()
            if changed:
                audit_record(action="onboarding.root.posture_changed", target=account,
                             details={**values, "source": source, "account_id": account.account_id})
        elif error is not None:
            new_error = posture.last_error_code != error.code[:100]
            posture.attempted_at = moment
            posture.last_error_code = error.code[:100]
            posture.last_error_message = error.plain_message
            posture.save(update_fields=["attempted_at", "last_error_code", "last_error_message"])
            if new_error:
                audit_record(action="onboarding.root.check_failed", target=account,
                             details={"code": error.code, "message": error.plain_message, "source": source})
    return posture


def root_posture_look(*, account: AwsAccount, clients: ClientFactory) -> RootCredentials:
    """What the account's root user has, through a root session (IAMAuditRootUserCredentials).
    Reads only; raises ``AwsError``."""
    credentials = aws.assume_root(clients=clients, account_id=account.account_id or "",
                                       task=aws.AUDIT_TASK)
    return aws.read_root_credentials(clients=clients, credentials=credentials)


def root_posture_check(*, account: AwsAccount, clients: ClientFactory | None = None) -> RootPosture:
    """Look at the account's root user through a root session (IAMAuditRootUserCredentials) and store
    the result. A refusal that retrying cannot fix is stored on the posture and returned; a retryable
    one (throttling, network) is stored and raised for the task to retry."""
    factory = clients or default_client_factory()
    try:
        found = root_posture_look(account=account, clients=factory)
    except AwsError as error:
        posture = root_posture_record(account=account, error=error)
        if error.retryable:
            raise
        return posture
    return root_posture_record(account=account, found=found)


def accounts_due_for_root_check(*, now: datetime) -> list[int]:
    """Accounts in the Organization whose root posture was never looked at, or not for a day."""
    cutoff = now - RECHECK_AFTER
    return list(
        AwsAccount.objects.filter(state__in=CHECKED_STATES, account_id__isnull=False)
        .filter(Q(root_posture__isnull=True) | Q(root_posture__attempted_at__isnull=True)
                | Q(root_posture__attempted_at__lte=cutoff))
        .order_by("pk").values_list("pk", flat=True)
    )


def _part_look(part: RootPostureRunAccount, clients: ClientFactory) -> RootCredentials | AwsError | None:
    account = AwsAccount.objects.get(pk=part.account_id)
    if account.state not in CHECKED_STATES or not account.account_id:
        return None  # handed back (or on its way) since the run started: not ours to look at
    try:
        return root_posture_look(account=account, clients=clients)
    except AwsError as error:
        if error.retryable and part.attempts < ROOT_PART_TRIES:
            raise PartRetry(ROOT_PART_RETRY_SECONDS * part.attempts, error.code) from error
        return error


def _part_record(part: RootPostureRunAccount, looked: RootCredentials | AwsError | None) -> dict[str, Any]:
    if looked is None:
        return {}
    account = AwsAccount.objects.get(pk=part.account_id)
    if isinstance(looked, AwsError):
        root_posture_record(account=account, error=looked)
        return {"error_code": looked.code[:100]}
    root_posture_record(account=account, found=looked)
    return {"error_code": ""}


ROOT_POSTURE: fan_out.FanOut[RootPostureRun, RootPostureRunAccount] = fan_out.FanOut(
    name="root_posture", run_model=RootPostureRun, part_model=RootPostureRunAccount,
    task="onboarding.tasks.root_posture_run_work_task", look=_part_look, record=_part_record,
    lease_seconds=lambda: ROOT_PART_LEASE_SECONDS,
)


def root_posture_run_work(*, run_id: int, clients: ClientFactory | None = None,
                          seconds: float = fan_out.WORK_SECONDS) -> Worked:
    """Check accounts of the daily run ``run_id`` one leased part at a time (safe to run side by side)."""
    return fan_out.fan_out_work(ROOT_POSTURE, run_id=run_id, clients=clients or default_client_factory(),
                                seconds=seconds)


def root_posture_check_due(*, now: datetime | None = None, clients: ClientFactory | None = None) -> list[int]:
    """The beat's job: ask the features once; when they are off, record that on every due account
    (no AssumeRoot sent); else start one fanned-out run over the due accounts not already in an
    unfinished run (and re-send work to runs a lost message or dead workers left). Returns the
    account ids due."""
    moment = now or timezone.now()
    fan_out.fan_out_reconcile(ROOT_POSTURE, now=moment)
    due = accounts_due_for_root_check(now=moment)
    if not due:
        return []
    try:
        refusal = aws.root_features(clients=clients or default_client_factory()).refusal()
    except AwsError as error:
        if error.retryable:
            raise
        refusal = error
    if refusal is not None:
        for account_pk in due:
            root_posture_record(account=AwsAccount.objects.get(pk=account_pk), error=refusal, now=moment)
        return due
    in_a_run = set(RootPostureRunAccount.objects.filter(run__finished_at__isnull=True)
                   .values_list("account_id", flat=True))
    fresh = [pk for pk in due if pk not in in_a_run]
    if fresh:
        fan_out.fan_out_start(ROOT_POSTURE, account_ids=fresh, concurrency=settings.SWITCHYARD_DRIFT_CONCURRENCY)
    return due


def root_posture_check_request(*, account: AwsAccount, actor: User, request: HttpRequest | None = None) -> None:
    """A person asks for the account's root to be looked at now: audit event, then a worker checks."""
    if not account.account_id or account.state not in CHECKED_STATES:
        raise ValidationError("Only an account in the Organization can have its root user checked.")
    audit_record(action="onboarding.root.check_requested", actor=actor, target=account, request=request)
    enqueue_on_commit(ROOT_POSTURE_TASK, account.pk)


# --------------------------------------------------------------------------------------------------
# Removing root credentials (manager)
# --------------------------------------------------------------------------------------------------


def root_removal_errors(*, reason: str) -> dict[str, list[str]]:
    if not reason.strip():
        return {"reason": ["Say why the root credentials are removed (for the audit log)."]}
    if len(reason) > 1000:
        return {"reason": ["Use at most 1,000 characters."]}
    return {}


def root_removal_allowed(account: AwsAccount) -> bool:
    """An active account, or one whose earlier root removal failed (the request runs it again)."""
    if account.state == State.ACTIVE:
        return True
    failed = OnboardingStep.objects.filter(account=account, status=Status.FAILED).order_by("position").first()
    return account.state == State.FAILED and failed is not None and failed.kind in workflow.ROOT_REMOVAL_PATH


def root_removal_request(
    *, account: AwsAccount, actor: User, reason: str, request: HttpRequest | None = None,
    clients: ClientFactory | None = None,
) -> AwsAccount:
    """Remove the account's root credentials (password, access keys, signing certificates, MFA
    devices) through the workers, then read the root user back.

    Raises ``ValidationError`` without writing anything: ``reason`` when missing; ``__all__`` when the
    account is neither active nor stopped by a failed root removal (:func:`root_removal_allowed`), or
    when the Organization's root-access features are off or AWS cannot be asked (one read; the message
    says what to do and what the workers need).

    Then, in one transaction, the removal steps are appended to the account's steps (steps of an
    earlier removal are run again, moved to the end), the account becomes REMOVING_ROOT and an audit
    event ``onboarding.root.removal_requested`` is written; a worker is asked once that commits.
    """
    errors = root_removal_errors(reason=reason)
    if errors:
        raise ValidationError(errors)
    if not root_removal_allowed(account) or not account.account_id:
        raise ValidationError({NON_FIELD_ERRORS: [
            f"The account is “{account.get_state_display()}”: root credentials can be removed from an active "
            "account only."]})
    try:
        refusal = aws.root_features(clients=clients or default_client_factory()).refusal()
    except AwsError as error:
        refusal = error
    if refusal is not None:
        raise ValidationError({NON_FIELD_ERRORS: [f"{refusal.plain_message} (AWS said: {refusal.code})"]})
    now = timezone.now()
    info = {"requested_by": actor.pk, "reason": reason.strip()}
    with transaction.atomic(durable=True):
        locked = AwsAccount.objects.select_for_update().get(pk=account.pk)
        if not root_removal_allowed(locked):
            raise ValidationError({NON_FIELD_ERRORS: [
                f"The account changed in the meantime ({locked.get_state_display()}): look again."]})
        steps = list(OnboardingStep.objects.select_for_update().filter(account=locked))
        by_kind = {step.kind: step for step in steps}
        last = max((step.position for step in steps), default=0)
        for offset, kind in enumerate(workflow.ROOT_REMOVAL_PATH, start=1):
            step = by_kind.get(kind) or OnboardingStep(account=locked, kind=kind)
            step.position = last + offset
            step.status = Status.PENDING
            step.attempts = 0
            step.lease_expires_at = step.started_at = step.finished_at = None
            step.next_run_at = (now + redrive_after()) if offset == 1 else None
            step.last_error_code = step.last_error_raw = step.last_error_message = ""
            step.detail = {"root_removal": info}
            step.save()
        locked.state = State.REMOVING_ROOT
        locked.save(update_fields=["state", "updated_at"])
        audit_record(action="onboarding.root.removal_requested", actor=actor, target=locked, request=request,
                     details={**info, "account_id": locked.account_id})
        dispatch.advance_later(locked.pk)
    return locked

