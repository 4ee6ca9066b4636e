"""Writes for onboarding: a manager's request, and the manager's retry, cancel and "verify access
now" actions. Every state change writes an audit event.

The state machine itself (paths, handlers, outcomes) is in :mod:`onboarding.workflow`; the workers'
advance of it in :mod:`onboarding.advance`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from onboarding import creation_queue, selectors, workflow
from onboarding.advance import _account_state, _enqueue_advance
from onboarding.models import SLUG_VALIDATOR, AwsAccount, Client, OnboardingStep
from portal import aws, steps
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory, default_client_factory
from portal.people.models import User
from switchroles.links import SWITCH_ROLE_NAME_MAX_CHARS, display_name_for
from switchroles.models import AccountRole, RoleTemplate

logger = logging.getLogger(__name__)

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
State = AwsAccount.State

ACCOUNT_ID_RE = re.compile(r"\A[0-9]{12}\Z")
# CreateAccount's AccountName: printable ASCII.
ACCOUNT_NAME_RE = re.compile(r"\A[\x20-\x7E]{1,50}\Z")
ROLE_PATH_ROOT = "/switchyard/"
# Step detail that describes one run, not the step: dropped when a manager retries it.
RUN_ONLY_DETAIL = frozenset({"note", "transient_failures", "verify_tries"})


def role_path_for(client: Client | str) -> str:
    slug = client if isinstance(client, str) else client.slug
    return f"{ROLE_PATH_ROOT}{slug}/"


# --------------------------------------------------------------------------------------------------
# The manager's request
# --------------------------------------------------------------------------------------------------


def _input_errors(
    *,
    client: Client | None,
    client_name: str,
    client_slug: str,
    origin: str,
    account_name: str,
    root_email: str,
    account_id: str,
    templates: Sequence[RoleTemplate],
    reason: str,
) -> dict[str, list[str]]:
    """Everything that can be checked without the database's other rows or AWS."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    slug = client.slug if client is not None else client_slug
    if client is None:
        if not client_name.strip():
            add("client_name", "Enter the client's name (or choose an existing client).")
        elif len(client_name) > 100 or any(not ch.isprintable() for ch in client_name):
            add("client_name", "Use at most 100 printable characters.")
        try:
            SLUG_VALIDATOR(client_slug)
        except ValidationError as exc:
            add("client_slug", exc.messages[0] if client_slug else "Enter a short name for the client, e.g. acme.")
    if origin not in AwsAccount.Origin.values:
        add("origin", "Choose whether to create a new account or invite an existing one.")
    if not ACCOUNT_NAME_RE.match(account_name):
        add("account_name", "Use 1–50 characters: letters, digits, spaces and ordinary punctuation.")
    if origin == AwsAccount.Origin.CREATED:
        if not 6 <= len(root_email) <= 64:
            add("root_email", "An account's root e-mail address has 6–64 characters.")
        else:
            try:
                validate_email(root_email)
            except ValidationError:
                add("root_email", "Enter a valid e-mail address.")
    if origin == AwsAccount.Origin.INVITED and not ACCOUNT_ID_RE.match(account_id):
        add("account_id", "An AWS account id is exactly 12 digits.")
    if not templates:
        add("templates", "Choose at least one role template.")
    for template in templates:
        if not template.is_active:
            add("templates", f"The template {template.name} is retired.")
        elif slug and len(f"{role_path_for(slug)[1:]}{template.role_name}") > SWITCH_ROLE_NAME_MAX_CHARS:
            add(
                "templates",
                f"The role path and name switchyard/{slug}/{template.role_name} would be longer than the "
                f"{SWITCH_ROLE_NAME_MAX_CHARS} characters the console's switch-role form takes: use a shorter "
                "client short name.",
            )
    if not reason.strip():
        add("reason", "Say why this account is being onboarded (for the audit log).")
    elif len(reason) > 1000:
        add("reason", "Use at most 1,000 characters.")
    return errors


def _database_errors(
    *, client: Client | None, client_name: str, client_slug: str, origin: str, root_email: str, account_id: str
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if client is None:
        if Client.objects.filter(name__iexact=client_name).exists():
            errors["client_name"] = ["A client with this name exists already: choose it from the list."]
        if Client.objects.filter(slug=client_slug).exists():
            errors["client_slug"] = ["Another client uses this short name."]
    if origin == AwsAccount.Origin.CREATED:
        taken = AwsAccount.objects.filter(root_email__iexact=root_email).select_related("client").first()
        if taken is not None:
            errors["root_email"] = [f"The account {taken} ({taken.get_state_display()}) already uses this address."]
    else:
        taken = AwsAccount.objects.filter(account_id=account_id).select_related("client").first()
        if taken is not None:
            errors["account_id"] = [f"Switchyard already has this account: {taken} ({taken.get_state_display()})."]
    return errors


def account_name_taken(*, client: Client, account_name: str) -> bool:
    """True when ``client`` already has an account of this name (any case): two would give links that
    read the same. Handed-back and cancelled accounts do not count."""
    return (
        AwsAccount.objects.filter(client=client, name__iexact=account_name.strip())
        .exclude(state__in=[State.HANDED_BACK, State.CANCELLED, State.DECLINED, State.EXPIRED])
        .exists()
    )


def _name_errors(*, client: Client | None, account_name: str) -> dict[str, list[str]]:
    if client is not None and account_name_taken(client=client, account_name=account_name):
        return {"account_name": [f"{client.name} already has an account named {account_name}: their links "
                                 "would read the same. Choose another name."]}
    return {}


def _organization_errors(
    *, clients: ClientFactory, origin: str, root_email: str, account_id: str
) -> dict[str, list[str]]:
    """Quota and accounts already in the Organization, from one read of the
    Organization (its accounts and its creations in progress). Raises AwsError."""
    errors: dict[str, list[str]] = {}
    organization = aws.organization_status(clients=clients)
    quota = organization.quota
    ours = selectors.onboarding_in_flight()
    limit = settings.SWITCHYARD_ORG_ACCOUNT_QUOTA
    if quota.accounts_in_org + ours.joining + 1 > limit:
        errors["origin"] = [
            f"The Organization would exceed its quota of {limit} accounts ({quota.accounts_in_org} in it, "
            f"{ours.joining} on the way). Ask AWS for a higher quota in Service Quotas, or close unused accounts."
        ]
    # Creations in flight are not a reason to refuse: the account queues for a creation slot
    # (onboarding.creation_queue) and its timeline says how many are ahead of it.
    members = organization.members
    if origin == AwsAccount.Origin.CREATED:
        if any(member.email.casefold() == root_email.casefold() for member in members):
            errors.setdefault("root_email", []).append(
                "An account in the Organization already uses this address. Choose another one."
            )
    elif any(member.id == account_id for member in members):
        errors.setdefault("account_id", []).append(
            "This account is already a member of the Organization: adopt it instead (Clients → Adopt accounts "
            "already in the Organization)."
        )
    return errors


def onboarding_request(
    *,
    actor: User,
    origin: str,
    account_name: str,
    templates: Sequence[RoleTemplate],
    reason: str,
    client: Client | None = None,
    client_name: str = "",
    client_slug: str = "",
    root_email: str = "",
    account_id: str = "",
    request: HttpRequest | None = None,
    clients: ClientFactory | None = None,
    root_credentials: bool = False,
) -> AwsAccount:
    """Record a manager's request to onboard an account, and start the workers on it.

    ``root_credentials``: the onboarding ends by removing the root user's credentials (invited
    account) or by checking it has none (created account); see :func:`workflow.path_for`.

    Checks, in this order, and raises ``ValidationError`` with a message per form field
    (``client_name``, ``client_slug``, ``origin``, ``account_name``, ``root_email``, ``account_id``,
    ``templates``, ``reason``; ``__all__`` when AWS could not be asked) without writing anything:
    malformed input (no database or AWS call), duplicates in the database, then the Organization's
    account quota and duplicates among its accounts (the only AWS calls, all reads). Creations in
    flight do not refuse a request: the account waits for a creation slot (``onboarding.creation_queue``).

    Then one transaction creates the client (when ``client`` is None), the account (REQUESTED),
    one PENDING ``AccountRole`` per template, the steps of its path, and an audit event; a worker
    is asked to advance it once that commits. Two identical requests racing create one account:
    the second gets a field error.
    """
    root_email = root_email.strip().lower() if origin == AwsAccount.Origin.CREATED else ""
    account_id = account_id.strip() if origin == AwsAccount.Origin.INVITED else ""
    client_slug = client_slug.strip()
    client_name = client_name.strip()
    account_name = account_name.strip()
    values: dict[str, Any] = {
        "client": client, "client_name": client_name, "client_slug": client_slug, "origin": origin,
        "root_email": root_email, "account_id": account_id,
    }
    errors = _input_errors(account_name=account_name, templates=templates, reason=reason, **values)
    if errors:
        raise ValidationError(errors)
    errors = {**_database_errors(**values), **_name_errors(client=client, account_name=account_name)}
    if errors:
        raise ValidationError(errors)
    try:
        errors = _organization_errors(
            clients=clients or default_client_factory(), origin=origin, root_email=root_email, account_id=account_id
        )
    except AwsError as error:
        logger.warning("onboarding.request.aws_unavailable", extra={"code": error.code})
        raise ValidationError(
            {NON_FIELD_ERRORS: [
                f"Switchyard could not check the Organization in AWS, so nothing was sent: {error.plain_message} "
                f"(AWS said: {error.code}). Try again in a moment."
            ]}
        ) from error
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic(durable=True):
            return _write_request(
                actor=actor, account_name=account_name, templates=templates, reason=reason, request=request,
                root_credentials=root_credentials, **values,
            )
    except IntegrityError as exc:
        # Another request for the same client, address or account committed between our checks and
        # our write: the database's unique constraints decided, and this one lost.
        errors = _database_errors(**values)
        if not errors:
            raise
        raise ValidationError(errors) from exc


def _write_request(
    *,
    actor: User,
    client: Client | None,
    client_name: str,
    client_slug: str,
    origin: str,
    account_name: str,
    root_email: str,
    account_id: str,
    templates: Sequence[RoleTemplate],
    reason: str,
    request: HttpRequest | None,
    root_credentials: bool = False,
) -> AwsAccount:
    now = timezone.now()
    if client is None:
        client = Client(name=client_name, slug=client_slug, created_by=actor)
        client.full_clean(validate_unique=False)
        client.save()
        audit_record(action="onboarding.client.created", actor=actor, target=client, request=request,
                     details={"name": client.name, "slug": client.slug})
    account = AwsAccount(
        client=client,
        name=account_name,
        account_id=account_id or None,
        root_email=root_email or None,
        origin=origin,
        requested_by=actor,
        reason=reason,
    )
    account.full_clean(validate_unique=False, validate_constraints=False)
    account.save()
    roles = []
    for template in templates:
        role = AccountRole(
            account=account,
            template=template,
            role_path=role_path_for(client),
            role_name=template.role_name,
            display_name=display_name_for(client.name, account.name, template.name),
            color=template.console_color,
        )
        role.full_clean(validate_unique=False, validate_constraints=False)
        roles.append(role)
    AccountRole.objects.bulk_create(roles)
    OnboardingStep.objects.bulk_create(
        OnboardingStep(
            account=account,
            position=position,
            kind=kind,
            next_run_at=(now + steps.redrive_after()) if position == 1 else None,
        )
        for position, kind in enumerate(workflow.path_for(origin, root_credentials=root_credentials), start=1)
    )
    audit_record(
        action="onboarding.requested",
        actor=actor,
        target=account,
        request=request,
        details={
            "client": client.slug,
            "origin": origin,
            "account_name": account.name,
            "root_email": account.root_email,
            "account_id": account.account_id,
            "templates": [template.name for template in templates],
            "reason": reason,
            "root_credentials": "remove" if root_credentials and origin == AwsAccount.Origin.INVITED
            else "verify none" if root_credentials else "leave",
        },
    )
    _enqueue_advance(account.pk)
    return account


# --------------------------------------------------------------------------------------------------
# Manager actions
# --------------------------------------------------------------------------------------------------


def onboarding_step_retry(*, step: OnboardingStep, actor: User, request: HttpRequest | None = None) -> OnboardingStep:
    """Put a failed step back to pending and ask a worker to run it again.

    Only the failed current step of an account that needs attention can be retried (else
    ``ValidationError``). Retrying a failed account creation also resets the creation step, so a
    new CreateAccount is sent (the failed request is remembered and never adopted again); roles in
    conflict go back to pending. Writes an audit event.
    """
    with transaction.atomic(durable=True):
        account = AwsAccount.objects.select_for_update().get(pk=step.account_id)
        steps_locked_for_advance = list(
            OnboardingStep.objects.select_for_update().filter(account=account).order_by("position")
        )
        step = next(s for s in steps_locked_for_advance if s.pk == step.pk)
        if step.status != Status.FAILED or account.state != State.FAILED:
            raise ValidationError("Only a failed step of an account that needs attention can be retried.")
        previous = {"code": step.last_error_code, "message": step.last_error_message, "at": str(step.finished_at)}
        to_reset = [step]
        if step.kind == Kind.AWAIT_CREATION and account.create_request_id:
            creation = next(s for s in steps_locked_for_advance if s.kind == Kind.CREATE_ACCOUNT)
            creation.detail = {
                "abandoned_request_ids": [*creation.detail.get("abandoned_request_ids", []),
                                          account.create_request_id],
            }
            creation.attempts = 0
            to_reset.insert(0, creation)
            account.create_request_id = ""
            account.save(update_fields=["create_request_id", "updated_at"])
        now = timezone.now()
        for target in to_reset:
            history = [*target.detail.get("previous_errors", []), previous][-5:] if target is step else None
            target.status = Status.PENDING
            target.lease_expires_at = None
            target.finished_at = None
            target.started_at = None
            target.next_run_at = now + steps.redrive_after()
            target.last_error_code = target.last_error_raw = target.last_error_message = ""
            target.detail = {k: v for k, v in target.detail.items() if k not in RUN_ONLY_DETAIL}
            if history is not None:
                target.detail["previous_errors"] = history
            target.save(update_fields=["status", "lease_expires_at", "finished_at", "started_at", "next_run_at",
                                       "last_error_code", "last_error_raw", "last_error_message", "detail",
                                       "attempts"])
        AccountRole.objects.filter(
            account=account, state__in=[AccountRole.State.CONFLICT, AccountRole.State.FAILED]
        ).update(state=AccountRole.State.PENDING)
        _account_state(account, workflow.ACCOUNT_STATE_DURING[to_reset[0].kind])
        audit_record(action="onboarding.step.retried", actor=actor, target=account, request=request,
                     details={"step": step.kind, "previous_error": previous})
        _enqueue_advance(account.pk)
    return step


def account_cancellable(account: AwsAccount, steps: Sequence[OnboardingStep]) -> bool:
    """True while nothing was created in, or joined, the Organization for this account."""
    if account.state in AwsAccount.FINAL_STATES:
        return False
    by_kind = {step.kind: step for step in steps}
    if account.origin == AwsAccount.Origin.CREATED:
        if account.account_id:
            return False
        if account.state == State.REQUESTED or _queued_for_a_slot(account, by_kind.get(Kind.CREATE_ACCOUNT)):
            return True
        if account.state != State.FAILED:
            return False
        failed = next((s for s in steps if s.status == Status.FAILED), None)
        if failed is None:
            return False
        # A creation AWS reported as FAILED, or a CreateAccount AWS refused outright.
        return failed.kind == Kind.AWAIT_CREATION or (
            failed.kind == Kind.CREATE_ACCOUNT and not _looks_transient(failed.last_error_code)
        )
    if account.origin == AwsAccount.Origin.ADOPTED:
        # A member of the Organization already: cancellable until Switchyard starts writing roles in it.
        provision = by_kind.get(Kind.PROVISION_ROLES)
        return provision is not None and provision.status == Status.PENDING and provision.attempts == 0
    handshake = by_kind.get(Kind.AWAIT_HANDSHAKE)
    if handshake is not None and handshake.status == Status.SUCCEEDED:
        return False
    invite = by_kind.get(Kind.INVITE_ACCOUNT)
    return not (invite is not None and invite.status == Status.RUNNING)


def _queued_for_a_slot(account: AwsAccount, creation: OnboardingStep | None) -> bool:
    """Still waiting for a creation slot: nothing was sent to AWS for this account."""
    return (
        creation is not None and not account.create_request_id and creation.status == Status.WAITING
        and bool(creation.detail.get("waiting_for_slot")) and not creation.detail.get("sending")
    )


def _looks_transient(code: str) -> bool:
    return aws.may_pass_by_itself(code)


def onboarding_cancel(
    *, account: AwsAccount, actor: User, request: HttpRequest | None = None, clients: ClientFactory | None = None
) -> AwsAccount:
    """Cancel an account's onboarding before anything exists in AWS for it: before it was created
    (or after AWS refused to create it), or while its invitation is unanswered (the invitation is
    withdrawn with CancelHandshake first). Raises ``ValidationError`` otherwise, or when AWS
    refuses to withdraw the invitation (e.g. the client has just accepted it)."""
    steps = list(account.steps.order_by("position"))
    if not account_cancellable(account, steps):
        raise ValidationError("This account can no longer be cancelled: it exists in (or joined) the Organization.")
    handshake_cancelled = False
    if account.origin == AwsAccount.Origin.INVITED and account.handshake_id:
        factory = clients or default_client_factory()
        try:
            aws.cancel_handshake(clients=factory, handshake_id=account.handshake_id)
            handshake_cancelled = True
        except AwsError as error:
            if error.code.removesuffix("Exception") not in ("InvalidHandshakeTransition", "HandshakeAlreadyInState"):
                raise ValidationError(f"{error.plain_message} (AWS said: {error.code})") from error
            current = aws.describe_handshake(clients=factory, handshake_id=account.handshake_id)
            if current.state == aws.HANDSHAKE_ACCEPTED:
                raise ValidationError("The client has just accepted the invitation: it can no longer be cancelled.") \
                    from error
    with transaction.atomic(durable=True):
        locked = AwsAccount.objects.select_for_update().get(pk=account.pk)
        steps = list(OnboardingStep.objects.select_for_update().filter(account=locked).order_by("position"))
        if not handshake_cancelled and not account_cancellable(locked, steps):
            raise ValidationError("This account can no longer be cancelled: a worker has just started on it.")
        for step in steps:
            if step.status != Status.SUCCEEDED:
                step.status = Status.CANCELLED
                step.lease_expires_at = None
                step.next_run_at = None
                step.save(update_fields=["status", "lease_expires_at", "next_run_at"])
        _account_state(locked, State.CANCELLED)
        creation_queue.creation_slot_release(account_pk=locked.pk)
        audit_record(action="onboarding.account.cancelled", actor=actor, target=locked, request=request,
                     details={"handshake_cancelled": handshake_cancelled})
    return locked


def access_role_verify_now(*, account: AwsAccount, actor: User, request: HttpRequest | None = None) -> OnboardingStep:
    """For an invited account waiting for its access role: check for it now instead of at the next
    poll. Raises ``ValidationError`` when the account is not waiting for it."""
    with transaction.atomic(durable=True):
        locked = AwsAccount.objects.select_for_update().get(pk=account.pk)
        step = (
            OnboardingStep.objects.select_for_update()
            .filter(account=locked, kind=Kind.AWAIT_ACCESS_ROLE)
            .first()
        )
        if (
            locked.origin != AwsAccount.Origin.INVITED
            or step is None
            or locked.state != State.AWAITING_ACCESS_ROLE
            or step.status not in (Status.WAITING, Status.PENDING)
        ):
            raise ValidationError("This account is not waiting for its access role.")
        step.next_run_at = timezone.now()
        step.save(update_fields=["next_run_at"])
        audit_record(action="onboarding.access_role.verify_requested", actor=actor, target=locked, request=request)
        _enqueue_advance(locked.pk)
    return step


def access_role_set(
    *, account: AwsAccount, role_name: str, actor: User, request: HttpRequest | None = None
) -> AwsAccount:
    """Change the role Switchyard assumes in the account (empty: the default for its origin), e.g.
    when the one it tried trusts someone else. Only before the account is Active and while no step
    of it runs; raises ``ValidationError`` (field ``access_role_name``) otherwise or for a name IAM
    would refuse. Audited; a failed step is then retried by the manager as usual."""
    role_name = role_name.strip()
    if role_name and not aws.ROLE_NAME_RE.match(role_name):
        raise ValidationError({"access_role_name": ["An IAM role name has 1–64 letters, digits and +=,.@_-."]})
    with transaction.atomic(durable=True):
        locked = AwsAccount.objects.select_for_update().get(pk=account.pk)
        running = OnboardingStep.objects.filter(account=locked, status=Status.RUNNING).exists()
        if locked.state in AwsAccount.FINAL_STATES or locked.state == State.HANDING_BACK or running:
            raise ValidationError({"access_role_name": [
                "The access role can only change while the account is being brought in and no step is running."]})
        previous = locked.access_role
        locked.access_role_name = role_name
        locked.clean_fields(exclude=[f.name for f in AwsAccount._meta.fields if f.name != "access_role_name"])
        locked.save(update_fields=["access_role_name", "updated_at"])
        audit_record(action="onboarding.access_role.changed", actor=actor, target=locked, request=request,
                     details={"from": previous, "to": locked.access_role})
    return locked
