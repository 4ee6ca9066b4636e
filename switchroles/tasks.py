"""Celery tasks of the directory: thin wrappers that take the lock and call the service.

They import the services; the services that enqueue a task import this module inside the function
that does (the one late import Switchyard keeps, inside an app).

Both are idempotent and safe to run twice; the beat schedule (``portal/celery.py``) runs the sync
every 30 seconds, so a lost message or a killed worker costs at most that.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from portal.aws import AwsError, default_client_factory
from portal.operations.aws_limits import main_account_limited
from portal.steps import Skip
from switchroles import access_checks, drift, drift_run, enforcement, leavers, rollout, services
from switchroles.models import RolloutAccount

BUSY_RETRY_SECONDS = 10


@shared_task(bind=True, max_retries=30)
def enforcement_sync(self: Any, reason: str = "", force: bool = False, retry_if_busy: bool = True) -> None:
    """Recompute every team's and person's main-account IAM policies from the grants in force and
    write what changed. While another run holds the lock, a run scheduled by a change retries
    shortly (the other run may have read the grants before the change); the every-minute run just
    skips (the next one comes anyway)."""
    try:
        with enforcement.enforcement_lock():
            # Main-account IAM writes share one per-second bound across every worker.
            report = enforcement.enforcement_sync(clients=main_account_limited(default_client_factory()),
                                                  reason=reason, force=force)
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
            clients = main_account_limited(default_client_factory())
            enforcement.enforcement_sync(clients=clients, reason="before drift check")
            enforcement.enforcement_drift_check(clients=clients)
    except enforcement.EnforcementBusy as exc:
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc


# --- drift, roll-outs and expiry (issue 6) ---------------------------------------------------------


@shared_task(bind=True, max_retries=30, acks_late=True, soft_time_limit=1500, time_limit=1800)
def drift_check(self: Any) -> int:
    """The full drift check (main account, then every active account's roles); returns its id."""
    try:
        # The enforcement lock is held for the main-account part only; accounts fan out (drift_run_work).
        return drift_run.drift_check_fan_out().check_run_id
    except enforcement.EnforcementBusy as exc:
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc


# Each checks accounts of the run one leased part at a time; a killed worker's part is taken over.
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=150, time_limit=180)
def drift_run_work(run_pk: int) -> int:
    worked = drift_run.drift_run_work(run_id=run_pk)
    if worked.more or worked.retry_in is not None:
        drift_run_work.apply_async(args=(run_pk,), countdown=worked.retry_in or 0)
    return worked.checked


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def drift_run_reconcile() -> int:
    return len(drift_run.drift_run_reconcile())


@shared_task(acks_late=True, autoretry_for=(AwsError,), retry_backoff=10, retry_backoff_max=300, retry_jitter=True,
             max_retries=5, soft_time_limit=120, time_limit=180)
def drift_repair(finding_pk: int) -> str:
    finding = drift.drift_repair_run(finding_id=finding_pk)
    return finding.repair_status if finding is not None else "gone"


@shared_task(bind=True, max_retries=30, acks_late=True, soft_time_limit=170, time_limit=190)
def drift_repair_main_account(self: Any, actor_pk: int | None = None) -> int:
    try:
        return drift.main_account_repair_run(actor_id=actor_pk).pk
    except enforcement.EnforcementBusy as exc:
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc


# Only retryable AwsErrors (throttling, network) leave rollout_account_advance: the rest is recorded.
# (Sent before roll-outs had work tasks; a message still queued from then is carried out all the same.)
@shared_task(acks_late=True, reject_on_worker_lost=True, autoretry_for=(AwsError,), retry_backoff=10,
             retry_backoff_max=600, retry_jitter=True, max_retries=8, soft_time_limit=120, time_limit=180)
def rollout_account(part_pk: int) -> str:
    if not RolloutAccount.objects.filter(pk=part_pk).exists():
        return Skip.GONE
    return rollout.rollout_account_advance(part_id=part_pk)


# One of a roll-out's SWITCHYARD_ROLLOUT_CONCURRENCY work tasks; a killed worker's account is taken
# over after its lease (by a work task still running, or one the reconciler sends).
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=150, time_limit=180)
def rollout_work(self: Any, rollout_pk: int) -> int:
    worked = rollout.rollout_work(rollout_id=rollout_pk)
    if (worked.more or worked.retry_in is not None) and not self.request.is_eager:
        rollout_work.apply_async(args=(rollout_pk,), countdown=worked.retry_in or 0)
    return worked.checked


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def rollout_reconcile() -> int:
    return len(rollout.rollout_reconcile())


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def record_grant_expiries() -> int:
    """Every minute: record each grant that expired (once) and let the enforcement sync follow."""
    return len(services.grant_expiries_record())


# --- leavers (issue 18) ----------------------------------------------------------------------------


# RuntimeError: leavers.LeaverAwsRetry (AWS busy or unreachable); everything else is recorded.
@shared_task(acks_late=True, autoretry_for=(RuntimeError,), retry_backoff=5, retry_backoff_max=120,
             retry_jitter=True, max_retries=8, soft_time_limit=120, time_limit=180)
def leaver_aws_cleanup_task(departure_pk: int) -> str:
    """Take a leaver's IAM user out of Switchyard in AWS and read it back (retried while AWS is busy)."""
    departure = leavers.leaver_aws_cleanup(departure_id=departure_pk, clients=default_client_factory())
    return departure.aws_state if departure is not None else "gone"


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def leaver_reconcile() -> int:
    """Every minute: send again the leavers whose AWS removal is still pending (lost message, killed worker)."""
    pending = leavers.departures_to_redrive()
    for pk in pending:
        leaver_aws_cleanup_task.delay(pk)
    return len(pending)
@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def effective_access_check() -> int | None:
    """What AWS really allows from the main account, compared with the grants (one at a time)."""
    check = access_checks.effective_access_check_locked(clients=default_client_factory())
    return check.pk if check is not None else None
