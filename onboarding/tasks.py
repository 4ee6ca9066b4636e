"""Celery tasks: they only say "advance this account" (and, on a schedule, "re-drive what is due").
One ``advance_account`` runs the account's steps one after another while they succeed (see
``onboarding_advance``), so an account usually needs a single message to get through.

Both are safe to run twice; the database holds the state. ``advance_account`` is acknowledged late
and requeued if its worker dies; the reconciler re-drives anything a lost message left behind.
"""

from __future__ import annotations

from celery import Task, shared_task

from onboarding.advance import CHAIN_SECONDS, onboarding_advance, onboarding_reconcile
from onboarding.models import AwsAccount
from onboarding.root_services import root_posture_check, root_posture_check_due, root_posture_run_work
from portal.aws import AwsError
from portal.steps import Skip


# onboarding_advance raises only *retryable* AwsErrors (throttling, network, AWS-side failures):
# everything a person must look at is recorded on the step instead. So these are the only retries.
@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(AwsError,),
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
    soft_time_limit=120,
    time_limit=180,
)
def advance_account(self: Task[[int], str], account_pk: int) -> str:
    if not AwsAccount.objects.filter(pk=account_pk).exists():
        return Skip.GONE
    # One task carries the account through as many steps as are due, for up to CHAIN_SECONDS.
    result = onboarding_advance(account_id=account_pk, chain_seconds=CHAIN_SECONDS)
    # A redelivery after its worker died finds the step still leased: take over once the lease ends.
    if result.retry_in is not None and not self.request.is_eager:
        advance_account.apply_async(args=(account_pk,), countdown=result.retry_in)
    return result.outcome


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def reconcile_onboarding() -> int:
    return len(onboarding_reconcile())


@shared_task(acks_late=True, autoretry_for=(AwsError,), retry_backoff=30, retry_jitter=True, max_retries=5,
             soft_time_limit=60, time_limit=90)
def check_root_posture(account_pk: int) -> str:
    account = AwsAccount.objects.filter(pk=account_pk, account_id__isnull=False).first()
    if account is None:
        return "gone"
    return root_posture_check(account=account).last_error_code or "checked"


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def check_root_posture_due() -> int:
    return len(root_posture_check_due())


# Each checks accounts of the daily root-posture run one leased part at a time; a killed worker's
# account is taken over after its lease.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=150, time_limit=180)
def root_posture_run_work_task(self: Task[[int], int], run_pk: int) -> int:
    worked = root_posture_run_work(run_id=run_pk)
    if (worked.more or worked.retry_in is not None) and not self.request.is_eager:
        root_posture_run_work_task.apply_async(args=(run_pk,), countdown=worked.retry_in or 0)
    return worked.checked
