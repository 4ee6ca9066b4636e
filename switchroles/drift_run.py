"""The drift check fanned out: the member accounts are checked one leased part at a time, by as many
tasks side by side as ``SWITCHYARD_DRIFT_CONCURRENCY`` says, instead of one task walking 3,000
accounts past its time limit while holding the enforcement lock.

- :func:`drift_check_fan_out` (the hourly task): the main-account part under the enforcement lock
  (``enforcement_sync`` then ``enforcement_drift_check``, as before), the lock released, then
  :func:`drift_run_start`: one :class:`~switchroles.models.DriftRunAccount` per active account and
  ``concurrency`` work tasks.
- :func:`drift_run_work` (each task): claims the next part (pending, or running under a lease that
  ran out: its worker died), checks that account with ``switchroles.drift``'s own per-account check,
  and records its findings and the part's DONE in one transaction, only if it still holds the part;
  then the next part, until none is left or its time is up. So an account's results are written
  exactly once however many workers die, and a killed worker's account is checked again by another.
- The last part done finishes the run: the check's ``roles_checked`` is set, which makes it the
  check the drift page shows (a check still running is shown as progress, "1,204 of 3,000 accounts
  checked").

Findings keep their ``first_seen_at`` from the previous finished check and write ``drift.found`` when
new, as the sequential check did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet, Sum
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from portal.audit import audit_record
from portal.aws import ClientFactory, default_client_factory
from portal.operations.aws_limits import main_account_limited
from switchroles import drift, enforcement
from switchroles.accounts import account_model, active_accounts
from switchroles.models import AccountRole, DriftCheck, DriftRun, DriftRunAccount, RoleDriftFinding

logger = logging.getLogger(__name__)

Part = DriftRunAccount.Status
# A work task checks accounts for this long, then hands over to a fresh task (well inside its limits).
WORK_SECONDS = 100.0


def _lease() -> timedelta:
    return timedelta(seconds=settings.SWITCHYARD_DRIFT_ACCOUNT_LEASE_SECONDS)


def drift_check_fan_out(*, clients: ClientFactory | None = None) -> DriftRun:
    """One full drift check: the main account under the enforcement lock (raises
    ``enforcement.EnforcementBusy`` while another run holds it), then the member accounts fanned out."""
    factory = clients or main_account_limited(default_client_factory())
    with enforcement.enforcement_lock():
        enforcement.enforcement_sync(clients=factory, reason="before drift check")
        check = enforcement.enforcement_drift_check(clients=factory)
    return drift_run_start(check=check)


def drift_run_start(*, check: DriftCheck, concurrency: int | None = None) -> DriftRun:
    """One part per ACTIVE account for ``check`` and ``concurrency`` work tasks (sent on commit)."""
    workers = max(1, concurrency or settings.SWITCHYARD_DRIFT_CONCURRENCY)
    accounts = list(
        active_accounts()
        .order_by("pk").values_list("pk", flat=True)
    )
    previous = (
        DriftCheck.objects.filter(roles_checked__isnull=False, checked_at__lte=check.checked_at)
        .exclude(pk=check.pk).first()
    )
    with transaction.atomic():
        run = DriftRun.objects.create(check_run=check, previous_check=previous, accounts_total=len(accounts),
                                      concurrency=min(workers, max(1, len(accounts))), started_at=timezone.now())
        DriftRunAccount.objects.bulk_create(
            [DriftRunAccount(run=run, account_id=pk) for pk in accounts], batch_size=1000
        )
        if not accounts:
            _finish(run.pk)
        else:
            _enqueue_work(run.pk, copies=run.concurrency)
    logger.info("switchroles.drift_run.started", extra={"run": run.pk, "accounts": len(accounts)})
    return run


def _enqueue_work(run_pk: int, *, copies: int = 1, countdown: float = 0) -> None:
    def send() -> None:
        from switchroles.tasks import drift_run_work

        for _ in range(copies):
            try:
                drift_run_work.apply_async(args=(run_pk,), countdown=countdown)
            except BrokerUnavailable:  # the reconciler sends it again within a minute
                logger.warning("switchroles.drift_run.enqueue_failed", extra={"run": run_pk})

    transaction.on_commit(send)


def _claimable(run_pk: int, now: datetime) -> QuerySet[DriftRunAccount]:
    return DriftRunAccount.objects.filter(run_id=run_pk).filter(
        Q(status=Part.PENDING) | Q(status=Part.RUNNING, lease_expires_at__lte=now)
    )


def _claim(run_pk: int, now: datetime) -> DriftRunAccount | None:
    """The next part nobody holds, leased to this worker (a conditional UPDATE: two workers never
    hold the same part; on PostgreSQL, SKIP LOCKED keeps them from queueing behind each other)."""
    with transaction.atomic():
        candidates = _claimable(run_pk, now).order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        for part in candidates[:20]:
            took = _claimable(run_pk, now).filter(pk=part.pk, attempts=part.attempts).update(
                status=Part.RUNNING, attempts=F("attempts") + 1, lease_expires_at=now + _lease()
            )
            if took:
                if part.status == Part.RUNNING:
                    logger.warning("switchroles.drift_run.lease_ran_out", extra={"part": part.pk})
                part.status, part.attempts = Part.RUNNING, part.attempts + 1
                return part
    return None


@dataclass(frozen=True)
class Worked:
    checked: int  # accounts this call checked and recorded
    retry_in: float | None = None  # parts are held by others: look again then (their leases end)
    more: bool = False  # parts are left for a fresh task (this one's time is up)
    finished: bool = False


def drift_run_work(*, run_id: int, clients: ClientFactory | None = None, seconds: float = WORK_SECONDS) -> Worked:
    """Check accounts of run ``run_id`` one after another for up to ``seconds``. Safe to run any
    number of times, side by side or after a crash."""
    factory = clients or default_client_factory()
    deadline = monotonic() + seconds
    checked = 0
    while monotonic() < deadline:
        part = _claim(run_id, timezone.now())
        if part is None:
            break
        if _check_part(part, factory):
            checked += 1
    now = timezone.now()
    left = DriftRunAccount.objects.filter(run_id=run_id).exclude(status=Part.DONE)
    if not left.exists():
        return Worked(checked, finished=_finish(run_id))
    if _claimable(run_id, now).exists():
        return Worked(checked, more=True)
    held_until = min(p.lease_expires_at or now for p in left.only("lease_expires_at"))
    return Worked(checked, retry_in=max(1.0, (held_until - now).total_seconds() + 1))


def _check_part(part: DriftRunAccount, clients: ClientFactory) -> bool:
    """Check one account (AWS calls outside any transaction) and record it if the part is still ours."""
    account = account_model().objects.select_related("client").get(pk=part.account_id)
    roles = list(
        AccountRole.objects.filter(account=account).exclude(state=AccountRole.State.REMOVED)
        .select_related("template", "account", "account__client").order_by("template_id")
    )
    active = [role for role in roles if role.state == AccountRole.State.ACTIVE]
    if account.state == account_model().State.ACTIVE:
        findings = drift._account_findings(account, active, {role.role_name for role in roles}, clients)
    else:  # handed back (or on its way) since the run started: nothing of ours to compare any more
        active, findings = [], []
    run = DriftRun.objects.select_related("check_run").get(pk=part.run_id)
    previous = {
        drift._finding_key(f): f
        for f in RoleDriftFinding.objects.filter(check_run_id=run.previous_check_id, account=account)
        if f.repair_status != RoleDriftFinding.Repair.REPAIRED
    } if run.previous_check_id else {}
    now = timezone.now()
    with transaction.atomic():
        locked = DriftRunAccount.objects.select_for_update().get(pk=part.pk)
        if locked.status != Part.RUNNING or locked.attempts != part.attempts:
            # Our lease ran out and another worker took the account over: its results count.
            logger.warning("switchroles.drift_run.lease_lost", extra={"part": part.pk})
            return False
        for finding in findings:
            finding.check_run = run.check_run
            earlier = previous.get(drift._finding_key(finding))
            finding.first_seen_at = earlier.first_seen_at if earlier else now
        RoleDriftFinding.objects.bulk_create(findings)
        for finding in findings:
            if drift._finding_key(finding) in previous:
                continue
            audit_record(
                action="drift.found",
                target=finding.account_role or account,
                target_label=finding.role_arn or str(account),
                details={
                    "check": run.check_run_id, "finding": finding.pk, "kind": finding.kind,
                    "account_id": account.account_id, "role": finding.role_arn or finding.role_name,
                    "differences": finding.differences[:20], "error_code": finding.error_code,
                },
            )
        locked.status, locked.checked_at, locked.lease_expires_at = Part.DONE, now, None
        locked.roles_checked, locked.findings = len(active), len(findings)
        locked.save(update_fields=["status", "checked_at", "lease_expires_at", "roles_checked", "findings"])
    return True


def _finish(run_pk: int) -> bool:
    """Once every part is done: the check's ``roles_checked`` and the run's end. True the one time it finishes."""
    with transaction.atomic():
        run = DriftRun.objects.select_for_update().select_related("check_run").get(pk=run_pk)
        if run.finished_at is not None or run.parts.exclude(status=Part.DONE).exists():
            return False
        totals = run.parts.aggregate(roles=Sum("roles_checked"), findings=Sum("findings"))
        check = run.check_run
        check.roles_checked = totals["roles"] or 0
        check.save(update_fields=["roles_checked"])
        run.finished_at = timezone.now()
        run.save(update_fields=["finished_at"])
    if totals["findings"]:
        logger.warning("switchroles.drift.roles", extra={"check": check.pk, "findings": totals["findings"]})
    return True


def drift_run_reconcile(*, now: datetime | None = None) -> list[int]:
    """Send a work task to every unfinished run with a part nobody holds (a lost message, or every
    worker that held one died). Safe to run as often as wanted."""
    moment = now or timezone.now()
    runs = list(
        DriftRun.objects.filter(finished_at__isnull=True)
        .filter(Q(parts__status=Part.PENDING) | Q(parts__status=Part.RUNNING, parts__lease_expires_at__lte=moment))
        .distinct().values_list("pk", flat=True)
    )
    for run_pk in runs:
        _enqueue_work(run_pk)
    return runs


@dataclass(frozen=True)
class DriftProgress:
    checked: int
    total: int
    finished: bool

    def __str__(self) -> str:
        return f"{self.checked:,} of {self.total:,} accounts checked"


def drift_run_progress(*, run: DriftRun) -> DriftProgress:
    return DriftProgress(checked=run.parts.filter(status=Part.DONE).count(), total=run.accounts_total,
                         finished=run.finished_at is not None)


def drift_run_latest() -> DriftRun | None:
    return DriftRun.objects.select_related("check_run").first()
