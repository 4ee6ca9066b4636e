"""Handing an account (or a whole client) back: the client leaves with its account, no migration.

A manager sees the pre-checks (:func:`handback_plan`), confirms what AWS requires of the client but
cannot report in advance, chooses whether Switchyard's roles are deleted or kept, and gives a
reason; :func:`handback_start` then appends four steps to each account's ``OnboardingStep`` rows,
run by the same workers, lease and reconciler as onboarding (``onboarding.advance.onboarding_advance``):

1. ``REVOKE_GRANTS``: every grant on the account (and on the client, when the whole client leaves
   or this is its last account) is revoked through ``switchroles.services.grant_revoke`` (idempotent:
   a retry never revokes twice); the account's roles leave the directory (``AccountRole`` REMOVED,
   ``removed_at`` kept) and the main-account policies are re-applied.
2. ``DELETE_ROLES``: unless the manager chose to keep them, Switchyard's roles in the account are
   deleted through ``OrganizationAccountAccessRole`` (only roles tagged ``managed-by=switchyard``;
   already gone counts as done).
3. ``LEAVE_ORGANIZATION``: ``RemoveAccountFromOrganization``. AWS refuses while the account lacks its
   own payment method, support plan or verified contact: the step fails with what the client must
   do, and a manager retries it once they have (nothing before it runs again).
4. ``RECORD_HANDBACK``: the result is recorded; the account ends HANDED_BACK, its rows kept as history.
   When no account of the client is left, the client is LEFT.

The handlers below are called by ``onboarding.workflow.HANDLERS``; the state machine stays there.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import Exists, Max, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from onboarding import dispatch, workflow
from onboarding.models import AwsAccount, Client, OnboardingStep
from portal import aws
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory, default_client_factory
from portal.people.models import User
from portal.steps import Outcome, redrive_after
from switchroles import services as switchroles_services
from switchroles.models import AccountRole, Grant

logger = logging.getLogger(__name__)

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State

SCOPE_ACCOUNT = "account"
SCOPE_CLIENT = "client"
SESSION_NAME = "switchyard-handback"
# Accounts that are no longer the MSP's (or never became so).
GONE_STATES = frozenset({State.HANDED_BACK, State.CANCELLED, State.DECLINED, State.EXPIRED})

# What AWS requires before an account can leave an Organization and cannot tell in advance: the
# manager confirms each with the client. (key, text)
AWS_REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("payment_method", "The client has added its own payment method to the account (Billing → Payment "
                       "preferences), signed in as the account's root user."),
    ("support_plan", "The client has chosen a support plan for the account (Basic is enough)."),
    ("contact_info", "The account's contact information is the client's and its phone number is verified "
                     "(the standalone sign-up is complete)."),
    ("root_access", "The client controls the account's root user: its root e-mail address is theirs, or they "
                    "can reset the password through it."),
)

# RemoveAccountFromOrganization refusals (ConstraintViolationException ``Reason``), as the client's to-do.
LEAVE_REFUSALS: dict[str, str] = {
    "MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED": (
        "AWS will not let the account leave until it has a payment method of its own. The client must sign in "
        "to the account as root, add a payment method (Billing → Payment preferences), choose a support plan "
        "and confirm the contact details. Then retry this step."
    ),
    "INVALID_PAYMENT_INSTRUMENT": (
        "AWS declined the account's payment method, so it cannot stand alone yet. The client must sign in to the "
        "account as root and add a valid payment method (Billing → Payment preferences). Then retry this step."
    ),
    "ACCOUNT_CANNOT_LEAVE_WITHOUT_EULA": (
        "AWS will not let the account leave until the client completes its standalone sign-up: sign in to the "
        "account as root, accept the AWS Customer Agreement, add a payment method, choose a support plan and "
        "verify the phone number. Then retry this step."
    ),
    "ACCOUNT_CANNOT_LEAVE_WITHOUT_PHONE_VERIFICATION": (
        "AWS will not let the account leave until its phone number is verified. The client must sign in to "
        "the account as root and verify the phone number in the contact information. Then retry this step."
    ),
    "WAIT_PERIOD_ACTIVE": (
        "AWS does not let an account leave an Organization within seven days of joining or being created. "
        "Retry this step once the seven days are over."
    ),
    "ACCOUNT_CANNOT_LEAVE_ORGANIZATION": (
        "This is the Organization's management account, which cannot leave. It must not be handed back this way."
    ),
    "MASTER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED": (
        "AWS needs a valid payment method on our management account before it lets accounts leave. "
        "Fix the management account's payment method, then retry this step."
    ),
    "ORGANIZATION_MEMBERSHIP_CHANGE_RATE_LIMIT_EXCEEDED": (
        "Accounts have joined or left the Organization too often recently. Retry this step later."
    ),
}


# --------------------------------------------------------------------------------------------------
# Pre-checks
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountPrecheck:
    """What Switchyard found out about one account before handing it back. ``problems`` block the
    hand-back; ``warnings`` do not."""

    account: AwsAccount
    # The account's state in the Organization ("ACTIVE", "SUSPENDED", …), "" if not a member or not checked.
    org_state: str
    grants: tuple[Grant, ...]  # revoked by the hand-back
    client_grants_kept: tuple[Grant, ...]  # on the client: stay for its other accounts, stop reaching this one
    roles: tuple[AccountRole, ...]  # leave the directory (and AWS, unless kept)
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class HandbackPlan:
    """The pre-checks of a hand-back: the accounts it covers (``accounts``), those it leaves out
    and why (``left_out``), and what stops it (``problems``, e.g. AWS could not be asked)."""

    scope: str
    client: Client
    accounts: tuple[AccountPrecheck, ...]
    left_out: tuple[tuple[AwsAccount, str], ...] = ()
    problems: tuple[str, ...] = ()
    aws_error: AwsError | None = None
    management_account_id: str = ""
    org_checked: bool = True  # False: AWS was not asked (the checks of the Organization are missing)

    @property
    def ready(self) -> bool:
        return (self.org_checked and bool(self.accounts) and not self.problems
                and all(check.ready for check in self.accounts))

    @property
    def all_problems(self) -> list[str]:
        return [*self.problems, *(f"{c.account.name}: {p}" for c in self.accounts for p in c.problems)]


def _has_handback(account: AwsAccount) -> bool:
    return OnboardingStep.objects.filter(account=account, kind=Kind.REVOKE_GRANTS).exists()


def _others_remaining(account: AwsAccount) -> QuerySet[AwsAccount]:
    """The client's other accounts that stay with the MSP: not gone and not being handed back."""
    handing_back = OnboardingStep.objects.filter(account=OuterRef("pk"), kind=Kind.REVOKE_GRANTS)
    return (
        AwsAccount.objects.filter(client_id=account.client_id)
        .exclude(pk=account.pk)
        .exclude(state__in=GONE_STATES)
        .exclude(Exists(handing_back))
    )


def _grants_to_revoke(account: AwsAccount, *, whole_client: bool, at: Any) -> QuerySet[Grant]:
    """Grants not revoked and not expired on the account, and on its client when the client leaves."""
    target = Q(account=account)
    if whole_client:
        target |= Q(client_id=account.client_id)
    return (
        Grant.objects.filter(target, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))
        .select_related("team", "person", "client", "account")
        .order_by("pk")
    )


def _precheck(
    account: AwsAccount, *, scope: str, members: dict[str, aws.Account], management_account_id: str, at: Any,
    org_checked: bool = True,
) -> AccountPrecheck:
    problems: list[str] = []
    warnings: list[str] = []
    whole_client = scope == SCOPE_CLIENT or not _others_remaining(account).exists()
    grants = tuple(_grants_to_revoke(account, whole_client=whole_client, at=at))
    kept = () if whole_client else tuple(
        Grant.objects.filter(client_id=account.client_id, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))
        .select_related("team", "person").order_by("pk")
    )
    roles = tuple(
        AccountRole.objects.filter(account=account).exclude(state=AccountRole.State.REMOVED)
        .select_related("template").order_by("template_id")
    )
    if account.state != State.ACTIVE:
        problems.append(
            f"The account is “{account.get_state_display()}” in Switchyard: only an active account can be handed "
            "back. Finish or cancel its onboarding first."
        )
    account_id = account.account_id or ""
    member = members.get(account_id)
    if not account_id:
        problems.append("The account has no AWS account id, so it never joined the Organization.")
    elif account_id in (management_account_id, settings.SWITCHYARD_MAIN_ACCOUNT_ID):
        problems.append("This is our management account: it cannot leave the Organization.")
    elif not org_checked:
        pass
    elif member is None:
        warnings.append(
            "AWS does not list the account in the Organization any more: the “remove from the Organization” "
            "step will find nothing to do. Switchyard may not be able to reach it to delete its roles."
        )
    elif member.state != "ACTIVE":
        problems.append(
            f"The account is {member.state} in the Organization: AWS only lets an active account leave."
        )
    return AccountPrecheck(
        account=account, org_state=member.state if member else "", grants=grants, client_grants_kept=kept,
        roles=roles, problems=tuple(problems), warnings=tuple(warnings),
    )


def handback_plan(
    *,
    account: AwsAccount | None = None,
    client: Client | None = None,
    clients: ClientFactory | None = None,
    ask_aws: bool = True,
) -> HandbackPlan:
    """The pre-checks for handing back ``account``, or every active account of ``client`` (exactly
    one of them): what Switchyard can check itself (the account is active, a member of the
    Organization and ACTIVE there, not the management account; the grants revoked and roles
    affected). Reads the Organization (ListAccounts, DescribeOrganization), never writes. An AWS
    failure is returned in ``aws_error``/``problems``, not raised. ``ask_aws=False`` (a form sent
    back with errors) skips AWS: the plan then shows Switchyard's own checks and is never ready."""
    if (account is None) == (client is None):
        raise ValueError("Hand back one account or one client.")
    now = timezone.now()
    scope = SCOPE_ACCOUNT if account is not None else SCOPE_CLIENT
    owner = account.client if account is not None else cast(Client, client)  # one of the two (checked above)
    candidates = [account] if account is not None else list(owner.accounts.order_by("name"))
    included: list[AwsAccount] = []
    left_out: list[tuple[AwsAccount, str]] = []
    for candidate in candidates:
        if candidate.state in GONE_STATES:
            left_out.append((candidate, f"{candidate.get_state_display()}: nothing to hand back."))
        elif _has_handback(candidate):
            left_out.append((candidate, "Its hand-back has started already: follow it on the account's page."))
        else:
            included.append(candidate)
    problems: list[str] = []
    if not included:
        problems.append("There is no account to hand back.")
    if not ask_aws:
        checks = tuple(
            _precheck(a, scope=scope, members={}, management_account_id="", at=now, org_checked=False)
            for a in included
        )
        return HandbackPlan(scope=scope, client=owner, accounts=checks, left_out=tuple(left_out),
                            problems=tuple(problems), org_checked=False)
    factory = clients or default_client_factory()
    try:
        members = {member.id: member for member in aws.list_accounts(clients=factory)}
        management_account_id = aws.describe_organization(clients=factory).management_account_id
    except AwsError as error:
        logger.warning("onboarding.handback.precheck_failed", extra={"code": error.code})
        return HandbackPlan(
            scope=scope, client=owner, accounts=(), left_out=tuple(left_out), aws_error=error,
            problems=(f"Switchyard could not ask AWS about the Organization, so nothing can start: "
                      f"{error.plain_message} (AWS said: {error.code}). Try again in a moment.",),
        )
    checks = tuple(
        _precheck(a, scope=scope, members=members, management_account_id=management_account_id, at=now)
        for a in included
    )
    return HandbackPlan(scope=scope, client=owner, accounts=checks, left_out=tuple(left_out),
                        problems=tuple(problems), management_account_id=management_account_id)


# --------------------------------------------------------------------------------------------------
# Starting a hand-back (manager)
# --------------------------------------------------------------------------------------------------


def input_errors(*, reason: str, confirmed: Collection[str]) -> dict[str, list[str]]:
    """Field errors (``confirmations``, ``reason``) found without the database or AWS."""
    errors: dict[str, list[str]] = {}
    missing = [text for key, text in AWS_REQUIREMENTS if key not in confirmed]
    if missing:
        errors["confirmations"] = [
            "Confirm every requirement with the client first: AWS refuses to let the account leave otherwise."
        ]
    if not reason.strip():
        errors["reason"] = ["Say why the account is handed back (for the audit log)."]
    elif len(reason) > 1000:
        errors["reason"] = ["Use at most 1,000 characters."]
    return errors


def handback_start(
    *,
    actor: User,
    reason: str,
    delete_roles: bool,
    confirmed: Collection[str],
    account: AwsAccount | None = None,
    client: Client | None = None,
    request: HttpRequest | None = None,
    clients: ClientFactory | None = None,
) -> list[AwsAccount]:
    """Start handing back ``account``, or every active account of ``client`` (exactly one).

    Raises ``ValidationError`` without writing anything: per field (``confirmations`` when a
    requirement of :data:`AWS_REQUIREMENTS` is not confirmed, ``reason``) before any AWS call; then
    ``__all__`` when the pre-checks (:func:`handback_plan`, AWS reads only) find a problem.

    Then, in one transaction, each account gets the four hand-back steps (the choice to delete or
    keep the roles and the reason in their detail), becomes HANDING_BACK, and an audit event
    ``onboarding.handback.requested`` is written; a whole client becomes LEAVING. Workers are asked
    to advance each account once that commits. Returns the accounts.
    """
    errors = input_errors(reason=reason, confirmed=confirmed)
    if errors:
        raise ValidationError(errors)
    plan = handback_plan(account=account, client=client, clients=clients)
    if not plan.ready:
        raise ValidationError({NON_FIELD_ERRORS: plan.all_problems or ["There is nothing to hand back."]})
    info = {
        "scope": plan.scope,
        "requested_by": actor.pk,
        "reason": reason.strip(),
        "delete_roles": bool(delete_roles),
    }
    now = timezone.now()
    started: list[AwsAccount] = []
    with transaction.atomic(durable=True):
        owner = Client.objects.select_for_update().get(pk=plan.client.pk)
        for check in plan.accounts:
            locked = AwsAccount.objects.select_for_update().select_related("client").get(pk=check.account.pk)
            if locked.state != State.ACTIVE or _has_handback(locked):
                raise ValidationError(
                    {NON_FIELD_ERRORS: [f"{locked.name} changed in the meantime ({locked.get_state_display()}): "
                                        "look at the pre-checks again."]}
                )
            last = OnboardingStep.objects.filter(account=locked).aggregate(last=Max("position"))["last"] or 0
            OnboardingStep.objects.bulk_create(
                OnboardingStep(
                    account=locked, position=last + offset, kind=kind, detail={"handback": info},
                    next_run_at=(now + redrive_after()) if offset == 1 else None,
                )
                for offset, kind in enumerate(workflow.HANDBACK_PATH, start=1)
            )
            locked.state = State.HANDING_BACK
            locked.save(update_fields=["state", "updated_at"])
            audit_record(
                action="onboarding.handback.requested", actor=actor, target=locked, request=request,
                details={
                    **info,
                    "account_id": locked.account_id,
                    "confirmed_with_client": sorted(confirmed),
                    "grants_to_revoke": [grant.pk for grant in check.grants],
                    "roles": [role.arn or f"{role.role_path}{role.role_name}" for role in check.roles],
                },
            )
            dispatch.advance_later(locked.pk)
            started.append(locked)
        # Steps now exist for the started accounts, so they no longer count as remaining.
        leaving = plan.scope == SCOPE_CLIENT or not _others_remaining(started[0]).exists()
        if leaving and owner.state == Client.State.ACTIVE:
            owner.state = Client.State.LEAVING
            owner.save(update_fields=["state"])
            audit_record(action="onboarding.client.leaving", actor=actor, target=owner, request=request,
                         details={"reason": info["reason"], "accounts": [a.pk for a in started]})
    logger.info("onboarding.handback.started", extra={"accounts": [a.pk for a in started], "scope": plan.scope})
    return started


# --------------------------------------------------------------------------------------------------
# The steps (called by onboarding.workflow.HANDLERS)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandbackInfo:
    scope: str
    requested_by: int
    reason: str
    delete_roles: bool


def _info(step: OnboardingStep) -> HandbackInfo:
    raw = step.detail.get("handback") or {}
    return HandbackInfo(
        scope=str(raw.get("scope", SCOPE_ACCOUNT)),
        requested_by=int(raw.get("requested_by") or 0),
        reason=str(raw.get("reason", "")),
        delete_roles=bool(raw.get("delete_roles", True)),
    )


def revoke_grants(run: workflow.StepRun) -> Outcome:
    account, info = run.account, _info(run.step)
    actor = User.objects.get(pk=info.requested_by)
    whole_client = info.scope == SCOPE_CLIENT or not _others_remaining(account).exists()
    reason = f"Hand-back of {account}: {info.reason}"[:1000]
    revoked = list(run.step.detail.get("revoked_grants", []))
    # Only grants still unrevoked: a second run (after a crash) never revokes one twice.
    for grant in _grants_to_revoke(account, whole_client=whole_client, at=run.now):
        switchroles_services.grant_revoke(grant=grant, revoked_by=actor, reason=reason)
        revoked.append(grant.pk)
        run.save_detail(revoked_grants=revoked)
    with transaction.atomic():
        roles = list(
            AccountRole.objects.select_for_update().filter(account=account).exclude(state=AccountRole.State.REMOVED)
        )
        for role in roles:
            role.state = AccountRole.State.REMOVED
            role.removed_at = run.now
            role.save(update_fields=["state", "removed_at", "updated_at"])
        unpublished = [*run.step.detail.get("unpublished_roles", []),
                       *(role.arn or f"{role.role_path}{role.role_name}" for role in roles)]
        run.save_detail(unpublished_roles=unpublished)
        # Links vanish now; the main-account policies stop allowing these roles with the sync.
        switchroles_services.enforcement_sync_schedule(reason=f"Hand-back of {account}")
    return Outcome.succeeded(revoked_grants=revoked, unpublished_roles=unpublished,
                                      client_grants_included=whole_client)


def delete_roles(run: workflow.StepRun) -> Outcome:
    account, info = run.account, _info(run.step)
    names = sorted(set(AccountRole.objects.filter(account=account).values_list("role_name", flat=True)))
    if not info.delete_roles:
        return Outcome.succeeded(kept=names, note="The manager chose to keep Switchyard's roles.")
    # An account Switchyard reached before: a refusal is not retryable and says the role must be restored.
    credentials = aws.assume_access_role(clients=run.clients, account_id=account.account_id or "",
                                         role_name=account.access_role, session_name=SESSION_NAME,
                                         account_may_be_new=False)
    deleted: list[str] = []
    already_gone: list[str] = []
    not_ours: list[str] = []
    for name in names:
        try:
            (deleted if aws.delete_role(clients=run.clients, credentials=credentials, name=name)
             else already_gone).append(name)
        except AwsError as error:
            if error.code != "RoleNotManaged":
                raise
            # A role of that name that Switchyard did not create (a conflict at onboarding): the client's.
            not_ours.append(name)
    return Outcome.succeeded(deleted=deleted, already_gone=already_gone, not_switchyards=not_ours)


def leave_refusal(error: AwsError, account: AwsAccount) -> AwsError:
    """The error to record when AWS refuses to let ``account`` leave: what the client must do, in
    plain words, with the raw code and reason kept."""
    reason = error.reason or ""
    plain = LEAVE_REFUSALS.get(reason) or (
        f"AWS refused to remove the account from the Organization: {error.plain_message} "
        "Once that is dealt with, retry this step."
    )
    code = f"{error.code} ({reason})" if reason else error.code
    return AwsError(code[:100], error.raw_message, f"{plain} (Account {account.account_id}.)", False, reason or None)


def leave_organization(run: workflow.StepRun) -> Outcome:
    account = run.account
    try:
        removed = aws.remove_account_from_organization(clients=run.clients, account_id=account.account_id or "")
    except AwsError as error:
        if error.retryable:
            raise
        logger.warning("onboarding.handback.refused", extra={"account": account.pk, "code": error.code,
                                                               "reason": error.reason})
        return Outcome.failed(leave_refusal(error, account))
    return Outcome.succeeded(
        removed=removed,
        note="" if removed else "AWS no longer listed the account in the Organization.",
    )


def record_handback(run: workflow.StepRun) -> Outcome:
    account, info = run.account, _info(run.step)
    steps = {s.kind: s for s in OnboardingStep.objects.filter(account=account, kind__in=workflow.HANDBACK_PATH)}
    revoked = steps[Kind.REVOKE_GRANTS].detail
    roles = steps[Kind.DELETE_ROLES].detail
    left = steps[Kind.LEAVE_ORGANIZATION].detail
    summary: dict[str, Any] = {
        "account_id": account.account_id,
        "reason": info.reason,
        "requested_by": info.requested_by,
        "revoked_grants": revoked.get("revoked_grants", []),
        "unpublished_roles": revoked.get("unpublished_roles", []),
        "roles": "deleted" if info.delete_roles else "kept",
        "deleted_roles": roles.get("deleted", []),
        "kept_roles": roles.get("kept", []),
        "removed_from_organization": bool(left.get("removed", True)),
    }
    recorded = OnboardingStep.objects.filter(
        account=OuterRef("pk"), kind=Kind.RECORD_HANDBACK, detail__has_key="recorded_at"
    )
    with transaction.atomic():
        # The client row serialises the last accounts of a client finishing at the same moment.
        client = Client.objects.select_for_update().get(pk=account.client_id)
        run.save_detail(recorded_at=run.now.isoformat())
        remaining = (
            AwsAccount.objects.filter(client=client).exclude(pk=account.pk).exclude(state__in=GONE_STATES)
            .exclude(Exists(recorded))
        )
        client_left = not remaining.exists()
        if client_left and client.state != Client.State.LEFT:
            client.state = Client.State.LEFT
            client.save(update_fields=["state"])
            audit_record(action="onboarding.client.left", target=client,
                         details={"last_account": account.pk, "reason": info.reason})
    return Outcome.succeeded(**summary, client_left=client_left)
