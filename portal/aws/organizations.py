"""AWS Organizations: creating and listing accounts, invitations (handshakes), hand-back.

Every public function takes ``clients`` (a :class:`portal.aws.clients.ClientFactory`) keyword-only,
returns plain frozen dataclasses and raises :class:`portal.aws.errors.AwsError` for anything AWS (or
the network on the way to it) refused. Programming mistakes (a malformed account id) raise
``ValueError`` before anything is sent: forms validate those first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from botocore.exceptions import ClientError

from portal.aws.clients import ClientFactory, organizations_client

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_organizations import OrganizationsClient
from portal.aws.errors import AwsError, error_code, translating
from portal.aws.limits import (
    ACCOUNT_EMAIL_MAX_CHARS,
    ACCOUNT_EMAIL_MIN_CHARS,
    ACCOUNT_NAME_MAX_CHARS,
    ACCOUNT_NAME_MIN_CHARS,
    HANDSHAKE_NOTES_MAX_CHARS,
    require_account_id,
)
from portal.aws.messages import RETRYABLE_FAILURE_REASONS, failure_message

logger = logging.getLogger(__name__)

# CreateAccountStatus.State
CREATION_IN_PROGRESS: Final = "IN_PROGRESS"
CREATION_SUCCEEDED: Final = "SUCCEEDED"
CREATION_FAILED: Final = "FAILED"

# Handshake.State
HANDSHAKE_REQUESTED: Final = "REQUESTED"
HANDSHAKE_OPEN: Final = "OPEN"
HANDSHAKE_ACCEPTED: Final = "ACCEPTED"
HANDSHAKE_DECLINED: Final = "DECLINED"
HANDSHAKE_CANCELED: Final = "CANCELED"
HANDSHAKE_EXPIRED: Final = "EXPIRED"
HANDSHAKE_FINAL_STATES: Final = frozenset(
    {HANDSHAKE_ACCEPTED, HANDSHAKE_DECLINED, HANDSHAKE_CANCELED, HANDSHAKE_EXPIRED}
)


@dataclass(frozen=True)
class CreateAccountRequest:
    """One CreateAccount request as AWS reports it.

    ``request_id`` is the ``car-…`` id; it is None only when :func:`find_account_creation`
    found the account by e-mail but AWS no longer holds (or never held) its creation request.
    ``account_id`` is set once AWS assigned one (always when SUCCEEDED); ``failure_reason`` only
    when FAILED.
    """

    request_id: str | None
    state: str
    account_id: str | None = None
    failure_reason: str | None = None
    account_name: str = ""
    requested_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def is_finished(self) -> bool:
        return self.state != CREATION_IN_PROGRESS

    @property
    def failure_message(self) -> str | None:
        return failure_message(self.failure_reason) if self.state == CREATION_FAILED else None


@dataclass(frozen=True)
class Account:
    id: str
    arn: str
    email: str
    name: str
    state: str
    joined_method: str
    joined_at: datetime | None


@dataclass(frozen=True)
class Organization:
    id: str
    arn: str
    management_account_id: str
    management_account_email: str
    feature_set: str


class QuotaStatus(NamedTuple):
    accounts_in_org: int
    creations_in_progress: int


def _creation_request(status: Mapping[str, Any]) -> CreateAccountRequest:
    return CreateAccountRequest(
        request_id=status["Id"],
        state=status["State"],
        account_id=status.get("AccountId"),
        failure_reason=status.get("FailureReason"),
        account_name=status.get("AccountName", ""),
        requested_at=status.get("RequestedTimestamp"),
        completed_at=status.get("CompletedTimestamp"),
    )


def _account(raw: Mapping[str, Any]) -> Account:
    return Account(
        id=raw["Id"],
        arn=raw.get("Arn", ""),
        email=raw.get("Email", ""),
        name=raw.get("Name", ""),
        # ``State`` replaces the deprecated ``Status``; older endpoints (and moto) may send either.
        state=raw.get("State") or raw.get("Status") or "",
        joined_method=raw.get("JoinedMethod", ""),
        joined_at=raw.get("JoinedTimestamp"),
    )


def creation_failure_error(request: CreateAccountRequest) -> AwsError:
    """The :class:`AwsError` to record for a FAILED creation request: ``code`` is the raw
    ``FailureReason``; retryable (with a *new* CreateAccount) only for AWS-side failures."""
    reason = request.failure_reason or "UNKNOWN"
    return AwsError(
        reason,
        f"CreateAccount {request.request_id} failed: {reason}",
        failure_message(reason),
        reason in RETRYABLE_FAILURE_REASONS,
    )


def _validate_account_request(email: str, account_name: str) -> None:
    if not ACCOUNT_EMAIL_MIN_CHARS <= len(email) <= ACCOUNT_EMAIL_MAX_CHARS or "@" not in email:
        raise ValueError("An account e-mail address must have 6–64 characters and an @.")
    if not ACCOUNT_NAME_MIN_CHARS <= len(account_name) <= ACCOUNT_NAME_MAX_CHARS:
        raise ValueError("An account name must have 1–50 characters.")


@translating()
def start_account_creation(
    *, clients: ClientFactory, email: str, account_name: str, tags: Mapping[str, str]
) -> CreateAccountRequest:
    """Send CreateAccount once and return the request AWS recorded (usually IN_PROGRESS).

    CreateAccount is not idempotent: record ``request_id`` before doing anything else, and on
    any retry (including after a retryable AwsError from this call, which may have reached AWS)
    call :func:`find_account_creation` instead of this. The account gets AWS's default
    ``OrganizationAccountAccessRole``.
    """
    _validate_account_request(email, account_name)
    org = organizations_client(clients, retries=False)
    kwargs: dict[str, Any] = {"Email": email, "AccountName": account_name}
    if tags:
        kwargs["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    response = org.create_account(**kwargs)
    request = _creation_request(response["CreateAccountStatus"])
    logger.info(
        "aws.account_creation.started", extra={"request_id": request.request_id, "state": request.state}
    )
    return request


@translating()
def describe_account_creation(*, clients: ClientFactory, request_id: str) -> CreateAccountRequest:
    """The current state of a CreateAccount request (IN_PROGRESS, SUCCEEDED or FAILED).

    SUCCEEDED does not mean the new account's IAM is ready: :func:`assume_access_role` may keep
    failing (retryably) for minutes after it.
    """
    org = organizations_client(clients)
    response = org.describe_create_account_status(CreateAccountRequestId=request_id)
    return _creation_request(response["CreateAccountStatus"])


def _all_creation_requests(org: OrganizationsClient, states: Iterable[str] | None = None) -> list[CreateAccountRequest]:
    kwargs: dict[str, Any] = {"States": list(states)} if states is not None else {}
    return [
        _creation_request(status)
        for page in org.get_paginator("list_create_account_status").paginate(**kwargs)
        for status in page.get("CreateAccountStatuses", [])
    ]


def _all_accounts(org: OrganizationsClient) -> list[Account]:
    return [
        _account(raw)
        for page in org.get_paginator("list_accounts").paginate()
        for raw in page.get("Accounts", [])
    ]


def _latest(requests: Iterable[CreateAccountRequest]) -> CreateAccountRequest | None:
    def key(request: CreateAccountRequest) -> float:
        return request.requested_at.timestamp() if request.requested_at is not None else 0.0

    ordered = sorted(requests, key=key)
    return ordered[-1] if ordered else None


@translating()
def find_account_creation(
    *,
    clients: ClientFactory,
    email: str,
    account_name: str,
    requested_after: datetime | None = None,
) -> CreateAccountRequest | None:
    """Reconcile after a crash or a lost answer: the CreateAccount request (or account) that
    already exists for this e-mail/name, or None when it is safe to send CreateAccount.

    Reads every page of ListAccounts and of ListCreateAccountStatus (all states), never writes.
    In order:

    1. An account in the Organization with this e-mail (case-insensitive): its SUCCEEDED request
       (``request_id`` None if AWS no longer keeps it: requests are kept for 90 days).
    2. Else the latest IN_PROGRESS request named ``account_name`` (statuses carry no e-mail).
    3. Else the latest SUCCEEDED request with this name whose account ListAccounts does not show
       yet (it lags behind), then the latest FAILED one (so the caller shows the failure
       instead of retrying blindly).

    ``requested_after`` (timezone-aware) ignores requests by name older than the caller's own
    first attempt, so an unrelated old failure with the same name is not mistaken for this one
    (it does not apply to step 1: an account with this e-mail is always reported).
    """
    org = organizations_client(clients)
    accounts = _all_accounts(org)
    requests = _all_creation_requests(org)

    wanted = email.casefold()
    existing = next((a for a in accounts if a.email.casefold() == wanted), None)
    if existing is not None:
        found = _latest(r for r in requests if r.account_id == existing.id)
        return found or CreateAccountRequest(
            request_id=None,
            state=CREATION_SUCCEEDED,
            account_id=existing.id,
            account_name=existing.name,
            completed_at=existing.joined_at,
        )

    named = [
        r
        for r in requests
        if r.account_name == account_name
        and (requested_after is None or r.requested_at is None or r.requested_at >= requested_after)
    ]
    known_ids = {a.id for a in accounts}
    in_progress = _latest(r for r in named if r.state == CREATION_IN_PROGRESS)
    not_listed_yet = _latest(
        r for r in named if r.state == CREATION_SUCCEEDED and r.account_id not in known_ids
    )
    failed = _latest(r for r in named if r.state == CREATION_FAILED)
    return in_progress or not_listed_yet or failed


@dataclass(frozen=True)
class OrganizationStatus:
    """The Organization as a manager's request must check it: every member account (management
    account, suspended and closing ones included) and the creation requests still in progress."""

    members: tuple[Account, ...]
    creations_in_progress: tuple[CreateAccountRequest, ...]

    @property
    def quota(self) -> QuotaStatus:
        return QuotaStatus(accounts_in_org=len(self.members), creations_in_progress=len(self.creations_in_progress))


@translating()
def organization_status(*, clients: ClientFactory) -> OrganizationStatus:
    """Members and creations in progress, read once: one walk of ListAccounts and one of
    ListCreateAccountStatus (IN_PROGRESS only), every page of each. Never writes."""
    org = organizations_client(clients)
    return OrganizationStatus(
        members=tuple(_all_accounts(org)),
        creations_in_progress=tuple(_all_creation_requests(org, states=[CREATION_IN_PROGRESS])),
    )


def organization_quota_status(*, clients: ClientFactory) -> QuotaStatus:
    """``(accounts_in_org, creations_in_progress)`` to check against the quotas before calling
    CreateAccount. Every account ListAccounts returns counts, suspended/closing ones included
    (AWS counts closed accounts against the quota for 90 days); the management account too.
    (:func:`organization_status` gives the members themselves from the same reads.)"""
    return organization_status(clients=clients).quota


@translating()
def list_accounts(*, clients: ClientFactory) -> tuple[Account, ...]:
    """Every account in the Organization (all pages), management account included."""
    return tuple(_all_accounts(organizations_client(clients)))


@translating()
def describe_organization(*, clients: ClientFactory) -> Organization:
    """The Organization the main account belongs to; ``management_account_id`` is the account
    that console roles must trust."""
    raw = organizations_client(clients).describe_organization()["Organization"]
    return Organization(
        id=raw["Id"],
        arn=raw.get("Arn", ""),
        management_account_id=raw["MasterAccountId"],
        management_account_email=raw.get("MasterAccountEmail", ""),
        feature_set=raw.get("FeatureSet", ""),
    )


@translating()
def remove_account_from_organization(*, clients: ClientFactory, account_id: str) -> bool:
    """Remove a member account from the Organization (hand-back).

    Returns True when this call removed it, False when it was no longer a member (so a retried
    task is safe). Refusals are not hidden: an account without its own payment method, support
    plan or verified contact raises a non-retryable AwsError (``ConstraintViolationException``)
    whose ``reason`` and ``plain_message`` say what the client must do first.
    """
    require_account_id(account_id)
    org = organizations_client(clients)
    try:
        org.remove_account_from_organization(AccountId=account_id)
    except ClientError as exc:
        if error_code(exc).removesuffix("Exception") == "AccountNotFound":
            return False
        raise
    logger.info("aws.account.removed", extra={"account_id": account_id})
    return True


# --------------------------------------------------------------------------------------------------
# Organizations: invitations
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Handshake:
    """An invitation. ``state``: REQUESTED/OPEN (waiting for the client), then ACCEPTED,
    DECLINED, CANCELED or EXPIRED (15 days after it was sent). Only the client can accept."""

    id: str
    state: str
    expires_at: datetime | None
    requested_at: datetime | None = None
    account_id: str | None = None
    arn: str = ""

    @property
    def is_final(self) -> bool:
        return self.state in HANDSHAKE_FINAL_STATES


def _handshake(raw: Mapping[str, Any]) -> Handshake:
    account_id = next((p["Id"] for p in raw.get("Parties", []) if p.get("Type") == "ACCOUNT"), None)
    return Handshake(
        id=raw["Id"],
        state=raw["State"],
        expires_at=raw.get("ExpirationTimestamp"),
        requested_at=raw.get("RequestedTimestamp"),
        account_id=account_id,
        arn=raw.get("Arn", ""),
    )


@translating()
def invite_account(*, clients: ClientFactory, account_id: str, notes: str) -> Handshake:
    """Invite an existing account into the Organization; returns the OPEN handshake to record
    and poll. An invitation already open for the account raises non-retryable
    ``DuplicateHandshakeException``; one to an account in another Organization raises
    ``HandshakeConstraintViolationException`` with reason ALREADY_IN_AN_ORGANIZATION."""
    require_account_id(account_id)
    if len(notes) > HANDSHAKE_NOTES_MAX_CHARS:
        raise ValueError(f"Invitation notes are limited to {HANDSHAKE_NOTES_MAX_CHARS} characters.")
    org = organizations_client(clients)
    kwargs: dict[str, Any] = {"Target": {"Id": account_id, "Type": "ACCOUNT"}}
    if notes:
        kwargs["Notes"] = notes
    handshake = _handshake(org.invite_account_to_organization(**kwargs)["Handshake"])
    logger.info("aws.handshake.sent", extra={"handshake_id": handshake.id, "account_id": account_id})
    return handshake


@translating()
def describe_handshake(*, clients: ClientFactory, handshake_id: str) -> Handshake:
    """The invitation's current state (see :class:`Handshake`)."""
    org = organizations_client(clients)
    return _handshake(org.describe_handshake(HandshakeId=handshake_id)["Handshake"])


@translating()
def find_open_handshake(*, clients: ClientFactory, account_id: str) -> Handshake | None:
    """Reconcile an invitation whose answer was lost: the open (REQUESTED or OPEN) invitation the
    Organization has for ``account_id``, or None when it is safe to invite. Reads every page of
    ListHandshakesForOrganization (invitations only), never writes."""
    require_account_id(account_id)
    org = organizations_client(clients)
    found = [
        _handshake(raw)
        for page in org.get_paginator("list_handshakes_for_organization").paginate(
            Filter={"ActionType": "INVITE"}
        )
        for raw in page.get("Handshakes", [])
    ]
    open_ones = [h for h in found if h.account_id == account_id and h.state in (HANDSHAKE_REQUESTED, HANDSHAKE_OPEN)]
    open_ones.sort(key=lambda h: h.requested_at.timestamp() if h.requested_at is not None else 0.0)
    return open_ones[-1] if open_ones else None


@translating()
def cancel_handshake(*, clients: ClientFactory, handshake_id: str) -> Handshake:
    """Withdraw an open invitation; returns it as CANCELED. Cancelling one the client already
    answered raises non-retryable ``InvalidHandshakeTransitionException``."""
    org = organizations_client(clients)
    return _handshake(org.cancel_handshake(HandshakeId=handshake_id)["Handshake"])
