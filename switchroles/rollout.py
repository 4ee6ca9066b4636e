"""Rolling a role template's changes out to every account that has its role.

Editing a template bumps its ``revision`` (``switchroles.template_services.role_template_update``),
which calls :func:`rollout_start`: one :class:`~switchroles.models.TemplateRollout` for the new
revision and one :class:`~switchroles.models.RolloutAccount` per account whose role is behind it
(``AccountRole.provisioned_revision < template.revision``, active role in an active account). Each
is carried out by a worker (:func:`rollout_account_advance`) like an onboarding step: leased,
attempts counted, the last error kept in plain words beside the raw AWS code, retried by a manager
when a person had to act: the step machine of :mod:`portal.steps` (lease, claim, transient retry
with backoff, give-back, record, reconcile, enqueue on commit), the
same as onboarding's. The role is re-provisioned by ``switchroles.provisioning.make_roles_match``
(the same code as onboarding); ``provisioned_revision`` records the revision applied. A beat
reconciler (:func:`rollout_reconcile`) re-drives parts whose message was lost or whose worker
died, and adds accounts that reached the template's role at an older revision after the roll-out
began.

A roll-out fans out with a bounded concurrency, as the per-account checks do
(:mod:`portal.operations.fan_out`): ``SWITCHYARD_ROLLOUT_CONCURRENCY`` work tasks
(:func:`rollout_work`, task ``switchroles.tasks.rollout_work``), each re-provisioning the roll-out's
accounts one after another, so a template shared by 3,000 accounts never has more than that many
accounts' IAM written at once (nor every worker taken by one roll-out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from time import monotonic

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from portal import steps
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory, default_client_factory
from portal.operations.fan_out import WORK_SECONDS, Worked
from portal.people.models import User
from portal.steps import Outcome, Result, Skip
from switchroles import provisioning
from switchroles.accounts import account_model
from switchroles.models import AccountRole, RoleTemplate, RolloutAccount, TemplateRollout

logger = logging.getLogger(__name__)

Status = RolloutAccount.Status
SESSION_NAME = "switchyard-rollout"
# Throttling or network trouble on one account this many times: stop and show it to a person.
MAX_ATTEMPTS = 8
OPEN_STATUSES = (Status.PENDING, Status.RUNNING)
# Named, not imported: the task module imports this one.
ROLLOUT_WORK_TASK = "switchroles.tasks.rollout_work"


def _gave_up(error: AwsError, tries: int) -> AwsError:
    return AwsError(
        error.code, error.raw_message,
        f"AWS failed {tries} times in a row ({error.code}), so Switchyard stopped retrying this account. "
        "Check the AWS Health Dashboard (in the sandbox: that its simulated AWS is running), then “Retry”.",
        False, error.reason,
    )


def _invalid(exc: ValueError) -> AwsError:
    return AwsError("InvalidRequest", str(exc), f"Switchyard refused to send an invalid request: {exc}", False)


RETRY_POLICY: steps.RetryPolicy[AwsError] = steps.RetryPolicy(
    error_type=AwsError, limit=lambda error: MAX_ATTEMPTS, gave_up=_gave_up, invalid=_invalid, base=30, cap=900,
)


def _concurrency() -> int:
    return max(1, int(settings.SWITCHYARD_ROLLOUT_CONCURRENCY))


def _enqueue_work(rollout_pk: int, *, copies: int = 1) -> None:
    """Ask for ``copies`` work tasks of the roll-out once the current transaction commits."""
    steps.enqueue_on_commit(ROLLOUT_WORK_TASK, rollout_pk, copies=copies)


def roles_behind(template: RoleTemplate) -> QuerySet[AccountRole]:
    """Active roles of ``template`` in active accounts whose provisioned revision is older than the
    template's."""
    return (
        AccountRole.objects.filter(
            template=template,
            state__in=[AccountRole.State.ACTIVE, AccountRole.State.PROVISIONED],
            account__state=account_model().State.ACTIVE,
            account__account_id__isnull=False,
            provisioned_revision__lt=template.revision,
        )
        .select_related("account")
        .order_by("account_id")
    )


@transaction.atomic
def rollout_start(*, template: RoleTemplate, actor: User | None, request: HttpRequest | None = None) -> TemplateRollout:
    """Start rolling ``template`` (at its current revision) out to every account whose role is
    behind it; parts of earlier roll-outs of the template not yet done are superseded (this one
    applies the newer version anyway). Audited ``role_template.rollout_started``; each part is
    queued for a worker once the transaction commits. Returns the roll-out (finished at once when
    no account needs it)."""
    now = timezone.now()
    superseded = RolloutAccount.objects.filter(
        rollout__template=template, status__in=[Status.PENDING, Status.FAILED]
    ).update(status=Status.CANCELLED, finished_at=now, note=f"Superseded by revision {template.revision}.")
    for earlier in TemplateRollout.objects.filter(template=template, finished_at__isnull=True):
        _finish_if_done(earlier, now)
    rollout = TemplateRollout.objects.create(
        template=template, revision=template.revision, requested_by=actor, started_at=now
    )
    parts = RolloutAccount.objects.bulk_create(
        RolloutAccount(rollout=rollout, account_role=role, next_run_at=now + steps.redrive_after())
        for role in roles_behind(template)
    )
    audit_record(
        action="role_template.rollout_started", actor=actor, target=template, request=request,
        details={"rollout": rollout.pk, "revision": template.revision, "accounts": len(parts),
                 "superseded": superseded},
    )
    if not parts:
        rollout.finished_at = now
        rollout.save(update_fields=["finished_at"])
    else:
        _enqueue_work(rollout.pk, copies=min(_concurrency(), len(parts)))
    return rollout


def _finish_if_done(rollout: TemplateRollout, now: datetime) -> None:
    if rollout.finished_at is None and not rollout.accounts.filter(status__in=[*OPEN_STATUSES, Status.FAILED]).exists():
        rollout.finished_at = now
        rollout.save(update_fields=["finished_at"])


@dataclass(frozen=True)
class _Claimed:
    part: RolloutAccount
    role: AccountRole


def _claim(part_id: int, now: datetime) -> _Claimed | Skip:
    with transaction.atomic():
        part = (
            RolloutAccount.objects.select_for_update(of=("self",))
            .select_related("rollout", "account_role", "account_role__template", "account_role__account",
                            "account_role__account__client")
            .filter(pk=part_id).first()
        )
        if part is None or part.status not in OPEN_STATUSES:
            return Skip.IDLE
        if steps.lease_busy(part, now=now):
            return Skip.BUSY
        role = part.account_role
        if (role.state not in (AccountRole.State.ACTIVE, AccountRole.State.PROVISIONED)
                or role.account.state != account_model().State.ACTIVE):
            part.status, part.finished_at = Status.CANCELLED, now
            part.note = "The account or its role is no longer active: nothing to roll out."
            part.lease_expires_at = None
            part.save(update_fields=["status", "finished_at", "note", "lease_expires_at"])
            _finish_if_done(part.rollout, now)
            return Skip.CANCELLED
        steps.lease_take(part, now=now, lease=steps.lease_duration())
        part.save(update_fields=["status", "attempts", "lease_expires_at"])
        return _Claimed(part=part, role=role)


def rollout_account_advance(*, part_id: int, clients: ClientFactory | None = None) -> Result | Skip:
    """Re-provision one account's role to the template as it is now (worker).

    Leases the part (a second worker skips it; a lease that ran out is taken over), makes the role
    match its spec (``switchroles.provisioning.make_roles_match``: the access role, then
    ``ensure_role``) and records the result: SUCCEEDED with ``provisioned_revision`` raised to the
    revision applied, or FAILED with the error in plain words (a role that is not Switchyard's,
    access refused, a value AWS would refuse). Each outcome is audited. Throttling and network
    trouble put the part back to pending and raise the (retryable) ``AwsError`` for the task to
    retry, up to :data:`MAX_ATTEMPTS` (:data:`RETRY_POLICY`). Returns the :class:`~portal.steps.Result`
    recorded, or a :class:`~portal.steps.Skip` (cancelled, busy, idle, lost lease).
    """
    now = timezone.now()
    claimed = _claim(part_id, now)
    if isinstance(claimed, Skip):
        return claimed
    part, role = claimed.part, claimed.role
    factory = clients or default_client_factory()
    done: list[provisioning.RoleMatched] = []

    def reprovision() -> Outcome:
        # An account Switchyard reached before: AccessDenied is not retryable and says the role must be restored.
        done.extend(provisioning.make_roles_match(account=role.account, roles=[role], clients=factory,
                                                  session_name=SESSION_NAME))
        return Outcome.succeeded()

    outcome = steps.run_handler(
        reprovision, policy=RETRY_POLICY, failures_so_far=part.attempts - 1,
        on_transient=lambda transient: steps.lease_give_back(
            RolloutAccount, pk=part.pk, attempt=part.attempts,
            next_run_at=now + timedelta(seconds=transient.retry_in),
            last_error_code=transient.error.code[:100], last_error_raw=transient.error.raw_message,
            last_error_message=transient.error.plain_message,
        ),
        # A time limit or a bug: give the part back at once rather than after the lease.
        on_crash=lambda: steps.lease_give_back(RolloutAccount, pk=part.pk, attempt=part.attempts,
                                               next_run_at=now + steps.redrive_after()),
    )
    return _record(part, role, now, outcome, done[0] if done else None)


def _record(
    part: RolloutAccount, role: AccountRole, now: datetime, outcome: Outcome,
    matched: provisioning.RoleMatched | None,
) -> Result | Skip:
    with transaction.atomic():
        locked = RolloutAccount.objects.select_for_update(of=("self",)).select_related("rollout").get(pk=part.pk)
        if steps.lease_lost(locked, attempt=part.attempts):
            logger.warning("switchroles.rollout.lease_lost", extra={"part": part.pk})
            return Skip.LOST_LEASE
        locked.lease_expires_at = None
        locked.finished_at = timezone.now()
        details = {"rollout": locked.rollout_id, "template": role.template.name, "revision": locked.rollout.revision,
                   "account_id": role.account.account_id, "attempt": locked.attempts}
        result = matched.result if matched is not None else None
        error = outcome.error
        if outcome.result == Result.SUCCEEDED and matched is not None and result is not None:
            locked.status = Status.SUCCEEDED
            locked.outcome = result.outcome
            locked.note = "; ".join(result.differences)[:2000]
            locked.last_error_code = locked.last_error_raw = locked.last_error_message = ""
            provisioning.provisioned_record(matched)
            audit_record(action="role_template.rollout_account.succeeded", target=role,
                         details={**details, "outcome": result.outcome, "applied_revision": role.template.revision,
                                  "differences": list(result.differences)})
        else:
            error = error or AwsError("NothingDone", "", "Switchyard could not re-provision the role: “Retry”.", False)
            locked.status = Status.FAILED
            locked.last_error_code = error.code[:100]
            locked.last_error_raw = error.raw_message
            locked.last_error_message = error.plain_message
            audit_record(action="role_template.rollout_account.failed", target=role,
                         details={**details, "code": error.code, "message": error.plain_message})
            logger.warning("switchroles.rollout.failed", extra={"part": part.pk, "code": error.code})
        locked.save(update_fields=["status", "lease_expires_at", "finished_at", "outcome", "note",
                                   "last_error_code", "last_error_raw", "last_error_message"])
        _finish_if_done(locked.rollout, now)
        return Result.SUCCEEDED if locked.status == Status.SUCCEEDED else Result.FAILED


@transaction.atomic(durable=True)
def rollout_account_retry(
    *, part: RolloutAccount, actor: User, request: HttpRequest | None = None
) -> RolloutAccount:
    """Put a failed part back to pending and queue it (audited). Raises ``ValidationError`` for a
    part that has not failed."""
    locked = (
        RolloutAccount.objects.select_for_update(of=("self",))
        .select_related("rollout", "account_role")
        .get(pk=part.pk)
    )
    if locked.status != Status.FAILED:
        raise ValidationError("Only a failed account of a roll-out can be retried.")
    previous = {"code": locked.last_error_code, "message": locked.last_error_message}
    locked.status = Status.PENDING
    locked.attempts = 0
    locked.finished_at = None
    locked.next_run_at = timezone.now() + steps.redrive_after()
    locked.save(update_fields=["status", "attempts", "finished_at", "next_run_at"])
    TemplateRollout.objects.filter(pk=locked.rollout_id).update(finished_at=None)
    audit_record(action="role_template.rollout_account.retried", actor=actor, target=locked.account_role,
                 request=request, details={"rollout": locked.rollout_id, "previous_error": previous})
    _enqueue_work(locked.rollout_id)
    return locked


def rollout_reconcile(*, now: datetime | None = None) -> list[int]:
    """Beat: queue every part that is due (pending and not picked up within its re-drive delay, or
    running with a lease that ran out), and add to a template's current roll-out the accounts whose
    role is behind it without a part in it (they finished onboarding at an older revision).
    Returns the parts queued."""
    moment = now or timezone.now()
    added: list[int] = []
    for template in RoleTemplate.objects.all():
        rollout = TemplateRollout.objects.filter(template=template, revision=template.revision).first()
        if rollout is None:
            continue
        has_part = RolloutAccount.objects.filter(rollout=rollout, account_role=OuterRef("pk"))
        missing = list(roles_behind(template).exclude(Exists(has_part)))
        if not missing:
            continue
        with transaction.atomic():
            parts = RolloutAccount.objects.bulk_create(
                RolloutAccount(rollout=rollout, account_role=role, next_run_at=moment) for role in missing
            )
            TemplateRollout.objects.filter(pk=rollout.pk).update(finished_at=None)
            audit_record(action="role_template.rollout_extended", target=template,
                         details={"rollout": rollout.pk, "revision": rollout.revision,
                                  "account_ids": [role.account.account_id for role in missing]})
        added += [part.pk for part in parts]
    due = list(
        RolloutAccount.objects.filter(steps.due_filter(now=moment)).order_by("pk").values_list("pk", flat=True)
    )
    queued = sorted(set(due) | set(added))
    # One work task per roll-out with parts to do: the work tasks still running carry on besides.
    for rollout_pk in sorted(set(RolloutAccount.objects.filter(pk__in=queued).values_list("rollout_id", flat=True))):
        _enqueue_work(rollout_pk)
    if queued:
        logger.info("switchroles.rollout.reconcile", extra={"parts": queued})
    return queued


# --------------------------------------------------------------------------------------------------
# Work tasks (the roll-out's bounded concurrency)
# --------------------------------------------------------------------------------------------------


def _workable(rollout_pk: int, now: datetime) -> QuerySet[RolloutAccount]:
    """Parts a work task may take up now: pending and never tried, or due again after a backoff or a
    crash (``next_run_at``), or running under a lease that ran out (its worker died)."""
    return RolloutAccount.objects.filter(rollout_id=rollout_pk).filter(
        Q(status=Status.PENDING, attempts=0) | Q(status=Status.PENDING, next_run_at__lte=now)
        | Q(status=Status.PENDING, next_run_at__isnull=True) | Q(status=Status.RUNNING, lease_expires_at__lte=now)
    )


def rollout_work(*, rollout_id: int, clients: ClientFactory | None = None, seconds: float = WORK_SECONDS) -> Worked:
    """One of a roll-out's work tasks: re-provision its accounts one after another
    (:func:`rollout_account_advance` each, so each part is leased, recorded and audited as if it
    ran alone) for up to ``seconds``. A throttled account is given back with its backoff and the
    work goes on with the next. Returns what is left, as :func:`portal.operations.fan_out.fan_out_work`
    does: ``more`` (parts for a fresh task), ``retry_in`` (parts back off or are held by others), or
    ``finished``. Safe to run any number of times, side by side or after a crash."""
    factory = clients or default_client_factory()
    deadline = monotonic() + seconds
    reprovisioned = 0
    passed: list[int] = []
    while monotonic() < deadline:
        part_pk = _workable(rollout_id, timezone.now()).exclude(pk__in=passed).order_by("pk").values_list(
            "pk", flat=True).first()
        if part_pk is None:
            break
        passed.append(part_pk)
        try:
            result = rollout_account_advance(part_id=part_pk, clients=factory)
        except AwsError:  # retryable: given back with its backoff (recorded on the part)
            continue
        if result in (Result.SUCCEEDED, Result.FAILED):
            reprovisioned += 1
    now = timezone.now()
    open_parts = RolloutAccount.objects.filter(rollout_id=rollout_id, status__in=OPEN_STATUSES)
    if not open_parts.exists():
        return Worked(reprovisioned, finished=True)
    if monotonic() >= deadline and _workable(rollout_id, now).exists():
        return Worked(reprovisioned, more=True)
    later = [part.lease_expires_at if part.status == Status.RUNNING else part.next_run_at
             for part in open_parts.only("status", "lease_expires_at", "next_run_at")]
    due_at = min((moment for moment in later if moment is not None), default=now)
    return Worked(reprovisioned, retry_in=max(1.0, (due_at - now).total_seconds() + 1))


# --------------------------------------------------------------------------------------------------
# Reads for the template pages
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutProgress:
    """Where a roll-out stands: ``done`` of ``total`` accounts (parts not superseded), the failed
    ones, and those still to go."""

    rollout: TemplateRollout
    total: int
    done: int
    pending: int
    running: int
    failed: list[RolloutAccount]
    parts: list[RolloutAccount]

    @property
    def in_progress(self) -> bool:
        return self.pending + self.running > 0


def rollout_progress(*, template: RoleTemplate, rollout: TemplateRollout | None = None) -> RolloutProgress | None:
    """The progress of ``rollout`` (default: the template's latest), or None if it never had one."""
    chosen = rollout or TemplateRollout.objects.filter(template=template).select_related("requested_by").first()
    if chosen is None:
        return None
    parts = list(
        chosen.accounts.select_related("account_role", "account_role__account", "account_role__account__client")
        .order_by("account_role__account__client__name", "account_role__account__name", "pk")
    )
    counted = [p for p in parts if p.status != Status.CANCELLED]
    return RolloutProgress(
        rollout=chosen,
        total=len(counted),
        done=sum(p.status == Status.SUCCEEDED for p in counted),
        pending=sum(p.status == Status.PENDING for p in counted),
        running=sum(p.status == Status.RUNNING for p in counted),
        failed=[p for p in counted if p.status == Status.FAILED],
        parts=parts,
    )
