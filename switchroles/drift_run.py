"""The drift check fanned out (:mod:`portal.operations.fan_out`): the member accounts are checked
one leased part at a time, by as many tasks side by side as ``SWITCHYARD_DRIFT_CONCURRENCY`` says,
instead of one task walking 3,000 accounts past its time limit while holding the enforcement lock.

- :func:`drift_check_fan_out` (the hourly task): the main-account part under the enforcement lock
  (``enforcement_sync`` then ``enforcement_drift_check``, as before), the lock released, then
  :func:`drift_run_start`: one :class:`~switchroles.models.DriftRunAccount` per active account and
  ``concurrency`` work tasks (``switchroles.tasks.drift_run_work``).
- Each part looks into its account once (one AssumeRole, one ``ListRoles`` of every path): the
  account's Switchyard roles against the portal (``switchroles.drift``'s own per-account check)
  and the effective-access check's member-account part, the doors into the client
  (``access_checks.doors_in_account``). Its role findings, its doors and the part's DONE are
  recorded in one transaction, only if the worker still holds the part.
- The last part done finishes the run: the check's ``roles_checked`` is set, which makes it the
  check the drift page shows (a check still running is shown as progress, "1,204 of 3,000 accounts
  checked"), and the doors of accounts no longer active are resolved.

Findings keep their ``first_seen_at`` from the previous finished check and write ``drift.found`` when
new, as the sequential check did.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from portal.audit import audit_record
from portal.aws import ClientFactory, default_client_factory
from portal.operations import fan_out
from portal.operations.aws_limits import main_account_limited
from portal.operations.fan_out import Progress, Worked
from switchroles import access_checks, drift, enforcement
from switchroles.accounts import account_model, active_accounts
from switchroles.models import AccessFinding, AccountRole, DriftCheck, DriftRun, DriftRunAccount, RoleDriftFinding

if TYPE_CHECKING:
    from onboarding.models import AwsAccount

logger = logging.getLogger(__name__)

Part = DriftRunAccount.Status
WORK_SECONDS = fan_out.WORK_SECONDS
# The Organization's account ids (for telling outsiders from members in trust policies) change
# rarely: each worker reads them again after this long rather than once per account.
_ORGANIZATION_IDS_SECONDS = 60.0
_organization_ids: tuple[float, frozenset[str]] | None = None

__all__ = ["DriftProgress", "DriftRun", "Worked", "drift_check_fan_out", "drift_run_latest", "drift_run_progress",
           "drift_run_reconcile", "drift_run_start", "drift_run_work"]


def _organization_account_ids() -> set[str]:
    global _organization_ids  # noqa: PLW0603 - a per-process cache with an age
    now = monotonic()
    if _organization_ids is None or now - _organization_ids[0] > _ORGANIZATION_IDS_SECONDS:
        _organization_ids = (now, frozenset(drift.organization_account_ids_now()))
    return set(_organization_ids[1])


@dataclass(frozen=True)
class AccountLook:
    """What one account's look found (nothing is stored yet)."""

    account: AwsAccount
    roles_checked: int
    findings: list[RoleDriftFinding]
    doors: list[Any] | None  # None: the account could not be looked into (its doors stay as they were)


def drift_account_look(*, account: AwsAccount, clients: ClientFactory,
                       organization_account_ids: set[str] | None = None) -> AccountLook:
    """One account's drift and doors, read from AWS (no database writes)."""
    if account.state != account_model().State.ACTIVE:
        # Handed back (or on its way) since the run started: nothing of ours to compare any more.
        return AccountLook(account, 0, [], [])
    roles = list(
        AccountRole.objects.filter(account=account).exclude(state=AccountRole.State.REMOVED)
        .select_related("template", "account", "account__client").order_by("template_id")
    )
    active = [role for role in roles if role.state == AccountRole.State.ACTIVE]
    doors: dict[int, list[Any]] = {}
    findings = drift.account_findings(
        account, active, {role.role_name for role in roles}, clients, doors,
        organization_account_ids=organization_account_ids if organization_account_ids is not None
        else _organization_account_ids(),
    )
    return AccountLook(account, len(active), findings, doors.get(account.pk))


def _look(part: DriftRunAccount, clients: ClientFactory) -> AccountLook:
    account = account_model().objects.select_related("client").get(pk=part.account_id)
    return drift_account_look(account=account, clients=clients)


def _record(part: DriftRunAccount, look: AccountLook) -> dict[str, Any]:
    run = DriftRun.objects.select_related("check_run").get(pk=part.run_id)
    account, findings = look.account, look.findings
    previous = {
        drift.finding_key(f): f
        for f in RoleDriftFinding.objects.filter(check_run_id=run.previous_check_id, account=account)
        if f.repair_status != RoleDriftFinding.Repair.REPAIRED
    } if run.previous_check_id else {}
    now = timezone.now()
    for finding in findings:
        finding.check_run = run.check_run
        earlier = previous.get(drift.finding_key(finding))
        finding.first_seen_at = earlier.first_seen_at if earlier else now
    RoleDriftFinding.objects.bulk_create(findings)
    for finding in findings:
        if drift.finding_key(finding) in previous:
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
    if look.doors is not None:
        access_checks.record_doors(check=None, wanted=look.doors, account_ids=[account.pk])
    return {"roles_checked": look.roles_checked, "findings": len(findings)}


def _finish(run: DriftRun) -> None:
    totals = run.parts.aggregate(roles=Sum("roles_checked"), findings=Sum("findings"))
    check = run.check_run
    check.roles_checked = totals["roles"] or 0
    check.save(update_fields=["roles_checked"])
    # Doors of accounts that are no longer ours to look into are closed.
    access_checks.record_doors(check=None, wanted=[], account_ids=AccessFinding.objects.filter(
        kind=AccessFinding.Kind.DOOR, resolved_at__isnull=True,
    ).exclude(account__state=account_model().State.ACTIVE).values_list("account_id", flat=True))
    if totals["findings"]:
        logger.warning("switchroles.drift.roles", extra={"check": check.pk, "findings": totals["findings"]})


DRIFT = fan_out.FanOut(
    name="drift", run_model=DriftRun, part_model=DriftRunAccount, task="switchroles.tasks.drift_run_work",
    look=_look, record=_record, finish=_finish,
    lease_seconds=lambda: float(settings.SWITCHYARD_DRIFT_ACCOUNT_LEASE_SECONDS),
)


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
    accounts = active_accounts() \
        .order_by("pk").values_list("pk", flat=True)
    previous = (
        DriftCheck.objects.filter(roles_checked__isnull=False, checked_at__lte=check.checked_at)
        .exclude(pk=check.pk).first()
    )
    return fan_out.fan_out_start(DRIFT, account_ids=accounts,
                                 concurrency=concurrency or settings.SWITCHYARD_DRIFT_CONCURRENCY,
                                 check_run=check, previous_check=previous)


def _claim(run_pk: int, now: datetime) -> DriftRunAccount | None:
    return fan_out.fan_out_claim(DRIFT, run_pk, now)


def _check_part(part: DriftRunAccount, clients: ClientFactory) -> bool:
    return fan_out.fan_out_check_part(DRIFT, part, clients)


def drift_run_work(*, run_id: int, clients: ClientFactory | None = None, seconds: float = WORK_SECONDS) -> Worked:
    """Check accounts of run ``run_id`` one after another for up to ``seconds``. Safe to run any
    number of times, side by side or after a crash."""
    return fan_out.fan_out_work(DRIFT, run_id=run_id, clients=clients or default_client_factory(), seconds=seconds)


def drift_run_reconcile(*, now: datetime | None = None) -> list[int]:
    """Send a work task to every unfinished run with a part nobody holds."""
    return fan_out.fan_out_reconcile(DRIFT, now=now)


DriftProgress = Progress


def drift_run_progress(*, run: DriftRun) -> Progress:
    return fan_out.fan_out_progress(DRIFT, run=run)


def drift_run_latest() -> DriftRun | None:
    return DriftRun.objects.select_related("check_run").first()
