"""Drift: does AWS still say what the portal says?

Two sides are compared, on a schedule (beat, ``switchroles.tasks.drift_check``) and when a manager
asks (:func:`drift_check_request`):

* **the main account**: every team's and person's ``sts:AssumeRole`` policies against the grants in
  force. That is ``switchroles.enforcement.enforcement_drift_check``, reused as is; its
  ``DriftFinding`` rows belong to the same :class:`~switchroles.models.DriftCheck`.
* **the member accounts** (:func:`drift_roles_check`): in every active account, through
  ``OrganizationAccountAccessRole``, each ACTIVE ``AccountRole`` must exist, trust only the main
  account with the MFA condition, and have exactly its template's policies and session length
  (``onboarding.workflow.role_spec_for`` compared with ``portal.aws.role_differences``); roles
  under ``/switchyard/`` tagged ``managed-by=switchyard`` that the portal does not know are reported.
  Each difference is a :class:`~switchroles.models.RoleDriftFinding` on the check.

A finding seen for the first time writes an audit event ``drift.found``; one still there at the
next check keeps its ``first_seen_at`` and writes nothing. A manager's repair
(:func:`drift_repair_request`, run by a worker in :func:`drift_repair_run`) re-applies the portal's
version: ``ensure_role`` with the spec (read back and compared), deletion for a Switchyard role the
portal does not know, and for the main account a forced enforcement sync
(:func:`main_account_repair_request`). Repairs are audited (``drift.repair_requested``,
``drift.repaired``, ``drift.repair_failed``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from onboarding.models import AwsAccount
from onboarding.workflow import role_spec_for
from portal import aws
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory, default_client_factory
from portal.models import User
from portal.notification_sweeps import drift_role_finding_notify
from switchroles import access_checks, enforcement
from switchroles.models import AccountRole, DriftCheck, DriftFinding, RoleDriftFinding

logger = logging.getLogger(__name__)

Kind = RoleDriftFinding.Kind
Repair = RoleDriftFinding.Repair

SESSION_NAME = "switchyard-drift-check"
SWITCHYARD_PATH = "/switchyard/"
# A repair whose worker never reported back may be asked for again after this long.
REPAIR_STALE_AFTER = timedelta(minutes=10)
REPAIRABLE = frozenset({Kind.MISSING, Kind.DIFFERENT, Kind.UNKNOWN})


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def trust_problems(current: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    """What is wrong with a role's trust policy, in plain words: principals other than the main
    account, and Allow statements that let the main account in without the MFA condition (when the
    expected policy has it). Empty when nothing of that kind is found (the policies may still differ
    in other ways; ``role_differences`` says that)."""
    main_id = settings.SWITCHYARD_MAIN_ACCOUNT_ID
    main = {main_id, f"arn:aws:iam::{main_id}:root"}
    wants_mfa = any(
        (statement.get("Condition") or {}).get("Bool", {}).get("aws:MultiFactorAuthPresent") == "true"
        for statement in _as_list(expected.get("Statement"))
        if isinstance(statement, Mapping)
    )
    problems: list[str] = []
    for statement in _as_list(current.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        if principal == "*" or (isinstance(principal, Mapping) and "*" in _as_list(principal.get("AWS"))):
            problems.append("it trusts anyone (Principal *)")
            continue
        if isinstance(principal, Mapping):
            for kind, values in principal.items():
                for value in _as_list(values):
                    if kind != "AWS" or value not in main:
                        problems.append(f"it also trusts {kind} {value}")
        condition = statement.get("Condition") or {}
        mfa = (condition.get("Bool") or {}).get("aws:MultiFactorAuthPresent")
        if wants_mfa and mfa != "true":
            loose = (condition.get("BoolIfExists") or {}).get("aws:MultiFactorAuthPresent")
            problems.append(
                "it lets the main account in without MFA (BoolIfExists instead of Bool)" if loose
                else "it lets the main account in without MFA"
            )
    return list(dict.fromkeys(problems))


# --------------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------------


def _finding_key(finding: RoleDriftFinding) -> tuple[Any, ...]:
    return (finding.account_id, finding.kind, finding.role_name, tuple(finding.differences))


def _account_findings(
    account: AwsAccount, roles: list[AccountRole], known_names: set[str], clients: ClientFactory,
    doors: dict[int, list[Any]] | None = None,
) -> list[RoleDriftFinding]:
    findings: list[RoleDriftFinding] = []
    try:
        credentials = aws.assume_access_role(clients=clients, account_id=account.account_id or "",
                                             role_name=account.access_role, session_name=SESSION_NAME,
                                             account_may_be_new=False)
        for role in roles:
            spec = role_spec_for(role)
            current = aws.read_role(clients=clients, credentials=credentials, path=spec.path, name=spec.name)
            arn = f"arn:aws:iam::{account.account_id}:{spec.arn_suffix}"
            if current is None:
                findings.append(RoleDriftFinding(
                    kind=Kind.MISSING, account=account, account_role=role, role_path=spec.path, role_name=spec.name,
                    role_arn=arn, differences=["the role does not exist in the account"],
                ))
                continue
            differences = list(aws.role_differences(current, spec))
            if "trust policy differs" in differences:
                differences += trust_problems(current.trust_policy, spec.trust_policy)
            if not current.managed_by_switchyard:
                differences.append(f"it lacks the tag {aws.MANAGED_BY_TAG_KEY}={aws.MANAGED_BY_TAG_VALUE}")
            if differences:
                findings.append(RoleDriftFinding(
                    kind=Kind.DIFFERENT, account=account, account_role=role, role_path=current.path,
                    role_name=spec.name, role_arn=current.arn, differences=differences,
                ))
        for listed in aws.list_switchyard_roles(clients=clients, credentials=credentials):
            if listed.name in known_names:
                continue
            if aws.role_is_switchyards(clients=clients, credentials=credentials, name=listed.name):
                findings.append(RoleDriftFinding(
                    kind=Kind.UNKNOWN, account=account, role_path=listed.path, role_name=listed.name,
                    role_arn=listed.arn,
                    differences=["tagged managed-by=switchyard, but the portal has no such role in this account"],
                ))
        if doors is not None:
            # Roles of any path that trust the main account or outsiders and are not Switchyard's.
            doors[account.pk] = access_checks.doors_in_account(
                account=account, roles=aws.list_all_roles(clients=clients, credentials=credentials),
                switchyard_names={role.role_name for role in roles} | known_names,
                organization_account_ids=_organization_account_ids(),
                main_account_id=settings.SWITCHYARD_MAIN_ACCOUNT_ID,
            )
    except AwsError as error:
        logger.warning("switchroles.drift.unreachable", extra={"account": account.pk, "code": error.code})
        return [RoleDriftFinding(
            kind=Kind.UNREACHABLE, account=account, error_code=error.code[:100],
            differences=[error.plain_message],
        )]
    except ValueError as exc:  # a template AWS could not accept (caught before sending)
        return [RoleDriftFinding(kind=Kind.UNREACHABLE, account=account, error_code="InvalidRequest",
                                 differences=[str(exc)])]
    return findings


def drift_roles_check(*, check: DriftCheck, clients: ClientFactory) -> DriftCheck:
    """Compare the roles of every ACTIVE account with the portal (see the module docstring) and
    store the findings on ``check``, with ``roles_checked`` set. One account AWS does not let
    Switchyard into is a finding (UNREACHABLE); the others are still checked. Writes ``drift.found``
    for each finding the previous role check did not have."""
    accounts = list(
        AwsAccount.objects.filter(state=AwsAccount.State.ACTIVE, account_id__isnull=False)
        .select_related("client").order_by("pk")
    )
    roles_by_account: dict[int, list[AccountRole]] = {}
    names_by_account: dict[int, set[str]] = {}
    for role in (
        AccountRole.objects.filter(account__in=accounts).exclude(state=AccountRole.State.REMOVED)
        .select_related("template", "account", "account__client").order_by("account_id", "template_id")
    ):
        names_by_account.setdefault(role.account_id, set()).add(role.role_name)
        if role.state == AccountRole.State.ACTIVE:
            roles_by_account.setdefault(role.account_id, []).append(role)
    findings: list[RoleDriftFinding] = []
    doors: dict[int, list[Any]] = {}
    for account in accounts:
        findings += _account_findings(
            account, roles_by_account.get(account.pk, []), names_by_account.get(account.pk, set()), clients, doors
        )
    access_checks.record_doors(check=None, wanted=[d for found in doors.values() for d in found],
                               account_ids=list(doors) + [
                                   a.pk for a in AwsAccount.objects.exclude(state=AwsAccount.State.ACTIVE)
                               ])
    now = timezone.now()
    previous_check = (
        DriftCheck.objects.filter(roles_checked__isnull=False, checked_at__lte=check.checked_at)
        .exclude(pk=check.pk).first()
    )
    previous = {
        _finding_key(f): f
        for f in (previous_check.role_findings.all() if previous_check else RoleDriftFinding.objects.none())
        if f.repair_status != Repair.REPAIRED
    }
    with transaction.atomic():
        check.roles_checked = sum(len(roles) for roles in roles_by_account.values())
        check.save(update_fields=["roles_checked"])
        for finding in findings:
            finding.check_run = check
            earlier = previous.get(_finding_key(finding))
            finding.first_seen_at = earlier.first_seen_at if earlier else now
        RoleDriftFinding.objects.bulk_create(findings)
        for finding in findings:
            if _finding_key(finding) in previous:
                continue
            audit_record(
                action="drift.found",
                target=finding.account_role or finding.account,
                target_label=finding.role_arn or str(finding.account),
                details={
                    "check": check.pk, "finding": finding.pk, "kind": finding.kind,
                    "account_id": finding.account.account_id, "role": finding.role_arn or finding.role_name,
                    "differences": finding.differences[:20], "error_code": finding.error_code,
                },
            )
            drift_role_finding_notify(finding=finding)
    if findings:
        logger.warning("switchroles.drift.roles", extra={"check": check.pk, "findings": len(findings)})
    return check


def drift_check_run(*, clients: ClientFactory | None = None) -> DriftCheck:
    """One full drift check: apply pending enforcement, compare the main account's policies with
    the grants (``enforcement_drift_check``), then the member accounts' roles. Raises
    ``enforcement.EnforcementBusy`` while another enforcement run holds the lock (retry shortly)."""
    factory = clients or default_client_factory()
    with enforcement.enforcement_lock():
        enforcement.enforcement_sync(clients=factory, reason="before drift check")
        check = enforcement.enforcement_drift_check(clients=factory)
    check = drift_roles_check(check=check, clients=factory)
    access_checks.effective_access_check_locked(clients=factory)
    return check


def _organization_account_ids() -> set[str]:
    """Accounts of the Organization as the portal knows them (any state but handed back or never made)."""
    gone = (AwsAccount.State.HANDED_BACK, AwsAccount.State.CANCELLED, AwsAccount.State.DECLINED,
            AwsAccount.State.EXPIRED)
    return {a for a in AwsAccount.objects.exclude(state__in=gone).values_list("account_id", flat=True) if a}


# --------------------------------------------------------------------------------------------------
# Manager actions (queued for the workers)
# --------------------------------------------------------------------------------------------------


def _enqueue(task_name: str, *args: Any) -> None:
    def send() -> None:
        from switchroles import tasks

        try:
            getattr(tasks, task_name).apply_async(args=args)
        except BrokerUnavailable:
            logger.warning("switchroles.drift.enqueue_failed", extra={"task": task_name})

    transaction.on_commit(send)


@transaction.atomic
def drift_check_request(*, actor: User, request: HttpRequest | None = None) -> None:
    """Queue a full drift check now (audited ``drift.check_requested``)."""
    audit_record(action="drift.check_requested", actor=actor, request=request, target_label="drift check")
    _enqueue("drift_check")


def finding_repairable(finding: RoleDriftFinding, *, now: datetime | None = None) -> bool:
    if finding.kind not in REPAIRABLE or finding.repair_status == Repair.REPAIRED:
        return False
    if finding.repair_status == Repair.REQUESTED:
        moment = now or timezone.now()
        return finding.repair_requested_at is None or finding.repair_requested_at < moment - REPAIR_STALE_AFTER
    return True


@transaction.atomic
def drift_repair_request(
    *, finding: RoleDriftFinding, actor: User, request: HttpRequest | None = None
) -> RoleDriftFinding:
    """Ask a worker to re-apply the portal's version of what ``finding`` reports. Raises
    ``ValidationError`` for a finding that cannot be repaired (an unreachable account, one repaired
    already, or one whose repair is on its way). Audited ``drift.repair_requested``."""
    locked = (
        RoleDriftFinding.objects.select_for_update(of=("self",))
        .select_related("account", "account_role")
        .get(pk=finding.pk)
    )
    if not finding_repairable(locked):
        raise ValidationError("This finding cannot be repaired now (already repaired, on its way, or nothing "
                              "Switchyard can re-apply).")
    locked.repair_status = Repair.REQUESTED
    locked.repair_requested_by = actor
    locked.repair_requested_at = timezone.now()
    locked.repair_error = ""
    locked.save(update_fields=["repair_status", "repair_requested_by", "repair_requested_at", "repair_error"])
    audit_record(
        action="drift.repair_requested", actor=actor, request=request,
        target=locked.account_role or locked.account, target_label=locked.role_arn or str(locked.account),
        details={"finding": locked.pk, "kind": locked.kind, "differences": locked.differences[:20]},
    )
    _enqueue("drift_repair", locked.pk)
    return locked


def _repair(finding: RoleDriftFinding, clients: ClientFactory) -> dict[str, Any]:
    """Re-apply the portal's version; returns what was done. Raises AwsError or ValueError."""
    account = finding.account
    if account.state != AwsAccount.State.ACTIVE:
        raise ValueError(f"The account is “{account.get_state_display()}” now: there is nothing to repair.")
    credentials = aws.assume_access_role(clients=clients, account_id=account.account_id or "",
                                         role_name=account.access_role, session_name=SESSION_NAME,
                                         account_may_be_new=False)
    if finding.kind == Kind.UNKNOWN:
        if AccountRole.objects.filter(account=account, role_name=finding.role_name).exclude(
            state=AccountRole.State.REMOVED
        ).exists():
            raise ValueError("The portal knows this role now: run a new check instead of deleting it.")
        deleted = aws.delete_role(clients=clients, credentials=credentials, name=finding.role_name)
        return {"action": "deleted" if deleted else "already gone"}
    role = AccountRole.objects.select_related("template", "account", "account__client").filter(
        pk=finding.account_role_id or 0).first()
    if role is None:
        raise ValueError("The finding names no role of the portal.")
    if role.state != AccountRole.State.ACTIVE:
        raise ValueError(f"The role is “{role.get_state_display()}” now: there is nothing to repair.")
    spec = role_spec_for(role)
    revision = role.template.revision
    result = aws.ensure_role(clients=clients, credentials=credentials, spec=spec)
    current = aws.read_role(clients=clients, credentials=credentials, path=spec.path, name=spec.name)
    remaining = ["the role does not exist"] if current is None else list(aws.role_differences(current, spec))
    if remaining:
        raise ValueError(f"AWS still shows differences after the repair: {'; '.join(remaining)}. "
                         "IAM can take a few seconds to show a change: run a check in a minute.")
    AccountRole.objects.filter(pk=role.pk).update(arn=result.arn)
    AccountRole.objects.filter(pk=role.pk, provisioned_revision__lt=revision).update(provisioned_revision=revision)
    return {"action": result.outcome, "fixed": list(result.differences), "arn": result.arn}


def drift_repair_run(*, finding_id: int, clients: ClientFactory | None = None) -> RoleDriftFinding | None:
    """Carry out a requested repair (worker). Records REPAIRED or FAILED on the finding with an
    audit event; a retryable AwsError (throttling, network) is raised for the task to retry, the
    finding staying REQUESTED."""
    finding = (
        RoleDriftFinding.objects.select_related("account", "account__client", "account_role")
        .filter(pk=finding_id).first()
    )
    if finding is None or finding.repair_status != Repair.REQUESTED:
        return finding
    target = finding.account_role or finding.account
    label = finding.role_arn or str(finding.account)
    try:
        done = _repair(finding, clients or default_client_factory())
    except AwsError as error:
        if error.retryable:
            raise
        message = f"{error.plain_message} (AWS said: {error.code})"
    except ValueError as exc:
        message = str(exc)
    else:
        with transaction.atomic():
            RoleDriftFinding.objects.filter(pk=finding.pk).update(
                repair_status=Repair.REPAIRED, repaired_at=timezone.now(), repair_error=""
            )
            audit_record(action="drift.repaired", target=target, target_label=label,
                         details={"finding": finding.pk, "kind": finding.kind, **done})
        finding.refresh_from_db()
        return finding
    with transaction.atomic():
        RoleDriftFinding.objects.filter(pk=finding.pk).update(repair_status=Repair.FAILED, repair_error=message)
        audit_record(action="drift.repair_failed", target=target, target_label=label,
                     details={"finding": finding.pk, "kind": finding.kind, "error": message[:1000]})
    finding.refresh_from_db()
    return finding


@transaction.atomic
def main_account_repair_request(*, actor: User, request: HttpRequest | None = None) -> None:
    """Ask a worker to rewrite every main-account Switchyard policy and group from the grants
    (a forced enforcement sync), then check the main account again. Audited."""
    audit_record(action="drift.repair_requested", actor=actor, request=request,
                 target_label="main-account policies", details={"scope": "main account"})
    _enqueue("drift_repair_main_account", actor.pk)


def main_account_repair_run(*, actor_id: int | None, clients: ClientFactory | None = None) -> DriftCheck:
    """Forced enforcement sync then a main-account drift check, under the enforcement lock
    (raises ``EnforcementBusy`` while another run holds it). Audited ``drift.repaired``."""
    factory = clients or default_client_factory()
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    who = actor.get_username() if actor else "system"
    with enforcement.enforcement_lock():
        report = enforcement.enforcement_sync(clients=factory, force=True, reason=f"drift repair requested by {who}")
        check = enforcement.enforcement_drift_check(clients=factory)
    audit_record(
        action="drift.repaired", actor=actor, target=check, target_label="main-account policies",
        details={"scope": "main account", "applied": report.applied, "failed": report.failed,
                 "still_different": check.drifted},
    )
    access_checks.effective_access_check_locked(clients=factory)
    return check


# --------------------------------------------------------------------------------------------------
# Reads for the drift page (managers and auditors)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftOverview:
    role_check: DriftCheck | None  # the latest check that looked into the member accounts
    role_findings: list[RoleDriftFinding]
    main_check: DriftCheck | None  # the latest check of the main account
    main_findings: list[DriftFinding]
    recent_checks: list[DriftCheck]


def drift_overview() -> DriftOverview:
    role_check = DriftCheck.objects.filter(roles_checked__isnull=False).first()
    main_check = DriftCheck.objects.first()
    role_findings: Iterable[RoleDriftFinding] = (
        role_check.role_findings.select_related("account", "account__client", "account_role",
                                                "account_role__template", "repair_requested_by")
        .order_by("account__client__name", "account__name", "role_name", "pk")
        if role_check else []
    )
    main_findings: Iterable[DriftFinding] = (
        main_check.findings.select_related("team", "person").order_by("principal_type", "principal_name")
        if main_check else []
    )
    return DriftOverview(
        role_check=role_check,
        role_findings=list(role_findings),
        main_check=main_check,
        main_findings=list(main_findings),
        recent_checks=list(DriftCheck.objects.all()[:10]),
    )
