"""Onboarding's AWS seam: Organizations, STS and member-account IAM.

Every function here takes ``clients`` (a :class:`portal.aws.ClientFactory`) as a keyword-only
argument, returns plain frozen dataclasses, and raises :class:`AwsError` for anything AWS (or the
network on the way to it) refused. ``AwsError.retryable`` is the only thing a task needs to decide
between "retry later with backoff" and "stop and show ``plain_message`` to a manager"; the raw
``code`` and ``raw_message`` are kept for the step's record and the audit log.

Programming mistakes (a role name AWS could never accept, a malformed account id) raise
``ValueError`` before anything is sent: forms validate those first.

No Django import at module level: this module is importable and testable without settings.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple, ParamSpec, TypeVar
from urllib.parse import unquote

import yaml
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from portal.aws import ClientFactory, TemporaryCredentials

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

ACCOUNT_ID_RE: Final = re.compile(r"^[0-9]{12}\Z")
ROLE_NAME_RE: Final = re.compile(r"^[\w+=,.@-]{1,64}\Z", re.ASCII)
POLICY_NAME_RE: Final = re.compile(r"^[\w+=,.@-]{1,128}\Z", re.ASCII)
# IAM: "/" alone, or "/" + printable ASCII segments + "/", at most 512 characters.
ROLE_PATH_RE: Final = re.compile(r"^/(?:[\x21-\x7E]+/)?\Z")

MANAGED_BY_TAG_KEY: Final = "managed-by"
MANAGED_BY_TAG_VALUE: Final = "switchyard"
DEFAULT_ACCESS_ROLE_NAME: Final = "OrganizationAccountAccessRole"
ADMINISTRATOR_ACCESS_ARN: Final = "arn:aws:iam::aws:policy/AdministratorAccess"

# IAM limits (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html).
TRUST_POLICY_MAX_CHARS: Final = 2048
INLINE_POLICIES_MAX_CHARS: Final = 10240
MANAGED_POLICIES_PER_ROLE: Final = 10
MIN_SESSION_SECONDS: Final = 3600
MAX_SESSION_SECONDS: Final = 43200
HANDSHAKE_NOTES_MAX_CHARS: Final = 1024

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


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class AwsError(Exception):
    """What AWS (or the network) refused, in the raw and in plain language.

    - ``code``: the raw AWS error code (``Throttling``, ``ConstraintViolationException``, …), a
      CreateAccount ``FailureReason``, a botocore error class name for network failures, or one of
      Switchyard's own (``RoleConflict``, ``RoleNotManaged``).
    - ``raw_message``: AWS's own text, kept for the record.
    - ``plain_message``: what happened and what to do next, fit to show a manager.
    - ``retryable``: True when the same call may succeed later without anyone changing anything
      (throttling, AWS-side failures, network, IAM not ready yet); retry those with backoff.
      False means a person has to act first: never retry those blindly.
    - ``reason``: the ``Reason`` field AWS adds to some errors (Organizations constraint
      violations), else None.

    Pickles and round-trips through Celery's JSON exception encoding (all state is in ``args``).
    """

    def __init__(
        self,
        code: str,
        raw_message: str,
        plain_message: str,
        retryable: bool,
        reason: str | None = None,
    ) -> None:
        super().__init__(code, raw_message, plain_message, retryable, reason)
        self.code = code
        self.raw_message = raw_message
        self.plain_message = plain_message
        self.retryable = retryable
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.plain_message}"


_TRY_AGAIN = "Switchyard will try again automatically."

# Keys are error codes without a trailing "Exception": IAM (query protocol) says "LimitExceeded",
# Organizations (JSON protocol) says "ConcurrentModificationException"; both are looked up here.
_ERRORS: Final[dict[str, tuple[bool, str]]] = {
    # Retryable: nothing is wrong with the request, AWS is busy or briefly unavailable.
    "Throttling": (True, f"AWS is throttling Switchyard's requests. {_TRY_AGAIN}"),
    "TooManyRequests": (True, f"AWS Organizations is throttling Switchyard's requests. {_TRY_AGAIN}"),
    "RequestLimitExceeded": (True, f"AWS is throttling Switchyard's requests. {_TRY_AGAIN}"),
    "SlowDown": (True, f"AWS asked Switchyard to slow down. {_TRY_AGAIN}"),
    "ServiceUnavailable": (True, f"AWS is temporarily unavailable. {_TRY_AGAIN}"),
    "InternalFailure": (True, f"AWS had an internal failure. {_TRY_AGAIN}"),
    "InternalError": (True, f"AWS had an internal error. {_TRY_AGAIN}"),
    "InternalServerError": (True, f"AWS had an internal error. {_TRY_AGAIN}"),
    "ServiceFailure": (True, f"AWS IAM had an internal failure. {_TRY_AGAIN}"),
    "Service": (True, f"AWS Organizations had an internal failure. {_TRY_AGAIN}"),
    "RequestTimeout": (True, f"AWS timed out answering. {_TRY_AGAIN}"),
    "PriorRequestNotComplete": (True, f"AWS is still working on an earlier request. {_TRY_AGAIN}"),
    "FinalizingOrganization": (
        True,
        f"The AWS Organization is still being set up (this can take up to an hour). {_TRY_AGAIN}",
    ),
    "EntityTemporarilyUnmodifiable": (
        True,
        f"AWS IAM cannot change this entity right now (it was just deleted or recreated). {_TRY_AGAIN}",
    ),
    "ExpiredToken": (True, f"The temporary credentials for the account expired. {_TRY_AGAIN}"),
    # Not retryable: a quota, a conflict or a mistake that a person has to look at.
    "LimitExceeded": (
        False,
        "An AWS IAM quota was reached (for example roles per account or policies per role). "
        "Remove unused ones or ask AWS for a higher quota, then try again.",
    ),
    "ConstraintViolation": (
        False,
        "AWS Organizations refused because a limit or precondition was not met. "
        "Check the reason shown, fix it, then try again.",
    ),
    "ConcurrentModification": (
        False,
        "Someone else was changing the same thing in AWS at the same moment. "
        "Wait a few minutes, check the current state, then try again.",
    ),
    "Validation": (False, "AWS rejected a value Switchyard sent. Check the details and correct them."),
    "ValidationError": (False, "AWS rejected a value Switchyard sent. Check the details and correct them."),
    "InvalidInput": (False, "AWS rejected a value Switchyard sent. Check the details and correct them."),
    "InvalidParameterValue": (
        False,
        "AWS rejected a value Switchyard sent. Check the details and correct them.",
    ),
    "MalformedPolicyDocument": (
        False,
        "AWS rejected a policy document as malformed. Check the role template's policies.",
    ),
    "PackedPolicyTooLarge": (False, "The session policy is too large for AWS. Make it smaller."),
    "AccessDenied": (
        False,
        "AWS denied Switchyard permission for this action. Check the IAM permissions of the "
        "identity Switchyard runs as (and any service control policy).",
    ),
    "AccessDeniedForDependency": (
        False,
        "AWS Organizations could not use a service it depends on (usually IAM permissions to "
        "create its service-linked role). Check the management account's permissions.",
    ),
    "UnrecognizedClient": (
        False,
        "AWS does not recognise Switchyard's credentials. Check its configuration.",
    ),
    "InvalidClientTokenId": (
        False,
        "AWS does not recognise Switchyard's credentials. Check its configuration.",
    ),
    "SignatureDoesNotMatch": (False, "AWS rejected Switchyard's request signature. Check its credentials."),
    "RegionDisabled": (False, "STS is not enabled in this region for the account. Enable the region first."),
    "EntityAlreadyExists": (False, "Something with this name already exists in AWS."),
    "NoSuchEntity": (False, "AWS has no such entity (it may have been deleted)."),
    "DeleteConflict": (
        False,
        "AWS cannot delete this while other things still use it. Remove what depends on it first.",
    ),
    "UnmodifiableEntity": (False, "AWS does not allow this entity to be changed (it is service-managed)."),
    "PolicyNotAttachable": (False, "This managed policy cannot be attached to a role."),
    "AWSOrganizationsNotInUse": (
        False,
        "Switchyard's main account is not in an AWS Organization. Create the Organization first.",
    ),
    "AccountNotFound": (False, "AWS Organizations does not know this account id. Check the id."),
    "AccountAlreadyClosed": (False, "This AWS account is already closed."),
    "AlreadyInOrganization": (False, "The main account is already in an Organization."),
    "DuplicateAccount": (False, "This account is already a member of the Organization."),
    "DuplicateHandshake": (
        False,
        "An invitation to this account is already open. Cancel it or wait for the client to answer.",
    ),
    "HandshakeConstraintViolation": (
        False,
        "AWS Organizations refused the invitation. Check the reason shown, fix it, then try again.",
    ),
    "HandshakeNotFound": (False, "AWS has no such invitation (it may be older than 30 days after closing)."),
    "HandshakeAlreadyInState": (False, "The invitation is already in that state."),
    "InvalidHandshakeTransition": (
        False,
        "The invitation can no longer change this way (it was already accepted, declined, "
        "cancelled or expired).",
    ),
    "CreateAccountStatusNotFound": (
        False,
        "AWS has no such account-creation request (requests are kept for 90 days). Check the id.",
    ),
    "MasterCannotLeaveOrganization": (False, "The management account cannot leave its own Organization."),
    "UnsupportedAPIEndpoint": (
        False,
        "This AWS Organizations action is not available from this endpoint/region.",
    ),
    "Conflict": (False, "AWS reported a conflicting change in progress. Check the state, then try again."),
    "OptInRequired": (False, "The account has not opted in to this AWS service or region."),
}

# Organizations ConstraintViolationException / HandshakeConstraintViolationException ``Reason``s
# that a manager can act on; others fall back to the generic message plus the raw reason.
_CONSTRAINT_REASONS: Final[dict[str, str]] = {
    "ACCOUNT_NUMBER_LIMIT_EXCEEDED": (
        "The Organization has reached its account quota (10 by default). Ask AWS for a higher "
        "quota in Service Quotas, or close unused accounts, then try again."
    ),
    "ACCOUNT_CREATION_RATE_LIMIT_EXCEEDED": (
        "Too many accounts were created today. Try again tomorrow, or ask AWS Support to raise the limit."
    ),
    "HANDSHAKE_RATE_LIMIT_EXCEEDED": (
        "Too many invitations were sent today. Try again tomorrow, or ask AWS Support to raise the limit."
    ),
    "ACCOUNT_CREATION_NOT_COMPLETE": "AWS has not finished setting up the account yet. Try again later.",
    "ACCOUNT_CANNOT_LEAVE_ORGANIZATION": (
        "This account cannot leave the Organization (it is the management account)."
    ),
    "ACCOUNT_CANNOT_LEAVE_WITHOUT_EULA": (
        "The account has not accepted the AWS Customer Agreement yet. The client must sign in as "
        "root and complete the account's standalone sign-up, then try again."
    ),
    "ACCOUNT_CANNOT_LEAVE_WITHOUT_PHONE_VERIFICATION": (
        "The account's phone number is not verified. The client must sign in as root and verify "
        "it, then try again."
    ),
    "MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED": (
        "The account has no payment method of its own. The client must add one (and choose a "
        "support plan and contact details) before it can leave the Organization."
    ),
    "MASTER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED": (
        "The main (management) account has no valid payment method. Add one, then try again."
    ),
    "WAIT_PERIOD_ACTIVE": (
        "The account joined or was created too recently to leave (AWS requires a waiting period, "
        "usually 7 days). Try again later."
    ),
    "MAX_TAG_LIMIT_EXCEEDED": "Too many tags on this resource. Remove some tags, then try again.",
    "TAG_POLICY_VIOLATION": "The tags do not comply with the Organization's tag policy. Fix the tags.",
    "ORGANIZATION_NOT_IN_ALL_FEATURES_MODE": "The Organization must have all features enabled for this.",
    "ALREADY_IN_AN_ORGANIZATION": (
        "The client's account already belongs to another Organization. The client must leave it "
        "first, then you can invite the account again."
    ),
    "PAYMENT_INSTRUMENT_REQUIRED": (
        "The main account needs a valid payment method before it can invite accounts."
    ),
    "ORGANIZATION_FROM_DIFFERENT_SELLER_OF_RECORD": (
        "The client's account is billed by a different AWS seller of record (for example AWS "
        "India) and cannot join this Organization."
    ),
    "ORGANIZATION_MEMBERSHIP_CHANGE_RATE_LIMIT_EXCEEDED": (
        "The account changed Organizations too recently. Try again later."
    ),
    "MANAGEMENT_ACCOUNT_EMAIL_NOT_VERIFIED": (
        "The main account's e-mail address is not verified. Verify it, then try again."
    ),
    "INVITE_DISABLED_DURING_ENABLE_ALL_FEATURES": (
        "Invitations are paused while the Organization enables all features. Try again later."
    ),
}

_NETWORK_ERRORS: Final = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


def _lookup(code: str) -> tuple[bool, str] | None:
    return _ERRORS.get(code) or _ERRORS.get(code.removesuffix("Exception"))


# An endpoint that does not implement an operation answers the same way however often it is asked:
# real AWS for an API it lacks in a region, the sandbox's moto for what it does not simulate.
NOT_IMPLEMENTED_CODES: Final = frozenset({"NotImplemented", "NotImplementedException", "InvalidAction",
                                          "UnknownOperationException", "UnknownOperation"})
NETWORK_ERROR_CODES: Final = frozenset(cls.__name__ for cls in _NETWORK_ERRORS)
_HTML_RE: Final = re.compile(r"<\s*(?:!doctype|html|head|body|title|h1|p|div)\b", re.IGNORECASE)
_TAG_RE: Final = re.compile(r"<[^>]*>")
_RAW_MESSAGE_MAX_CHARS: Final = 1000


def not_implemented_error(operation: str, raw_message: str) -> AwsError:
    """The AwsError for an operation the endpoint does not implement: never retryable."""
    return AwsError(
        "NotImplemented",
        _plain_text(raw_message),
        f"The AWS endpoint Switchyard talks to does not support {operation or 'this operation'}, so retrying "
        "will not help. In the sandbox its simulated AWS lacks it: report it to Switchyard's developers. "
        "Against real AWS, check the endpoint and region Switchyard is configured with (AWS_ENDPOINT_URL).",
        False,
    )


def _plain_text(raw: str) -> str:
    """AWS's message as text a person can read: an HTML error page (a proxy's or a local server's)
    becomes its words, without markup; anything is cut to a readable length."""
    text = raw
    if _HTML_RE.search(text):
        text = html.unescape(_TAG_RE.sub(" ", text))
        text = " ".join(text.split())
        text = f"(an HTML error page) {text}" if text else "(an HTML error page without text)"
    if len(text) > _RAW_MESSAGE_MAX_CHARS:
        text = text[: _RAW_MESSAGE_MAX_CHARS - 1] + "…"
    return text


def is_unexplained_failure(error: AwsError) -> bool:
    """True for a retryable error Switchyard has no explanation for (an unknown code that AWS sent
    with HTTP 5xx or 429): worth a few retries, not an open-ended wait."""
    return error.retryable and _lookup(error.code) is None and error.code not in NETWORK_ERROR_CODES


def classify_client_error(exc: ClientError) -> AwsError:
    """Turn a botocore ``ClientError`` into an :class:`AwsError`.

    The raw code and message are kept as AWS sent them. Throttling, AWS-side failures and
    timeouts are retryable; quotas, concurrent modification, validation, permissions and
    "already exists / not found" are not. An unknown code is retryable only when AWS answered
    with HTTP 429 or 5xx.
    """
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    raw_message = str(error.get("Message") or error.get("message") or exc)
    reason_value = exc.response.get("Reason") or error.get("Reason")
    reason = str(reason_value) if reason_value else None
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    raw_message = _plain_text(raw_message)
    if code in NOT_IMPLEMENTED_CODES or status == 501:
        return not_implemented_error(str(getattr(exc, "operation_name", "") or ""), raw_message)

    known = _lookup(code)
    if known is not None:
        retryable, plain = known
    else:
        retryable = status == 429 or status >= 500
        label = f"HTTP {code}" if code.isdigit() else code
        plain = (
            f"AWS answered with an unexpected error ({label}). {_TRY_AGAIN} It stops after a few tries "
            "and asks a person to look."
            if retryable
            else f"AWS refused the request ({label}). Retrying will not change that: check the details below, "
            "fix what they describe, then try again."
        )
    if reason is not None:
        plain = _CONSTRAINT_REASONS.get(reason, f"{plain} (reason: {reason})")
    return AwsError(code, raw_message, plain, retryable, reason)


def classify_botocore_error(exc: BotoCoreError) -> AwsError:
    """Turn a botocore error raised before or instead of an AWS answer into an :class:`AwsError`.

    Network failures (endpoint unreachable, connect/read timeout, connection closed) are
    retryable. Missing credentials and invalid parameters are not (they are configuration or
    programming mistakes).

    A read timeout means AWS may have received and carried out the request: callers of
    non-idempotent calls (CreateAccount) must reconcile before sending it again.
    """
    code = type(exc).__name__
    if isinstance(exc, _NETWORK_ERRORS):
        plain = f"Switchyard could not reach AWS (network problem or timeout). {_TRY_AGAIN}"
        return AwsError(code, str(exc), plain, True)
    if isinstance(exc, NoCredentialsError):
        plain = "Switchyard has no AWS credentials. Configure the credentials it runs with."
        return AwsError(code, str(exc), plain, False)
    if isinstance(exc, ParamValidationError):
        plain = "Switchyard built a request AWS would not accept (a bug). Report it to the developers."
        return AwsError(code, str(exc), plain, False)
    return AwsError(
        code, str(exc), f"Switchyard's AWS client failed ({code}). Report it to the developers.", False
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def _translating_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Every public AWS function raises AwsError, never a raw botocore exception."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ClientError as exc:
            raise classify_client_error(exc) from exc
        except BotoCoreError as exc:
            raise classify_botocore_error(exc) from exc
        except NotImplementedError as exc:
            # moto in-process raises this for an action it does not simulate.
            raise not_implemented_error(func.__name__, str(exc)) from exc

    return wrapper


# --------------------------------------------------------------------------------------------------
# Account creation failure reasons
# --------------------------------------------------------------------------------------------------

# Every CreateAccountStatus.FailureReason in botocore's Organizations model (tests compare the two).
FAILURE_REASON_MESSAGES: Final[dict[str, str]] = {
    "ACCOUNT_LIMIT_EXCEEDED": (
        "The Organization has reached its account quota. Ask AWS for a higher quota in Service "
        "Quotas (or close unused accounts), then create the account again."
    ),
    "EMAIL_ALREADY_EXISTS": (
        "An AWS account already uses this e-mail address. Choose another address (or invite the "
        "existing account instead), then try again."
    ),
    "INVALID_ADDRESS": (
        "AWS rejected the main account's postal address. Correct the contact address of the "
        "management account, then try again."
    ),
    "INVALID_EMAIL": "AWS rejected the account's e-mail address as invalid. Correct it, then try again.",
    "CONCURRENT_ACCOUNT_MODIFICATION": (
        "AWS was already changing the Organization's accounts. Wait a few minutes, then create the "
        "account again."
    ),
    "INTERNAL_FAILURE": "AWS had an internal failure creating the account. Try again in a few minutes.",
    "GOVCLOUD_ACCOUNT_ALREADY_EXISTS": (
        "An AWS GovCloud account already exists for this account. Contact AWS Support."
    ),
    "MISSING_BUSINESS_VALIDATION": (
        "The main account has not completed AWS's business validation. Complete it in the billing "
        "console, then try again."
    ),
    "FAILED_BUSINESS_VALIDATION": (
        "The main account failed AWS's business validation. Contact AWS Support to resolve it, "
        "then try again."
    ),
    "PENDING_BUSINESS_VALIDATION": (
        "AWS is still validating the main account's business details. Try again once validation has finished."
    ),
    "INVALID_IDENTITY_FOR_BUSINESS_VALIDATION": (
        "AWS could not validate the identity details of the main account's business. Correct them "
        "in the billing console, then try again."
    ),
    "UNKNOWN_BUSINESS_VALIDATION": (
        "AWS's business validation of the main account failed for an unknown reason. Contact AWS Support."
    ),
    "MISSING_PAYMENT_INSTRUMENT": (
        "The main account has no valid payment method. Add one in the billing console, then try again."
    ),
    "INVALID_PAYMENT_INSTRUMENT": (
        "The main account's payment method was declined. Update it in the billing console, then try again."
    ),
    "UPDATE_EXISTING_RESOURCE_POLICY_WITH_TAGS_NOT_SUPPORTED": (
        "AWS Organizations cannot apply these tags together with the Organization's resource "
        "policy. Create the account without tags or change the resource policy, then try again."
    ),
}
FAILURE_REASON_FALLBACK: Final = "AWS could not create the account (reason: {reason}). Contact AWS Support."

# Failures after which sending a fresh CreateAccount may simply work.
RETRYABLE_FAILURE_REASONS: Final = frozenset({"CONCURRENT_ACCOUNT_MODIFICATION", "INTERNAL_FAILURE"})


def failure_message(reason: str | None) -> str:
    """Plain-language text for a CreateAccount ``FailureReason``; a fallback naming the raw
    reason for one AWS added after this list was written (never raises)."""
    if reason is None:
        return FAILURE_REASON_FALLBACK.format(reason="none given")
    return FAILURE_REASON_MESSAGES.get(reason, FAILURE_REASON_FALLBACK.format(reason=reason))


# --------------------------------------------------------------------------------------------------
# Organizations: accounts
# --------------------------------------------------------------------------------------------------


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
    if not 6 <= len(email) <= 64 or "@" not in email:
        raise ValueError("An account e-mail address must have 6–64 characters and an @.")
    if not 1 <= len(account_name) <= 50:
        raise ValueError("An account name must have 1–50 characters.")


@_translating_errors
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
    org = clients.client("organizations", retries=False)
    kwargs: dict[str, Any] = {"Email": email, "AccountName": account_name}
    if tags:
        kwargs["Tags"] = [{"Key": key, "Value": value} for key, value in tags.items()]
    response = org.create_account(**kwargs)
    request = _creation_request(response["CreateAccountStatus"])
    logger.info(
        "aws.account_creation.started", extra={"request_id": request.request_id, "state": request.state}
    )
    return request


@_translating_errors
def describe_account_creation(*, clients: ClientFactory, request_id: str) -> CreateAccountRequest:
    """The current state of a CreateAccount request (IN_PROGRESS, SUCCEEDED or FAILED).

    SUCCEEDED does not mean the new account's IAM is ready: :func:`assume_access_role` may keep
    failing (retryably) for minutes after it.
    """
    org = clients.client("organizations")
    response = org.describe_create_account_status(CreateAccountRequestId=request_id)
    return _creation_request(response["CreateAccountStatus"])


def _all_creation_requests(org: Any, states: Iterable[str] | None = None) -> list[CreateAccountRequest]:
    kwargs: dict[str, Any] = {"States": list(states)} if states is not None else {}
    return [
        _creation_request(status)
        for page in org.get_paginator("list_create_account_status").paginate(**kwargs)
        for status in page.get("CreateAccountStatuses", [])
    ]


def _all_accounts(org: Any) -> list[Account]:
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


@_translating_errors
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
    org = clients.client("organizations")
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


@_translating_errors
def organization_status(*, clients: ClientFactory) -> OrganizationStatus:
    """Members and creations in progress, read once: one walk of ListAccounts and one of
    ListCreateAccountStatus (IN_PROGRESS only), every page of each. Never writes."""
    org = clients.client("organizations")
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


@_translating_errors
def list_accounts(*, clients: ClientFactory) -> tuple[Account, ...]:
    """Every account in the Organization (all pages), management account included."""
    return tuple(_all_accounts(clients.client("organizations")))


@_translating_errors
def describe_organization(*, clients: ClientFactory) -> Organization:
    """The Organization the main account belongs to; ``management_account_id`` is the account
    that console roles must trust."""
    raw = clients.client("organizations").describe_organization()["Organization"]
    return Organization(
        id=raw["Id"],
        arn=raw.get("Arn", ""),
        management_account_id=raw["MasterAccountId"],
        management_account_email=raw.get("MasterAccountEmail", ""),
        feature_set=raw.get("FeatureSet", ""),
    )


@_translating_errors
def remove_account_from_organization(*, clients: ClientFactory, account_id: str) -> bool:
    """Remove a member account from the Organization (hand-back).

    Returns True when this call removed it, False when it was no longer a member (so a retried
    task is safe). Refusals are not hidden: an account without its own payment method, support
    plan or verified contact raises a non-retryable AwsError (``ConstraintViolationException``)
    whose ``reason`` and ``plain_message`` say what the client must do first.
    """
    _require_account_id(account_id)
    org = clients.client("organizations")
    try:
        org.remove_account_from_organization(AccountId=account_id)
    except ClientError as exc:
        if _error_code(exc).removesuffix("Exception") == "AccountNotFound":
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


@_translating_errors
def invite_account(*, clients: ClientFactory, account_id: str, notes: str) -> Handshake:
    """Invite an existing account into the Organization; returns the OPEN handshake to record
    and poll. An invitation already open for the account raises non-retryable
    ``DuplicateHandshakeException``; one to an account in another Organization raises
    ``HandshakeConstraintViolationException`` with reason ALREADY_IN_AN_ORGANIZATION."""
    _require_account_id(account_id)
    if len(notes) > HANDSHAKE_NOTES_MAX_CHARS:
        raise ValueError(f"Invitation notes are limited to {HANDSHAKE_NOTES_MAX_CHARS} characters.")
    org = clients.client("organizations")
    kwargs: dict[str, Any] = {"Target": {"Id": account_id, "Type": "ACCOUNT"}}
    if notes:
        kwargs["Notes"] = notes
    handshake = _handshake(org.invite_account_to_organization(**kwargs)["Handshake"])
    logger.info("aws.handshake.sent", extra={"handshake_id": handshake.id, "account_id": account_id})
    return handshake


@_translating_errors
def describe_handshake(*, clients: ClientFactory, handshake_id: str) -> Handshake:
    """The invitation's current state (see :class:`Handshake`)."""
    org = clients.client("organizations")
    return _handshake(org.describe_handshake(HandshakeId=handshake_id)["Handshake"])


@_translating_errors
def find_open_handshake(*, clients: ClientFactory, account_id: str) -> Handshake | None:
    """Reconcile an invitation whose answer was lost: the open (REQUESTED or OPEN) invitation the
    Organization has for ``account_id``, or None when it is safe to invite. Reads every page of
    ListHandshakesForOrganization (invitations only), never writes."""
    _require_account_id(account_id)
    org = clients.client("organizations")
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


@_translating_errors
def cancel_handshake(*, clients: ClientFactory, handshake_id: str) -> Handshake:
    """Withdraw an open invitation; returns it as CANCELED. Cancelling one the client already
    answered raises non-retryable ``InvalidHandshakeTransitionException``."""
    org = clients.client("organizations")
    return _handshake(org.cancel_handshake(HandshakeId=handshake_id)["Handshake"])


# --------------------------------------------------------------------------------------------------
# STS
# --------------------------------------------------------------------------------------------------


def _require_account_id(account_id: str) -> None:
    if not ACCOUNT_ID_RE.match(account_id):
        raise ValueError(f"An AWS account id is exactly 12 digits, not {account_id!r}.")


@_translating_errors
def assume_access_role(
    *,
    clients: ClientFactory,
    account_id: str,
    role_name: str = DEFAULT_ACCESS_ROLE_NAME,
    session_name: str,
    duration_seconds: int = 3600,
) -> TemporaryCredentials:
    """Temporary credentials for ``role_name`` in ``account_id``, from the main account.

    ``AccessDenied`` is raised as a *retryable* AwsError (code ``AccessDenied``): right after
    CreateAccount succeeds, the new account's IAM is not ready and AssumeRole fails for minutes;
    for an invited account it also means the client has not created the role yet. The caller
    retries with backoff and gives up after its own deadline.
    """
    _require_account_id(account_id)
    if not ROLE_NAME_RE.match(role_name):
        raise ValueError(f"{role_name!r} is not a valid IAM role name.")
    sts = clients.client("sts")
    role_arn = f"arn:aws:iam::{account_id}:role/{role_name}"
    try:
        response = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration_seconds
        )
    except ClientError as exc:
        if _error_code(exc) == "AccessDenied":
            raise AwsError(
                "AccessDenied",
                str(exc.response.get("Error", {}).get("Message") or exc),
                f"The account's IAM is not ready yet: AWS does not let Switchyard assume {role_name} "
                f"in {account_id}. This is normal for several minutes after an account is created; "
                f"{_TRY_AGAIN} If it lasts, check that the role exists and trusts the main account "
                "(an invited account needs the CloudFormation template run first).",
                True,
            ) from exc
        raise
    credentials = response["Credentials"]
    return TemporaryCredentials(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )


# --------------------------------------------------------------------------------------------------
# Member-account IAM
# --------------------------------------------------------------------------------------------------


def _compact_length(document: Mapping[str, Any]) -> int:
    # IAM counts policy size without whitespace.
    return len(json.dumps(document, separators=(",", ":")))


@dataclass(frozen=True)
class RoleSpec:
    """What a role in a member account must look like. Invalid values raise ``ValueError``."""

    path: str
    name: str
    trust_policy: dict[str, Any]
    managed_policy_arns: tuple[str, ...] = ()
    inline_policy: dict[str, Any] | None = None
    inline_policy_name: str = "switchyard"
    max_session_duration: int = MIN_SESSION_SECONDS
    description: str = ""
    tags: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not ROLE_PATH_RE.match(self.path) or len(self.path) > 512:
            raise ValueError(f"{self.path!r} is not a valid IAM path (it must start and end with '/').")
        if not ROLE_NAME_RE.match(self.name):
            raise ValueError(f"{self.name!r} is not a valid IAM role name ([\\w+=,.@-], 1–64 characters).")
        if not POLICY_NAME_RE.match(self.inline_policy_name):
            raise ValueError(f"{self.inline_policy_name!r} is not a valid inline policy name.")
        if not MIN_SESSION_SECONDS <= self.max_session_duration <= MAX_SESSION_SECONDS:
            raise ValueError("MaxSessionDuration must be 3,600–43,200 seconds.")
        if len(self.managed_policy_arns) > MANAGED_POLICIES_PER_ROLE:
            raise ValueError(f"A role can have at most {MANAGED_POLICIES_PER_ROLE} managed policies.")
        if len(set(self.managed_policy_arns)) != len(self.managed_policy_arns):
            raise ValueError("The managed policy ARNs repeat.")
        if _compact_length(self.trust_policy) > TRUST_POLICY_MAX_CHARS:
            raise ValueError(f"The trust policy is longer than {TRUST_POLICY_MAX_CHARS} characters.")
        if self.inline_policy is not None and _compact_length(self.inline_policy) > INLINE_POLICIES_MAX_CHARS:
            raise ValueError(f"The inline policy is longer than {INLINE_POLICIES_MAX_CHARS} characters.")
        if len(self.description) > 1000:
            raise ValueError("A role description is limited to 1,000 characters.")

    @property
    def all_tags(self) -> dict[str, str]:
        """The spec's tags plus ``managed-by=switchyard`` (which marks the role as ours)."""
        return {**dict(self.tags), MANAGED_BY_TAG_KEY: MANAGED_BY_TAG_VALUE}

    @property
    def arn_suffix(self) -> str:
        return f"role{self.path}{self.name}"


@dataclass(frozen=True)
class RoleState:
    """A role as IAM reports it; policy documents are parsed JSON (URL-decoded)."""

    arn: str
    path: str
    name: str
    trust_policy: dict[str, Any]
    managed_policy_arns: frozenset[str]
    inline_policies: dict[str, dict[str, Any]]
    max_session_duration: int
    tags: dict[str, str]
    description: str = ""

    @property
    def managed_by_switchyard(self) -> bool:
        return self.tags.get(MANAGED_BY_TAG_KEY) == MANAGED_BY_TAG_VALUE


@dataclass(frozen=True)
class RoleResult:
    """``outcome``: "created" (did not exist), "adopted" (already identical; left as it was,
    apart from Switchyard's tags and description) or "updated" (a Switchyard role brought back
    to the spec; ``differences`` says what was different)."""

    arn: str
    outcome: str
    differences: tuple[str, ...] = field(default_factory=tuple)


PERSON_TAG_KEY: Final = "switchyard-person"


def trust_policy_for_console(
    *, main_account_id: str, require_mfa: bool = True, require_person_tag: bool = False
) -> dict[str, Any]:
    """The trust policy of a console (switch-role) role: trusts the main account, requires MFA
    (``Bool``, never ``BoolIfExists``) and pins the session name to the IAM user name so
    CloudTrail names the engineer. No ExternalId: the console cannot send one. With
    ``require_person_tag`` the caller must also carry the principal tag ``switchyard-person``
    (only the IAM users of Switchyard's people do)."""
    _require_account_id(main_account_id)
    condition: dict[str, Any] = {}
    if require_mfa:
        condition["Bool"] = {"aws:MultiFactorAuthPresent": "true"}
    condition["StringLike"] = {"sts:RoleSessionName": "${aws:username}"}
    if require_person_tag:
        condition["Null"] = {f"aws:PrincipalTag/{PERSON_TAG_KEY}": "false"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{main_account_id}:root"},
                "Action": "sts:AssumeRole",
                "Condition": condition,
            }
        ],
    }


def _policy_document(value: Any) -> dict[str, Any]:
    """IAM returns policy documents URL-encoded; botocore usually decodes them already."""
    if isinstance(value, dict):
        return value
    text = str(value)
    try:
        parsed = json.loads(unquote(text))
    except ValueError:
        parsed = json.loads(text)
    if not isinstance(parsed, dict):
        raise ValueError("A policy document is not a JSON object.")
    return parsed


def _paginate(iam: Any, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    for page in iam.get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def _read_role(iam: Any, name: str) -> RoleState | None:
    try:
        role = iam.get_role(RoleName=name)["Role"]
        managed = frozenset(
            p["PolicyArn"]
            for p in _paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)
        )
        inline = {
            policy_name: _policy_document(
                iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            )
            for policy_name in _paginate(iam, "list_role_policies", "PolicyNames", RoleName=name)
        }
        # GetRole answers with the role's tags (all of them: at most 50); ListRoleTags only when
        # it sent none, which is also how an untagged role looks.
        raw_tags = role.get("Tags") or list(_paginate(iam, "list_role_tags", "Tags", RoleName=name))
        tags = {t["Key"]: t["Value"] for t in raw_tags}
    except ClientError as exc:
        # Gone (or deleted while being read): report it as absent.
        if _error_code(exc) == "NoSuchEntity":
            return None
        raise
    return RoleState(
        arn=role["Arn"],
        path=role["Path"],
        name=role["RoleName"],
        trust_policy=_policy_document(role["AssumeRolePolicyDocument"]),
        managed_policy_arns=managed,
        inline_policies=inline,
        max_session_duration=int(role.get("MaxSessionDuration", MIN_SESSION_SECONDS)),
        tags=tags,
        description=role.get("Description", "") or "",
    )


@_translating_errors
def read_role(
    *, clients: ClientFactory, credentials: TemporaryCredentials | None, path: str, name: str
) -> RoleState | None:
    """The role ``name`` in the account the credentials reach, or None if there is none.

    IAM role names are unique in an account whatever the path, so the role is looked up by name;
    if it lives at a path other than ``path`` it is still returned, with its real ``path``, so
    that verification and drift checks see the difference instead of "missing".
    """
    if not ROLE_PATH_RE.match(path):
        raise ValueError(f"{path!r} is not a valid IAM path.")
    return _read_role(clients.client("iam", credentials=credentials), name)


def role_differences(current: RoleState, spec: RoleSpec) -> tuple[str, ...]:
    """What makes ``current`` differ from ``spec``, in plain words (empty when identical).

    Compared: path, trust policy (parsed JSON), maximum session duration, attached managed
    policies, inline policies. Description and tags are metadata and not compared.
    """
    differences: list[str] = []
    if current.path != spec.path:
        differences.append(f"path is {current.path}, expected {spec.path}")
    if current.trust_policy != spec.trust_policy:
        differences.append("trust policy differs")
    if current.max_session_duration != spec.max_session_duration:
        differences.append(
            f"maximum session duration is {current.max_session_duration}s, "
            f"expected {spec.max_session_duration}s"
        )
    wanted_managed = frozenset(spec.managed_policy_arns)
    differences += [
        f"managed policy {arn} is not attached"
        for arn in sorted(wanted_managed - current.managed_policy_arns)
    ]
    differences += [
        f"managed policy {arn} is attached but not expected"
        for arn in sorted(current.managed_policy_arns - wanted_managed)
    ]
    wanted_inline = {spec.inline_policy_name: spec.inline_policy} if spec.inline_policy is not None else {}
    for name, document in sorted(wanted_inline.items()):
        if name not in current.inline_policies:
            differences.append(f"inline policy {name} is missing")
        elif current.inline_policies[name] != document:
            differences.append(f"inline policy {name} differs")
    differences += [
        f"inline policy {name} is not expected"
        for name in sorted(set(current.inline_policies) - set(wanted_inline))
    ]
    return tuple(differences)


def _create_role(iam: Any, spec: RoleSpec) -> str:
    response = iam.create_role(
        Path=spec.path,
        RoleName=spec.name,
        AssumeRolePolicyDocument=json.dumps(spec.trust_policy),
        Description=spec.description,
        MaxSessionDuration=spec.max_session_duration,
        Tags=[{"Key": k, "Value": v} for k, v in spec.all_tags.items()],
    )
    # Tagged at creation: if anything below fails, the next run sees a Switchyard role and heals it.
    for arn in spec.managed_policy_arns:
        iam.attach_role_policy(RoleName=spec.name, PolicyArn=arn)
    if spec.inline_policy is not None:
        iam.put_role_policy(
            RoleName=spec.name,
            PolicyName=spec.inline_policy_name,
            PolicyDocument=json.dumps(spec.inline_policy),
        )
    return str(response["Role"]["Arn"])


def _sync_metadata(iam: Any, current: RoleState, spec: RoleSpec) -> None:
    missing_tags = {k: v for k, v in spec.all_tags.items() if current.tags.get(k) != v}
    if missing_tags:
        iam.tag_role(RoleName=spec.name, Tags=[{"Key": k, "Value": v} for k, v in missing_tags.items()])
    if current.description != spec.description:
        iam.update_role(RoleName=spec.name, Description=spec.description)


def _bring_to_spec(iam: Any, current: RoleState, spec: RoleSpec) -> str:
    if current.path != spec.path:
        # IAM cannot move a role to another path: replace it (it is ours, and the spec's ARN is
        # the one the main account's policies grant).
        _delete_role(iam, spec.name)
        return _create_role(iam, spec)
    if current.trust_policy != spec.trust_policy:
        iam.update_assume_role_policy(RoleName=spec.name, PolicyDocument=json.dumps(spec.trust_policy))
    if current.max_session_duration != spec.max_session_duration or current.description != spec.description:
        iam.update_role(
            RoleName=spec.name, Description=spec.description, MaxSessionDuration=spec.max_session_duration
        )
    wanted_managed = frozenset(spec.managed_policy_arns)
    # Detach first: a role full of stale policies would otherwise hit the 10-per-role quota.
    for arn in sorted(current.managed_policy_arns - wanted_managed):
        _ignoring_no_such_entity(iam.detach_role_policy, RoleName=spec.name, PolicyArn=arn)
    for arn in sorted(wanted_managed - current.managed_policy_arns):
        iam.attach_role_policy(RoleName=spec.name, PolicyArn=arn)
    for name in sorted(current.inline_policies):
        if spec.inline_policy is None or name != spec.inline_policy_name:
            _ignoring_no_such_entity(iam.delete_role_policy, RoleName=spec.name, PolicyName=name)
    if (
        spec.inline_policy is not None
        and current.inline_policies.get(spec.inline_policy_name) != spec.inline_policy
    ):
        iam.put_role_policy(
            RoleName=spec.name,
            PolicyName=spec.inline_policy_name,
            PolicyDocument=json.dumps(spec.inline_policy),
        )
    missing_tags = {k: v for k, v in spec.all_tags.items() if current.tags.get(k) != v}
    if missing_tags:
        iam.tag_role(RoleName=spec.name, Tags=[{"Key": k, "Value": v} for k, v in missing_tags.items()])
    return current.arn


def _role_conflict(spec: RoleSpec, differences: tuple[str, ...]) -> AwsError:
    listed = "; ".join(differences)
    return AwsError(
        "RoleConflict",
        f"Role {spec.name} exists without tag {MANAGED_BY_TAG_KEY}={MANAGED_BY_TAG_VALUE} "
        f"and differs: {listed}",
        f"A role named {spec.name} already exists in the account and was not created by Switchyard, so "
        f"Switchyard will not change it. It differs from the template in: {listed}. Rename the template's "
        f"role, or have the client delete or align that role, then try again.",
        False,
    )


@_translating_errors
def ensure_role(
    *, clients: ClientFactory, credentials: TemporaryCredentials | None, spec: RoleSpec, likely_new: bool = False
) -> RoleResult:
    """Make the role in the member account match ``spec``; safe to run any number of times.

    Looks before creating (GetRole); with ``likely_new`` (onboarding, where the role is new) it
    sends CreateRole first instead and, when IAM answers EntityAlreadyExists, reads the role and
    goes on exactly as if it had looked first. Either way:

    - missing: created with tag ``managed-by=switchyard``, managed policies attached, inline
      policy put → "created";
    - identical (path, trust policy as parsed JSON, max session, managed and inline policies):
      left as it is, Switchyard's tags added and description aligned → "adopted";
    - different and tagged ``managed-by=switchyard``: brought to the spec (managed policies not
      in the spec detached, other inline policies deleted; a different path means the role is
      replaced) → "updated" with the differences;
    - different and not Switchyard's: nothing is changed; raises non-retryable AwsError
      ``RoleConflict`` whose messages name the differences.

    A concurrent creation (EntityAlreadyExists) is handled as if the role had been found.
    IAM is eventually consistent: read the role back with :func:`read_role` a little later to
    verify. Tags not in the spec are left alone.
    """
    iam = clients.client("iam", credentials=credentials)
    current = None if likely_new else _read_role(iam, spec.name)
    if current is None:
        try:
            arn = _create_role(iam, spec)
        except ClientError as exc:
            if _error_code(exc) != "EntityAlreadyExists":
                raise
            current = _read_role(iam, spec.name)
            if current is None:
                raise AwsError(
                    "EntityAlreadyExists",
                    str(exc),
                    f"The role {spec.name} was created and deleted by someone else at the same time. "
                    f"{_TRY_AGAIN}",
                    True,
                ) from exc
        else:
            logger.info("aws.role.created", extra={"arn": arn})
            return RoleResult(arn=arn, outcome="created")

    differences = role_differences(current, spec)
    if not differences:
        _sync_metadata(iam, current, spec)
        logger.info("aws.role.adopted", extra={"arn": current.arn})
        return RoleResult(arn=current.arn, outcome="adopted")
    if not current.managed_by_switchyard:
        logger.warning("aws.role.conflict", extra={"arn": current.arn, "differences": differences})
        raise _role_conflict(spec, differences)
    arn = _bring_to_spec(iam, current, spec)
    logger.info("aws.role.updated", extra={"arn": arn, "differences": differences})
    return RoleResult(arn=arn, outcome="updated", differences=differences)


def _ignoring_no_such_entity(call: Callable[..., Any], **kwargs: Any) -> None:
    try:
        call(**kwargs)
    except ClientError as exc:
        if _error_code(exc) != "NoSuchEntity":
            raise


def _delete_role(iam: Any, name: str) -> bool:
    try:
        for profile in list(
            _paginate(iam, "list_instance_profiles_for_role", "InstanceProfiles", RoleName=name)
        ):
            _ignoring_no_such_entity(
                iam.remove_role_from_instance_profile,
                InstanceProfileName=profile["InstanceProfileName"],
                RoleName=name,
            )
        for policy in list(_paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)):
            _ignoring_no_such_entity(iam.detach_role_policy, RoleName=name, PolicyArn=policy["PolicyArn"])
        for policy_name in list(_paginate(iam, "list_role_policies", "PolicyNames", RoleName=name)):
            _ignoring_no_such_entity(iam.delete_role_policy, RoleName=name, PolicyName=policy_name)
        iam.delete_role(RoleName=name)
    except ClientError as exc:
        if _error_code(exc) == "NoSuchEntity":
            return False
        raise
    return True


@_translating_errors
def delete_role(
    *,
    clients: ClientFactory,
    credentials: TemporaryCredentials | None,
    name: str,
    only_if_managed: bool = True,
) -> bool:
    """Delete the role (instance profiles, managed and inline policies first).

    Returns True when this call deleted it, False when it was already gone (idempotent). By
    default only Switchyard's roles (tag ``managed-by=switchyard``) are deleted: another role
    with the name raises non-retryable AwsError ``RoleNotManaged`` and is left untouched.
    """
    iam = clients.client("iam", credentials=credentials)
    if only_if_managed:
        try:
            tags = {t["Key"]: t["Value"] for t in _paginate(iam, "list_role_tags", "Tags", RoleName=name)}
        except ClientError as exc:
            if _error_code(exc) == "NoSuchEntity":
                return False
            raise
        if tags.get(MANAGED_BY_TAG_KEY) != MANAGED_BY_TAG_VALUE:
            raise AwsError(
                "RoleNotManaged",
                f"Role {name} has no tag {MANAGED_BY_TAG_KEY}={MANAGED_BY_TAG_VALUE}",
                f"The role {name} was not created by Switchyard, so Switchyard does not delete it. "
                "Remove it by hand if it really should go.",
                False,
            )
    deleted = _delete_role(iam, name)
    logger.info("aws.role.deleted", extra={"role_name": name, "deleted": deleted})
    return deleted


# --------------------------------------------------------------------------------------------------
# CloudFormation template for invited accounts
# --------------------------------------------------------------------------------------------------


INVITED_ACCESS_ROLE_NAME: Final = "SwitchyardAccessRole"
ACCESS_ROLE_TAG_KEY: Final = "switchyard-access-role"
# The IAM write actions Switchyard's access role needs for the roles it manages (onboarding,
# roll-out, drift repair, hand-back), and only on roles under /switchyard/.
ACCESS_ROLE_WRITE_ACTIONS: Final = (
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
    "iam:UpdateAssumeRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:RemoveRoleFromInstanceProfile",
)


def access_role_trust_policy(*, main_account_id: str, principal_arn: str | dict[str, Any]) -> dict[str, Any]:
    """Trust for Switchyard's access role: the main account, and in it only Switchyard's worker
    principal (``aws:PrincipalArn``), so no other identity of the main account can use the role."""
    _require_account_id(main_account_id)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SwitchyardWorkersOnly",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{main_account_id}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": principal_arn}},
            }
        ],
    }


def access_role_policy() -> dict[str, Any]:
    """Least privilege for what Switchyard does in a client's account (CloudFormation syntax: uses
    ``Fn::Sub`` for the account id). IAM writes only on roles under ``/switchyard/``, new ones only
    tagged ``managed-by=switchyard``, AWS managed policies only; an explicit Deny of every such write
    outside that path (the guard that holds whatever else is attached to the role), so the role
    cannot make an administrator anywhere else, nor change itself; read-only IAM to discover the
    roles that already exist."""
    switchyard_roles = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/switchyard/*"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ManageSwitchyardRoles",
                "Effect": "Allow",
                "Action": [a for a in ACCESS_ROLE_WRITE_ACTIONS if a != "iam:CreateRole"],
                "Resource": switchyard_roles,
            },
            {
                "Sid": "CreateOnlyTaggedSwitchyardRoles",
                "Effect": "Allow",
                "Action": "iam:CreateRole",
                "Resource": switchyard_roles,
                "Condition": {"StringEquals": {f"aws:RequestTag/{MANAGED_BY_TAG_KEY}": MANAGED_BY_TAG_VALUE}},
            },
            {
                "Sid": "NoIamWritesOutsideSwitchyardPath",
                "Effect": "Deny",
                "Action": list(ACCESS_ROLE_WRITE_ACTIONS),
                "NotResource": switchyard_roles,
            },
            {
                "Sid": "OnlyAwsManagedPolicies",
                "Effect": "Deny",
                "Action": ["iam:AttachRolePolicy"],
                "Resource": "*",
                "Condition": {"ArnNotLike": {"iam:PolicyARN": "arn:aws:iam::aws:policy/*"}},
            },
            {
                "Sid": "ReadIamToDiscoverRoles",
                "Effect": "Allow",
                "Action": ["iam:Get*", "iam:List*"],
                "Resource": "*",
            },
        ],
    }


def access_role_cloudformation_template(
    *, main_account_id: str, principal_arn: str, role_name: str = INVITED_ACCESS_ROLE_NAME
) -> str:
    """YAML CloudFormation template the client deploys in an invited account to create the access
    role Switchyard needs. Parameter ``RoleName`` (default ``role_name``, the name Switchyard will
    assume); trust: the main account's ``principal_arn`` only; permissions: :func:`access_role_policy`
    (no AdministratorAccess). Plain YAML without short-form intrinsics, so ``yaml.safe_load`` reads
    it back; ``cfn-lint`` passes it."""
    _require_account_id(main_account_id)
    if not ROLE_NAME_RE.match(role_name):
        raise ValueError(f"{role_name!r} is not a valid IAM role name.")
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"Switchyard access role: lets Switchyard (account {main_account_id}) manage the /switchyard/ "
            "console roles in this account, and read its IAM. Nothing else."
        ),
        "Parameters": {
            "RoleName": {
                "Type": "String",
                "Default": role_name,
                "AllowedPattern": r"[\w+=,.@-]{1,64}",
                "Description": (
                    "The access role's name. Keep the default unless your account manager gave you another one. "
                    "Do not use OrganizationAccountAccessRole if your account already has a role of that name."
                ),
            },
            "SwitchyardPrincipalArn": {
                "Type": "String",
                "Default": principal_arn,
                "Description": "The identity Switchyard's workers run as, in the managed-services account.",
            },
        },
        "Resources": {
            "SwitchyardAccessRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Ref": "RoleName"},
                    "Description": f"Switchyard (account {main_account_id}) manages /switchyard/ roles here",
                    "MaxSessionDuration": MIN_SESSION_SECONDS,
                    "AssumeRolePolicyDocument": access_role_trust_policy(
                        main_account_id=main_account_id, principal_arn={"Ref": "SwitchyardPrincipalArn"}
                    ),
                    "Policies": [{"PolicyName": "switchyard-access", "PolicyDocument": access_role_policy()}],
                    "Tags": [{"Key": ACCESS_ROLE_TAG_KEY, "Value": "true"}],
                },
            }
        },
        "Outputs": {
            "RoleArn": {
                "Description": "The access role's ARN (Switchyard finds the role by its name; nothing to send back).",
                "Value": {"Fn::GetAtt": ["SwitchyardAccessRole", "Arn"]},
            }
        },
    }
    header = (
        "# Switchyard access role.\n"
        "# Deploy it in your AWS account (any region), signed in as an administrator, for example:\n"
        "#   aws cloudformation deploy --template-file switchyard-access-role.yaml \\\n"
        "#     --stack-name switchyard-access-role --capabilities CAPABILITY_NAMED_IAM\n"
        "# Then tell your account manager, who clicks \"Verify access now\" in Switchyard.\n"
        "#\n"
        f"# The role is called {role_name}. If your account came from another AWS Organization it may\n"
        "# already have an OrganizationAccountAccessRole that trusts that Organization's management\n"
        "# account: leave it alone (or delete it once you no longer need it). Do not reuse that name:\n"
        "# CloudFormation would stop with EntityAlreadyExists.\n"
    )
    # A JSON round trip copies shared sub-documents, so YAML writes no aliases (CloudFormation refuses them).
    plain = json.loads(json.dumps(template))
    return header + yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, width=100)


# --------------------------------------------------------------------------------------------------
# Adoption: the roles already in an account
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoundRole:
    """A role in a member account that trusts the main account and is not Switchyard's."""

    arn: str
    path: str
    name: str
    trusted_principals: tuple[str, ...]
    managed_policy_arns: tuple[str, ...]


def trusted_principals(trust_policy: Mapping[str, Any]) -> tuple[str, ...]:
    """Every AWS principal an Allow statement of ``trust_policy`` names."""
    found: list[str] = []
    statements = trust_policy.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal", {})
        values = principal.get("AWS", []) if isinstance(principal, Mapping) else [principal]
        found.extend(str(v) for v in (values if isinstance(values, list) else [values]))
    return tuple(found)


@_translating_errors
def roles_trusting_account(
    *, clients: ClientFactory, credentials: TemporaryCredentials | None, trusted_account_id: str,
    ignore_names: Iterable[str] = (),
) -> tuple[FoundRole, ...]:
    """Every role in the account the credentials reach whose trust policy lets ``trusted_account_id``
    (its root or any of its principals, or ``*``) assume it, except Switchyard's own (path
    ``/switchyard/`` or tag ``managed-by=switchyard``), AWS service roles and ``ignore_names`` (the
    access role). Reads only (ListRoles, ListRoleTags, ListAttachedRolePolicies)."""
    _require_account_id(trusted_account_id)
    iam = clients.client("iam", credentials=credentials)
    ignored = set(ignore_names)
    found: list[FoundRole] = []
    for role in _paginate(iam, "list_roles", "Roles"):
        name, path = role["RoleName"], role.get("Path", "/")
        if name in ignored or path.startswith("/switchyard/") or path.startswith("/aws-service-role/"):
            continue
        principals = trusted_principals(_policy_document(role.get("AssumeRolePolicyDocument") or "{}"))
        if not any(p in (trusted_account_id, "*") or f":iam::{trusted_account_id}:" in p for p in principals):
            continue
        tags = {t["Key"]: t["Value"] for t in _paginate(iam, "list_role_tags", "Tags", RoleName=name)}
        if tags.get(MANAGED_BY_TAG_KEY) == MANAGED_BY_TAG_VALUE:
            continue
        managed = tuple(sorted(
            p["PolicyArn"] for p in _paginate(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=name)
        ))
        found.append(FoundRole(arn=role["Arn"], path=path, name=name, trusted_principals=principals,
                               managed_policy_arns=managed))
    return tuple(sorted(found, key=lambda r: r.name))


@_translating_errors
def read_role_trust(
    *, clients: ClientFactory, credentials: TemporaryCredentials | None, name: str
) -> tuple[str, dict[str, Any]] | None:
    """``(arn, trust policy)`` of the role ``name`` in the account the credentials reach, or None
    when there is none. One GetRole: for checking whom an access role trusts."""
    if not ROLE_NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a valid IAM role name.")
    try:
        role = clients.client("iam", credentials=credentials).get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if _error_code(exc) == "NoSuchEntity":
            return None
        raise
    return str(role["Arn"]), _policy_document(role["AssumeRolePolicyDocument"])
