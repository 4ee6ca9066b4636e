"""Celery tasks of the directory: thin wrappers that take the lock and call the service.

Both are idempotent and safe to run twice; the beat schedule (``portal/celery.py``) runs the sync
every minute, so a lost message or a killed worker costs at most a minute.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from onboarding.aws import AwsError
from portal.aws import default_client_factory
from switchroles import access_checks, enforcement

BUSY_RETRY_SECONDS = 10


@shared_task(bind=True, max_retries=30)
def enforcement_sync(self: Any, reason: str = "", force: bool = False, retry_if_busy: bool = True) -> None:
    """Recompute every team's and person's main-account IAM policies from the grants in force and
    write what changed. While another run holds the lock, a run scheduled by a change retries
    shortly (the other run may have read the grants before the change); the every-minute run just
    skips (the next one comes anyway)."""
    try:
        with enforcement.enforcement_lock():
            report = enforcement.enforcement_sync(clients=default_client_factory(), reason=reason, force=force)
    except enforcement.EnforcementBusy as exc:
        if retry_if_busy:
            raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc
        return
    if report is not None and (report.applied or report.failed or report.not_enforceable):
        # What AWS now allows, next to the grants; outside the lock, so revocations never wait on it.
        access_checks.effective_access_schedule()


@shared_task(bind=True, max_retries=30)
def enforcement_drift_check(self: Any) -> None:
    """Apply pending changes, then read AWS back and record any difference (drift)."""
    try:
        with enforcement.enforcement_lock():
            clients = default_client_factory()
            enforcement.enforcement_sync(clients=clients, reason="before drift check")
            enforcement.enforcement_drift_check(clients=clients)
    except enforcement.EnforcementBusy as exc:
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc


# --- drift, roll-outs and expiry (issue 6) ---------------------------------------------------------


@shared_task(bind=True, max_retries=30, acks_late=True, soft_time_limit=1500, time_limit=1800)
def drift_check(self: Any) -> int:
    """The full drift check (main account, then every active account's roles); returns its id."""
    from switchroles import drift

    try:
        return drift.drift_check_run().pk
    except enforcement.EnforcementBusy as exc:
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc


@shared_task(acks_late=True, autoretry_for=(AwsError,), retry_backoff=10, retry_backoff_max=300, retry_jitter=True,
             max_retries=5, soft_time_limit=120, time_limit=180)
def drift_repair(finding_pk: int) -> str:
    from switchroles import drift

    finding = drift.drift_repair_run(finding_id=finding_pk)
    return finding.repair_status if finding is not None else "gone"


@shared_task(bind=True, max_retries=30, acks_late=True, soft_time_limit=170, time_limit=190)
def drift_repair_main_account(self: Any, actor_pk: int | None = None) -> int:
    from switchroles import drift

    try:
        return drift.main_account_repair_run(actor_id=actor_pk).pk
    except enforcement.EnforcementBusy as exc:
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc


# Only retryable AwsErrors (throttling, network) leave rollout_account_advance: the rest is recorded.
@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(AwsError,), retry_backoff=10,
             retry_backoff_max=600, retry_jitter=True, max_retries=8, soft_time_limit=120, time_limit=180)
def rollout_account(part_pk: int) -> str:
    from switchroles.models import RolloutAccount
    from switchroles.rollout import rollout_account_advance

    if not RolloutAccount.objects.filter(pk=part_pk).exists():
        return "gone"
    return rollout_account_advance(part_id=part_pk)


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def rollout_reconcile() -> int:
    from switchroles.rollout import rollout_reconcile as reconcile

    return len(reconcile())


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def record_grant_expiries() -> int:
    """Every minute: record each grant that expired (once) and let the enforcement sync follow."""
    from switchroles.services import grant_expiries_record

    return len(grant_expiries_record())


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def effective_access_check() -> int | None:
    """What AWS really allows from the main account, compared with the grants (one at a time)."""
    check = access_checks.effective_access_check_locked(clients=default_client_factory())
    return check.pk if check is not None else None
