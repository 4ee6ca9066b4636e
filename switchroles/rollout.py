"""Rolling a role template's changes out to every account that has its role.

Editing a template bumps its ``revision`` (``switchroles.template_services.role_template_update``),
which calls :func:`rollout_start`: one :class:`~switchroles.models.TemplateRollout` for the new
revision and one :class:`~switchroles.models.RolloutAccount` per account whose role is behind it
(``AccountRole.provisioned_revision < template.revision``, active role in an active account). Each
is carried out by a worker (:func:`rollout_account_advance`, task ``switchroles.tasks.rollout_account``)
like an onboarding step: leased, attempts counted, the last error kept in plain words beside the raw
AWS code, retried by a manager when a person had to act. The role is re-provisioned with
``portal.aws.ensure_role`` and ``onboarding.workflow.role_spec_for`` (the same code as
onboarding); ``provisioned_revision`` records the revision applied. A beat reconciler
(:func:`rollout_reconcile`) re-drives parts whose message was lost or whose worker died, and adds
accounts that reached the template's role at an older revision after the roll-out began.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from onboarding.models import AwsAccount
from onboarding.workflow import backoff_seconds, lease_duration, redrive_after, role_spec_for
from portal import aws
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory, default_client_factory
from portal.models import User
from switchroles.models import AccountRole, RoleTemplate, RolloutAccount, TemplateRollout

logger = logging.getLogger(__name__)

Status = RolloutAccount.Status
SESSION_NAME = "switchyard-rollout"
# Throttling or network trouble on one account this many times: stop and show it to a person.
MAX_ATTEMPTS = 8
OPEN_STATUSES = (Status.PENDING, Status.RUNNING)


def _enqueue(part_pk: int) -> None:
    def send() -> None:
        from switchroles.tasks import rollout_account

        try:
            rollout_account.apply_async(args=(part_pk,))
        except BrokerUnavailable:
            logger.warning("switchroles.rollout.enqueue_failed", extra={"part": part_pk})

    transaction.on_commit(send)


def roles_behind(template: RoleTemplate) -> QuerySet[AccountRole]:
    """Active roles of ``template`` in active accounts whose provisioned revision is older than the
    template's."""
    return (
        AccountRole.objects.filter(
            template=template,
            state__in=[AccountRole.State.ACTIVE, AccountRole.State.PROVISIONED],
            account__state=AwsAccount.State.ACTIVE,
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
        RolloutAccount(rollout=rollout, account_role=role, next_run_at=now + redrive_after())
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
    for part in parts:
        _enqueue(part.pk)
    return rollout


def _finish_if_done(rollout: TemplateRollout, now: datetime) -> None:
    if rollout.finished_at is None and not rollout.accounts.filter(status__in=[*OPEN_STATUSES, Status.FAILED]).exists():
        rollout.finished_at = now
        rollout.save(update_fields=["finished_at"])


@dataclass(frozen=True)
class _Claimed:
    part: RolloutAccount
    role: AccountRole


def _claim(part_id: int, now: datetime) -> _Claimed | str:
    with transaction.atomic():
        part = (
            RolloutAccount.objects.select_for_update(of=("self",))
            .select_related("rollout", "account_role", "account_role__template", "account_role__account",
                            "account_role__account__client")
            .filter(pk=part_id).first()
        )
        if part is None or part.status not in OPEN_STATUSES:
            return "idle"
        if part.status == Status.RUNNING and part.lease_expires_at and part.lease_expires_at > now:
            return "busy"
        role = part.account_role
        if (role.state not in (AccountRole.State.ACTIVE, AccountRole.State.PROVISIONED)
                or role.account.state != AwsAccount.State.ACTIVE):
            part.status, part.finished_at = Status.CANCELLED, now
            part.note = "The account or its role is no longer active: nothing to roll out."
            part.lease_expires_at = None
            part.save(update_fields=["status", "finished_at", "note", "lease_expires_at"])
            _finish_if_done(part.rollout, now)
            return "cancelled"
        part.status = Status.RUNNING
        part.attempts += 1
        part.lease_expires_at = now + lease_duration()
        part.save(update_fields=["status", "attempts", "lease_expires_at"])
        return _Claimed(part=part, role=role)


def rollout_account_advance(*, part_id: int, clients: ClientFactory | None = None) -> str:
    """Re-provision one account's role to the template as it is now (worker).

    Leases the part (a second worker skips it; a lease that ran out is taken over), assumes
    ``OrganizationAccountAccessRole``, runs ``ensure_role`` with ``role_spec_for`` and records the
    result: SUCCEEDED with ``provisioned_revision`` raised to the revision applied, or FAILED with
    the error in plain words (a role that is not Switchyard's, access refused, a value AWS would
    refuse). Each outcome is audited. Throttling and network trouble put the part back to pending
    and raise the (retryable) ``AwsError`` for the task to retry, up to :data:`MAX_ATTEMPTS`.
    Returns "succeeded", "failed", "cancelled", "busy", "idle" or "lost_lease".
    """
    now = timezone.now()
    claimed = _claim(part_id, now)
    if isinstance(claimed, str):
        return claimed
    part, role = claimed.part, claimed.role
    revision = role.template.revision
    factory = clients or default_client_factory()
    try:
        spec = role_spec_for(role)
        credentials = aws.assume_access_role(clients=factory, account_id=role.account.account_id or "",
                                             role_name=role.account.access_role, session_name=SESSION_NAME,
                                             account_may_be_new=False)
        result = aws.ensure_role(clients=factory, credentials=credentials, spec=spec)
    except AwsError as error:
        if error.retryable and part.attempts < MAX_ATTEMPTS:
            RolloutAccount.objects.filter(pk=part.pk, attempts=part.attempts, status=Status.RUNNING).update(
                status=Status.PENDING, lease_expires_at=None,
                next_run_at=now + timedelta(seconds=backoff_seconds(part.attempts, base=30, cap=900)),
                last_error_code=error.code[:100], last_error_raw=error.raw_message,
                last_error_message=error.plain_message,
            )
            raise
        return _record(part, role, now, error=error)
    except ValueError as exc:
        return _record(part, role, now, error=AwsError(
            "InvalidRequest", str(exc), f"Switchyard refused to send an invalid request: {exc}", False
        ))
    except BaseException:
        # A time limit or a bug: give the part back at once rather than after the lease.
        RolloutAccount.objects.filter(pk=part.pk, attempts=part.attempts, status=Status.RUNNING).update(
            status=Status.PENDING, lease_expires_at=None, next_run_at=now + redrive_after()
        )
        raise
    return _record(part, role, now, result=result, revision=revision)


def _record(
    part: RolloutAccount,
    role: AccountRole,
    now: datetime,
    *,
    result: aws.RoleResult | None = None,
    revision: int = 0,
    error: AwsError | None = None,
) -> str:
    with transaction.atomic():
        locked = RolloutAccount.objects.select_for_update(of=("self",)).select_related("rollout").get(pk=part.pk)
        if locked.status != Status.RUNNING or locked.attempts != part.attempts:
            logger.warning("switchroles.rollout.lease_lost", extra={"part": part.pk})
            return "lost_lease"
        locked.lease_expires_at = None
        locked.finished_at = timezone.now()
        details = {"rollout": locked.rollout_id, "template": role.template.name, "revision": locked.rollout.revision,
                   "account_id": role.account.account_id, "attempt": locked.attempts}
        if error is None and result is not None:
            locked.status = Status.SUCCEEDED
            locked.outcome = result.outcome
            locked.note = "; ".join(result.differences)[:2000]
            locked.last_error_code = locked.last_error_raw = locked.last_error_message = ""
            AccountRole.objects.filter(pk=role.pk).update(arn=result.arn)
            AccountRole.objects.filter(pk=role.pk, provisioned_revision__lt=revision).update(
                provisioned_revision=revision
            )
            audit_record(action="role_template.rollout_account.succeeded", target=role,
                         details={**details, "outcome": result.outcome, "applied_revision": revision,
                                  "differences": list(result.differences)})
        elif error is not None:
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
        return str(locked.status)


@transaction.atomic
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
    locked.next_run_at = timezone.now() + redrive_after()
    locked.save(update_fields=["status", "attempts", "finished_at", "next_run_at"])
    TemplateRollout.objects.filter(pk=locked.rollout_id).update(finished_at=None)
    audit_record(action="role_template.rollout_account.retried", actor=actor, target=locked.account_role,
                 request=request, details={"rollout": locked.rollout_id, "previous_error": previous})
    _enqueue(locked.pk)
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
        RolloutAccount.objects.filter(
            Q(status=Status.PENDING, next_run_at__lte=moment)
            | Q(status=Status.PENDING, next_run_at__isnull=True)
            | Q(status=Status.RUNNING, lease_expires_at__lte=moment)
            | Q(status=Status.RUNNING, lease_expires_at__isnull=True)
        ).order_by("pk").values_list("pk", flat=True)
    )
    queued = sorted(set(due) | set(added))
    for part_pk in queued:
        _enqueue(part_pk)
    if queued:
        logger.info("switchroles.rollout.reconcile", extra={"parts": queued})
    return queued


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
