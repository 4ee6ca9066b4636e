"""The onboarding state machine, readable in one place.

An account's workflow is a fixed list of ``OnboardingStep`` rows (its *path*). The current step is
the first one that has not succeeded. ``onboarding.advance.onboarding_advance`` leases it, calls
the handler for its kind (below), and records the :class:`~portal.steps.Outcome` (the step machine
shared with roll-outs and drift checks is :mod:`portal.steps`; its :class:`~portal.steps.Result`):

- ``succeeded``: the step is done; the next step runs at once (the account is ACTIVE after the last),
  by the same worker while its task has time left (each step still leased, recorded and audited on
  its own; the steps of such a :class:`Chain` share the account's credentials), else by a new task;
- ``waiting``: AWS is not there yet (creation in progress, invitation open, IAM not ready, access role
  missing); the step runs again after ``wait_seconds``;
- ``failed``: a person has to act; the account needs attention and a manager may retry the step;
- ``ended``: the client answered for us (invitation declined, expired or cancelled): a final state.

A retryable :class:`~portal.aws.AwsError` that a handler does not catch (throttling, AWS-side
failures, the network) is raised out of ``onboarding_advance`` so the Celery task retries it with
backoff and jitter, up to :data:`RETRY_POLICY`'s limit (then the step fails for a person).

Every handler is safe to run twice: it looks before it creates (roles: CreateRole first, and a role
that exists already is read and handled as if it had been looked up), and CreateAccount and
InviteAccountToOrganization (which are not idempotent) write their intent first and reconcile on
any later attempt instead of sending again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import monotonic
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from onboarding import steps_creation
from onboarding.models import AwsAccount, OnboardingStep
from portal import aws, steps
from portal.aws import AwsError, ClientFactory, TemporaryCredentials
from portal.steps import Outcome, backoff_seconds
from switchroles import provisioning
from switchroles import services as switchroles_services
from switchroles.models import AccountRole

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State

CREATED_PATH: tuple[str, ...] = (
    Kind.CREATE_ACCOUNT,
    Kind.AWAIT_CREATION,
    Kind.ASSUME_ACCESS_ROLE,
    Kind.PROVISION_ROLES,
    Kind.VERIFY_ROLES,
    Kind.PUBLISH_LINKS,
)
INVITED_PATH: tuple[str, ...] = (
    Kind.INVITE_ACCOUNT,
    Kind.AWAIT_HANDSHAKE,
    Kind.AWAIT_ACCESS_ROLE,
    Kind.ASSUME_ACCESS_ROLE,
    Kind.PROVISION_ROLES,
    Kind.VERIFY_ROLES,
    Kind.PUBLISH_LINKS,
)

# An account already in the Organization (onboarding.adoption): reach it, find the roles the team
# made by hand, then provision the tiers as for a created account.
ADOPTED_PATH: tuple[str, ...] = (
    Kind.ASSUME_ACCESS_ROLE,
    Kind.DISCOVER_ROLES,
    Kind.PROVISION_ROLES,
    Kind.VERIFY_ROLES,
    Kind.PUBLISH_LINKS,
)

# What the account is doing while a step of this kind is the current one.
ACCOUNT_STATE_DURING: dict[str, str] = {
    Kind.CREATE_ACCOUNT: State.CREATING,
    Kind.AWAIT_CREATION: State.CREATING,
    Kind.INVITE_ACCOUNT: State.INVITING,
    Kind.AWAIT_HANDSHAKE: State.INVITING,
    Kind.AWAIT_ACCESS_ROLE: State.AWAITING_ACCESS_ROLE,
    Kind.ASSUME_ACCESS_ROLE: State.PROVISIONING,
    Kind.PROVISION_ROLES: State.PROVISIONING,
    Kind.VERIFY_ROLES: State.PROVISIONING,
    Kind.PUBLISH_LINKS: State.PROVISIONING,
    Kind.DISCOVER_ROLES: State.PROVISIONING,
    Kind.REVOKE_GRANTS: State.HANDING_BACK,
    Kind.DELETE_ROLES: State.HANDING_BACK,
    Kind.LEAVE_ORGANIZATION: State.HANDING_BACK,
    Kind.RECORD_HANDBACK: State.HANDING_BACK,
    Kind.ROOT_DELETE_PASSWORD: State.REMOVING_ROOT,
    Kind.ROOT_DELETE_ACCESS_KEYS: State.REMOVING_ROOT,
    Kind.ROOT_DELETE_CERTIFICATES: State.REMOVING_ROOT,
    Kind.ROOT_DEACTIVATE_MFA: State.REMOVING_ROOT,
    Kind.ROOT_VERIFY_REMOVED: State.REMOVING_ROOT,
    Kind.ROOT_CHECK_NONE: State.PROVISIONING,
    Kind.ROOT_ENABLE_RECOVERY: State.HANDING_BACK,
}

# Hand-back (onboarding.handback): appended to an ACTIVE account's steps by ``handback_start``.
HANDBACK_PATH: tuple[str, ...] = (
    Kind.REVOKE_GRANTS,
    Kind.DELETE_ROLES,
    # Root back to the client before the account leaves: afterwards no root session reaches it.
    Kind.ROOT_ENABLE_RECOVERY,
    Kind.LEAVE_ORGANIZATION,
    Kind.RECORD_HANDBACK,
)

# Removing the root user's credentials (onboarding.root_steps): the last steps of an invited account's
# onboarding when the manager keeps that choice, or appended to an active account's steps on request.
ROOT_REMOVAL_PATH: tuple[str, ...] = (
    Kind.ROOT_DELETE_PASSWORD,
    Kind.ROOT_DELETE_ACCESS_KEYS,
    Kind.ROOT_DELETE_CERTIFICATES,
    Kind.ROOT_DEACTIVATE_MFA,
    Kind.ROOT_VERIFY_REMOVED,
)


def state_when_done(last_kind: str) -> str:
    """The account's state once the step ``last_kind``, the last of its path, has succeeded."""
    return State.HANDED_BACK if last_kind in HANDBACK_PATH else State.ACTIVE

# A worker holds a step for ``lease_duration()``; a pending step nobody picked up (a lost broker
# message) is re-driven by the reconciler after ``redrive_after()`` (both portal.steps, from settings).

# Throttling or network trouble on the same step this many times in a row: stop and tell a person.
MAX_TRANSIENT_FAILURES = 12
# An unexplained AWS failure (an unknown code with HTTP 5xx): a few tries, then a person looks.
MAX_UNEXPLAINED_FAILURES = 3


def transient_failure_limit(error: AwsError) -> int:
    """How many retryable failures in a row a step takes before it fails for a person to look at."""
    return MAX_UNEXPLAINED_FAILURES if aws.is_unexplained_failure(error) else MAX_TRANSIENT_FAILURES


def invalid_request_error(exc: ValueError) -> AwsError:
    """The error a step fails with for a value AWS would refuse, caught before sending (e.g. a
    template edited into an invalid state)."""
    return AwsError("InvalidRequest", str(exc), f"Switchyard refused to send an invalid request: {exc}", False)


def gave_up_error(error: AwsError, tries: int) -> AwsError:
    """The error a step fails with once its retries are used up: AWS's code and words, and a plain
    message saying that Switchyard stopped and what to do."""
    return AwsError(
        error.code,
        error.raw_message,
        f"AWS failed {tries} times in a row ({error.code}), so Switchyard stopped retrying this step. "
        "Check the AWS Health Dashboard (in the sandbox: that its simulated AWS is running), then "
        "“Retry this step”.",
        False,
        error.reason,
    )


# What a step does with the errors its handler raises (portal.steps.run_handler).
RETRY_POLICY: steps.RetryPolicy[AwsError] = steps.RetryPolicy(
    error_type=AwsError, limit=transient_failure_limit, gave_up=gave_up_error, invalid=invalid_request_error,
    base=30, cap=900,
)
SESSION_NAME = "switchyard-onboarding"
# A created account's IAM normally answers within minutes; after this, something else is wrong.
NEW_ACCOUNT_IAM_DEADLINE = timedelta(hours=2)
VERIFY_ATTEMPTS = 4


def path_for(origin: str, *, root_credentials: bool = False) -> tuple[str, ...]:
    """The steps of an account's onboarding. With ``root_credentials``, a created account ends by
    checking it has no root credentials, an invited or adopted one by removing them."""
    if origin == AwsAccount.Origin.CREATED:
        return (*CREATED_PATH, Kind.ROOT_CHECK_NONE) if root_credentials else CREATED_PATH
    path = ADOPTED_PATH if origin == AwsAccount.Origin.ADOPTED else INVITED_PATH
    return (*path, *ROOT_REMOVAL_PATH) if root_credentials else path


@dataclass
class Chain:
    """What the steps run one after another by one call of ``onboarding_advance`` share, and
    nothing else: it is made for that call and dropped with it (never cached beyond it).

    ``member_credentials``: the credentials a step got by assuming the account's access role, by
    account id, so the steps after it in the same call reach the account without assuming it again.
    """

    member_credentials: dict[str, TemporaryCredentials] = field(default_factory=dict)
    # Root sessions (sts:AssumeRoot, 15 minutes) by (account id, task policy).
    root_credentials: dict[tuple[str, str], TemporaryCredentials] = field(default_factory=dict)
    # When AWS answered the CreateAccount a step of this call sent (``time.monotonic()``): the
    # creation's polls are counted from it.
    creation_sent_at: float | None = None


@dataclass
class StepRun:
    """One leased run of a step: what a handler works with."""

    step: OnboardingStep
    account: AwsAccount
    clients: ClientFactory
    now: datetime
    chain: Chain = field(default_factory=Chain)
    # When the call running this step must hand over (``time.monotonic()``); None: run it once.
    deadline: float | None = None

    def can_wait(self, seconds: float) -> bool:
        """Whether the step may wait ``seconds`` in this process rather than through the broker."""
        return self.deadline is not None and monotonic() + seconds <= self.deadline

    def save_detail(self, **values: Any) -> None:
        """Write to the step's detail at once (committed before the next AWS call)."""
        self.step.detail = {**self.step.detail, **values}
        OnboardingStep.objects.filter(pk=self.step.pk).update(detail=self.step.detail)


# --------------------------------------------------------------------------------------------------
# Roles as AWS must see them
# --------------------------------------------------------------------------------------------------


def _roles(account: AwsAccount) -> list[AccountRole]:
    return list(
        AccountRole.objects.filter(account=account)
        .exclude(state=AccountRole.State.REMOVED)
        .select_related("template", "account", "account__client")
        .order_by("template_id")
    )


# --------------------------------------------------------------------------------------------------
# Handlers, one per kind (the creation steps' are in onboarding.steps_creation)
# --------------------------------------------------------------------------------------------------


def _reach_account(run: StepRun, *, again: bool = False) -> TemporaryCredentials:
    """Credentials in the account through its access role. Assumed afresh when ``again`` (the steps
    whose job is to prove the role can be assumed) or when no earlier step of this chain did."""
    account_id = run.account.account_id or ""
    known = run.chain.member_credentials.get(account_id)
    if known is not None and not again:
        return known
    credentials = aws.assume_access_role(clients=run.clients, account_id=account_id,
                                         role_name=run.account.access_role, session_name=SESSION_NAME)
    run.chain.member_credentials[account_id] = credentials
    return credentials


def _not_ready(error: AwsError) -> bool:
    return aws.is_access_denied(error) and error.retryable


def assume_access_role(run: StepRun) -> Outcome:
    try:
        credentials = _reach_account(run, again=True)
    except AwsError as error:
        if not _not_ready(error):
            raise
        if run.account.origin == AwsAccount.Origin.ADOPTED and run.step.attempts >= ADOPTED_ACCESS_TRIES:
            return Outcome.failed(_adopted_access_refused(run.account, error))
        started = run.step.started_at or run.now
        if run.account.origin == AwsAccount.Origin.CREATED and run.now - started > NEW_ACCOUNT_IAM_DEADLINE:
            return Outcome.failed(
                AwsError(
                    error.code,
                    error.raw_message,
                    "AWS still refuses Switchyard access to the new account's OrganizationAccountAccessRole "
                    "after two hours. Check the Organization's service control policies and that the role "
                    "exists, then retry this step.",
                    False,
                )
            )
        return Outcome.waiting(
            backoff_seconds(run.step.attempts, base=15, cap=300),
            "The new account's IAM is not ready yet; Switchyard keeps trying.",
            error=error,
        )
    if run.account.origin == AwsAccount.Origin.ADOPTED:
        problem = access_role_problem(run, credentials)
        if problem is not None:
            return Outcome.failed(problem)
    return Outcome.succeeded(role=run.account.access_role)


def invite_account(run: StepRun) -> Outcome:
    account, step = run.account, run.step
    if account.handshake_id:
        return Outcome.succeeded(handshake_id=account.handshake_id, reconciled=True)
    account_id = account.account_id or ""
    if step.detail.get("sending") or step.attempts > 1:
        found = aws.find_open_handshake(clients=run.clients, account_id=account_id)
        if found is not None:
            _record_handshake(account, found)
            return Outcome.succeeded(handshake_id=found.id, reconciled=True)
    run.save_detail(sending=True, intent_at=run.now.isoformat())
    handshake = aws.invite_account(
        clients=run.clients,
        account_id=account_id,
        notes=f"{account.client.name}: join our AWS Organization for managed services (Switchyard)."[:1024],
    )
    _record_handshake(account, handshake)
    return Outcome.succeeded(handshake_id=handshake.id)


def _record_handshake(account: AwsAccount, handshake: aws.Handshake) -> None:
    AwsAccount.objects.filter(pk=account.pk).update(
        handshake_id=handshake.id, handshake_expires_at=handshake.expires_at
    )
    account.handshake_id = handshake.id
    account.handshake_expires_at = handshake.expires_at


HANDSHAKE_ENDINGS: dict[str, tuple[str, str]] = {
    aws.HANDSHAKE_DECLINED: (
        State.DECLINED,
        "The client declined the invitation. Talk to the client; to try again, onboard the account anew.",
    ),
    aws.HANDSHAKE_EXPIRED: (
        State.EXPIRED,
        "The invitation expired (AWS keeps it open for 15 days). To try again, onboard the account anew.",
    ),
    aws.HANDSHAKE_CANCELED: (
        State.CANCELLED,
        "The invitation was cancelled, so the account will not join the Organization.",
    ),
}


def await_handshake(run: StepRun) -> Outcome:
    handshake = aws.describe_handshake(clients=run.clients, handshake_id=run.account.handshake_id)
    if handshake.state == aws.HANDSHAKE_ACCEPTED:
        return Outcome.succeeded(handshake_state=handshake.state)
    if handshake.state in HANDSHAKE_ENDINGS:
        state, message = HANDSHAKE_ENDINGS[handshake.state]
        error = AwsError(f"HANDSHAKE_{handshake.state}", f"Handshake {handshake.id} is {handshake.state}",
                         message, False)
        return Outcome.ended(state, error, handshake_state=handshake.state)
    return Outcome.waiting(
        300, "Waiting for the client to accept the invitation (AWS keeps it open for 15 days).",
        handshake_state=handshake.state,
    )


def await_access_role(run: StepRun) -> Outcome:
    waiting_note = "Waiting for the client to deploy the CloudFormation template that creates the access role."
    try:
        credentials = _reach_account(run, again=True)
    except AwsError as error:
        if not _not_ready(error):
            raise
        return Outcome.waiting(
            backoff_seconds(run.step.attempts, base=60, cap=900), waiting_note, error=error,
        )
    problem = access_role_problem(run, credentials)
    if problem is not None and problem.code == "AccessRoleMissing":
        return Outcome.waiting(backoff_seconds(run.step.attempts, base=60, cap=900), waiting_note, error=problem)
    if problem is not None:
        return Outcome.failed(problem)
    return Outcome.succeeded(role=run.account.access_role)


# An adopted account's access role that refuses Switchyard this often is missing or trusts someone else.
ADOPTED_ACCESS_TRIES = 3


def _adopted_access_refused(account: AwsAccount, error: AwsError) -> AwsError:
    return AwsError(
        error.code,
        error.raw_message,
        f"AWS does not let Switchyard assume {account.access_role} in {account.account_id}: the role does not "
        "exist there, or it does not trust the main account. Check the role in the account (or set the "
        "account's access role to the one the team uses), then “Retry this step”.",
        False,
    )


def trusted_principals(trust_policy: dict[str, Any]) -> list[str]:
    """Every AWS principal an Allow statement of ``trust_policy`` lets assume the role."""
    return list(aws.trusted_principals(trust_policy))


def trusts_account(trust_policy: dict[str, Any], account_id: str) -> bool:
    return any(
        principal == account_id or principal == "*" or f":iam::{account_id}:" in principal
        for principal in trusted_principals(trust_policy)
    )


def access_role_problem(run: StepRun, credentials: TemporaryCredentials) -> AwsError | None:
    """Read the access role back through the session it gave: None when it trusts the main account;
    ``AccessRoleMissing`` (retryable) when IAM does not show it yet; ``AccessRoleTrustsSomeoneElse``
    when its trust names only other accounts (an old management account, typically)."""
    account = run.account
    role = aws.read_role_trust(clients=run.clients, credentials=credentials, name=account.access_role)
    main = settings.SWITCHYARD_MAIN_ACCOUNT_ID
    if role is None:
        return AwsError(
            "AccessRoleMissing",
            f"GetRole {account.access_role}: NoSuchEntity",
            f"The role {account.access_role} does not exist in {account.account_id} yet. Once the client has "
            "deployed the CloudFormation template, use “Verify access now”.",
            True,
        )
    arn, trust_policy = role
    if trusts_account(trust_policy, main):
        return None
    others = ", ".join(trusted_principals(trust_policy)) or "nobody"
    return AwsError(
        "AccessRoleTrustsSomeoneElse",
        f"{arn} trusts {others}",
        f"The role {account.access_role} in {account.account_id} trusts {others}, not Switchyard's main account "
        f"{main}. It is probably the role of the account's previous Organization. Ask the client to deploy "
        "Switchyard's CloudFormation template (it creates SwitchyardAccessRole beside it), or set the account's "
        "access role to the role that trusts Switchyard, then retry.",
        False,
    )


def _member_credentials(run: StepRun) -> TemporaryCredentials | Outcome:
    try:
        return _reach_account(run)
    except AwsError as error:
        if not _not_ready(error):
            raise
        return Outcome.waiting(
            backoff_seconds(run.step.attempts, base=30, cap=300),
            "AWS briefly refused access to the account; Switchyard keeps trying.",
            error=error,
        )


def provision_roles(run: StepRun) -> Outcome:
    credentials = _member_credentials(run)
    if isinstance(credentials, Outcome):
        return credentials
    conflicts: list[AwsError] = []

    def record(role: provisioning.RoleMatched) -> None:
        # Each role as soon as AWS has it: a worker that dies before the next one leaves it recorded.
        if role.conflict is not None:
            AccountRole.objects.filter(pk=role.role.pk).update(state=AccountRole.State.CONFLICT)
            conflicts.append(role.conflict)
            return
        active = role.role.state == AccountRole.State.ACTIVE
        state = AccountRole.State.ACTIVE if active else AccountRole.State.PROVISIONED
        provisioning.provisioned_record(role, state=state)

    # The account's roles are new as a rule: CreateRole first, reading only what exists already.
    matched = provisioning.make_roles_match(account=run.account, roles=_roles(run.account), clients=run.clients,
                                            credentials=credentials, likely_new=True, conflicts_allowed=True,
                                            each=record)
    outcomes = {role.role.role_name: role.outcome for role in matched}
    if conflicts:
        return Outcome.failed(
            AwsError(
                "RoleConflict",
                " | ".join(error.raw_message for error in conflicts),
                " ".join(error.plain_message for error in conflicts),
                False,
            ),
            roles=outcomes,
        )
    return Outcome.succeeded(roles=outcomes)


def verify_roles(run: StepRun) -> Outcome:
    credentials = _member_credentials(run)
    if isinstance(credentials, Outcome):
        return credentials
    roles = _roles(run.account)
    problems = provisioning.roles_read_back(roles=roles, clients=run.clients, credentials=credentials)
    if not problems:
        return Outcome.succeeded(verified=sorted(role.role_name for role in roles))
    listed = "; ".join(f"{name}: {', '.join(found)}" for name, found in sorted(problems.items()))
    tries = int(run.step.detail.get("verify_tries", 0)) + 1
    if tries < VERIFY_ATTEMPTS:
        # IAM is eventually consistent: a role written seconds ago may not read back yet.
        return Outcome.waiting(
            10, f"Waiting for IAM to show the roles as written ({listed}).", problems=problems, verify_tries=tries
        )
    return Outcome.failed(
        AwsError(
            "RoleVerificationFailed",
            listed,
            f"The roles in the account are not what Switchyard created: {listed}. Someone may have changed "
            "them. Retry the role-creation step to bring them back to their templates.",
            False,
        ),
        problems=problems,
    )


def publish_links(run: StepRun) -> Outcome:
    with transaction.atomic():
        roles = list(
            AccountRole.objects.select_for_update()
            .filter(account=run.account)
            .exclude(state=AccountRole.State.REMOVED)
            .order_by("template_id")
        )
        published = []
        for role in roles:
            if role.state != AccountRole.State.ACTIVE or role.activated_at is None:
                role.state = AccountRole.State.ACTIVE
                role.activated_at = role.activated_at or run.now
                role.save(update_fields=["state", "activated_at", "updated_at"])
                published.append(role.arn)
        if published:
            switchroles_services.enforcement_sync_schedule(reason=f"Roles published for {run.account}")
    return Outcome.succeeded(published=published)


def _adoption() -> Any:
    from onboarding import adoption

    return adoption


def _handback_revoke_grants(run: StepRun) -> Outcome:
    from onboarding import handback

    return handback.revoke_grants(run)


def _handback_delete_roles(run: StepRun) -> Outcome:
    from onboarding import handback

    return handback.delete_roles(run)


def _handback_leave_organization(run: StepRun) -> Outcome:
    from onboarding import handback

    return handback.leave_organization(run)


def _handback_record(run: StepRun) -> Outcome:
    from onboarding import handback

    return handback.record_handback(run)


def _root_step(name: str) -> Callable[[StepRun], Outcome]:
    def handler(run: StepRun) -> Outcome:
        from onboarding import root_steps

        return getattr(root_steps, name)(run)  # type: ignore[no-any-return]

    handler.__name__ = name
    return handler


HANDLERS: dict[str, Callable[[StepRun], Outcome]] = {
    Kind.CREATE_ACCOUNT: steps_creation.create_account,
    Kind.AWAIT_CREATION: steps_creation.await_creation,
    Kind.INVITE_ACCOUNT: invite_account,
    Kind.AWAIT_HANDSHAKE: await_handshake,
    Kind.AWAIT_ACCESS_ROLE: await_access_role,
    Kind.ASSUME_ACCESS_ROLE: assume_access_role,
    Kind.PROVISION_ROLES: provision_roles,
    Kind.VERIFY_ROLES: verify_roles,
    Kind.PUBLISH_LINKS: publish_links,
    Kind.DISCOVER_ROLES: lambda run: _adoption().discover_roles(run),
    # Hand-back: the handlers live in onboarding.handback (imported when run: it uses switchroles' services).
    Kind.REVOKE_GRANTS: _handback_revoke_grants,
    Kind.DELETE_ROLES: _handback_delete_roles,
    Kind.LEAVE_ORGANIZATION: _handback_leave_organization,
    Kind.RECORD_HANDBACK: _handback_record,
    # Root credentials: the handlers live in onboarding.root_steps.
    Kind.ROOT_DELETE_PASSWORD: _root_step("delete_password"),
    Kind.ROOT_DELETE_ACCESS_KEYS: _root_step("delete_access_keys"),
    Kind.ROOT_DELETE_CERTIFICATES: _root_step("delete_certificates"),
    Kind.ROOT_DEACTIVATE_MFA: _root_step("deactivate_mfa"),
    Kind.ROOT_VERIFY_REMOVED: _root_step("verify_removed"),
    Kind.ROOT_CHECK_NONE: _root_step("check_none"),
    Kind.ROOT_ENABLE_RECOVERY: _root_step("enable_recovery"),
}


# --------------------------------------------------------------------------------------------------
# What a manager should do about a step
# --------------------------------------------------------------------------------------------------


def next_action_for(step: OnboardingStep, account: AwsAccount) -> str:
    """One sentence telling a manager what to do next about ``step``."""
    if step.status == Status.FAILED:
        if account.state in (State.DECLINED, State.EXPIRED, State.CANCELLED):
            return "Nothing more will happen for this account. Onboard it again if the client still wants to join."
        if step.kind == Kind.AWAIT_CREATION:
            return ("Fix what the message describes, then “Retry this step”: Switchyard sends a new account-creation "
                    "request. Or cancel this account.")
        if step.kind == Kind.LEAVE_ORGANIZATION:
            return ("Tell the client what the message asks of them. Once they have done it, “Retry this step”: "
                    "grants and roles already dealt with are not touched again.")
        if step.kind in ROOT_REMOVAL_PATH:
            return ("Fix what the message describes (the Root access page lists what the workers need), then "
                    "“Retry this step”; credentials already removed are not touched again.")
        if step.kind in HANDBACK_PATH:
            return "Fix what the message describes, then “Retry this step”; the steps already done are not repeated."
        if step.last_error_code == "RoleConflict":
            return ("Rename the template's role, or have the client delete or align the existing role, then "
                    "“Retry this step”.")
        return "Fix what the message describes, then “Retry this step”."
    if step.status == Status.WAITING and step.kind == Kind.AWAIT_ACCESS_ROLE:
        return ("Send the client the CloudFormation template below. Once they have deployed it, use "
                "“Verify access now”.")
    if step.status == Status.WAITING and step.kind == Kind.AWAIT_HANDSHAKE:
        return "Ask the client to accept the invitation in their AWS console (Organizations → Invitations)."
    if step.status in (Status.WAITING, Status.RUNNING, Status.PENDING):
        return "Nothing: Switchyard carries on by itself."
    return ""


def due_at(step: OnboardingStep) -> datetime | None:
    return step.next_run_at


def is_due(step: OnboardingStep, now: datetime | None = None) -> bool:
    moment = now or timezone.now()
    if step.status == Status.WAITING:
        # A second of slack: a countdown may fire a little early.
        return step.next_run_at is None or step.next_run_at <= moment + timedelta(seconds=1)
    if step.status == Status.RUNNING:
        return step.lease_expires_at is None or step.lease_expires_at <= moment
    return step.status == Status.PENDING
