"""One catalogue of the plain-language messages Switchyard shows for what AWS refused.

Each table maps an AWS error code (without a trailing ``Exception``: IAM's query protocol says
``LimitExceeded``, Organizations' JSON protocol says ``ConcurrentModificationException``) to
``(retryable, what happened and what to do next)``. :func:`portal.aws.errors.translating` looks a
code up in the service's own table first (Cost Explorer, root access), then in
:data:`GENERAL_ERRORS`. Messages are fit to show a manager; the raw AWS code is always shown beside.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

#: A rule: ``(retryable, plain message)``, or a function ``(raw_message, operation) -> plain message``
#: for a message that depends on what AWS said.
ErrorRule: TypeAlias = tuple[bool, "str | Callable[[str, str], str]"]
ErrorTable: TypeAlias = Mapping[str, ErrorRule]

TRY_AGAIN: Final = "Switchyard will try again automatically."

# Keys are error codes without a trailing "Exception": IAM (query protocol) says "LimitExceeded",
# Organizations (JSON protocol) says "ConcurrentModificationException"; both are looked up here.
GENERAL_ERRORS: Final[dict[str, ErrorRule]] = {
    # Retryable: nothing is wrong with the request, AWS is busy or briefly unavailable.
    "Throttling": (True, f"AWS is throttling Switchyard's requests. {TRY_AGAIN}"),
    "TooManyRequests": (True, f"AWS Organizations is throttling Switchyard's requests. {TRY_AGAIN}"),
    "RequestLimitExceeded": (True, f"AWS is throttling Switchyard's requests. {TRY_AGAIN}"),
    "SlowDown": (True, f"AWS asked Switchyard to slow down. {TRY_AGAIN}"),
    "ServiceUnavailable": (True, f"AWS is temporarily unavailable. {TRY_AGAIN}"),
    "InternalFailure": (True, f"AWS had an internal failure. {TRY_AGAIN}"),
    "InternalError": (True, f"AWS had an internal error. {TRY_AGAIN}"),
    "InternalServerError": (True, f"AWS had an internal error. {TRY_AGAIN}"),
    "ServiceFailure": (True, f"AWS IAM had an internal failure. {TRY_AGAIN}"),
    "Service": (True, f"AWS Organizations had an internal failure. {TRY_AGAIN}"),
    "RequestTimeout": (True, f"AWS timed out answering. {TRY_AGAIN}"),
    "PriorRequestNotComplete": (True, f"AWS is still working on an earlier request. {TRY_AGAIN}"),
    "FinalizingOrganization": (
        True,
        f"The AWS Organization is still being set up (this can take up to an hour). {TRY_AGAIN}",
    ),
    "EntityTemporarilyUnmodifiable": (
        True,
        f"AWS IAM cannot change this entity right now (it was just deleted or recreated). {TRY_AGAIN}",
    ),
    "ExpiredToken": (True, f"The temporary credentials for the account expired. {TRY_AGAIN}"),
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
CONSTRAINT_REASONS: Final[dict[str, str]] = {
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
# Cost Explorer
# --------------------------------------------------------------------------------------------------

# Cost Explorer's own error codes (without "Exception"): (retryable, what to do).
COST_EXPLORER_ERRORS: Final[dict[str, ErrorRule]] = {
    "LimitExceeded": (
        True,
        "Cost Explorer is limiting Switchyard's request rate. Switchyard will try again at the next scheduled fetch.",
    ),
    "DataUnavailable": (
        True,
        "Cost Explorer has no data for this month yet (new accounts take up to 24 hours). Try again later.",
    ),
    "BillExpiration": (
        False,
        "AWS no longer keeps the bill for this month (Cost Explorer keeps about 13 months, 38 with "
        "multi-year data enabled). Nothing to fetch.",
    ),
    "RequestChanged": (True, "AWS's data changed while Switchyard was paging through it. Fetch the month again."),
    "InvalidNextToken": (True, "AWS did not accept the page token it had given. Fetch the month again."),
    "AccessDenied": (
        False,
        "AWS denied Switchyard access to Cost Explorer. The identity Switchyard runs as in the management "
        "account needs ce:GetCostAndUsage (and Cost Explorer must be enabled in the billing console).",
    ),
}


# --------------------------------------------------------------------------------------------------
# Centralized root access (the access-denied rule, which names the workers' permissions, is in
# :mod:`portal.aws.root_access`)
# --------------------------------------------------------------------------------------------------

ROOT_FEATURES_PAGE = "A manager can turn it on from the Root access page (Clients → Root access)."

# Codes (without a trailing "Exception") and what they mean for root access.
ROOT_ERRORS: Final[dict[str, ErrorRule]] = {
    "AccountNotManagementOrDelegatedAdministrator": (
        False,
        "AWS only allows centralized root access from the Organization's management account or the delegated "
        "administrator for IAM, and Switchyard's AWS identity is in neither. Run the workers with credentials of "
        "the management account (or register their account as IAM's delegated administrator), then try again.",
    ),
    "CallerIsNotManagementAccount": (
        False,
        "Only the Organization's management account can turn on centralized root access, and Switchyard's AWS "
        "identity is not in it. Run the workers with management-account credentials, then try again.",
    ),
    "ServiceAccessNotEnabled": (
        False,
        f"Trusted access for IAM is not enabled in AWS Organizations, so centralized root access is off. "
        f"{ROOT_FEATURES_PAGE}",
    ),
    "OrganizationNotFound": (
        False, "Switchyard's main account is not in an AWS Organization, so it has no member accounts' root to manage.",
    ),
    "OrganizationNotInAllFeaturesMode": (
        False,
        "Centralized root access needs the Organization to have all features enabled. Enable all features in "
        "AWS Organizations first, then try again.",
    ),
}


# --------------------------------------------------------------------------------------------------
# Reaching a member account through its access role (sts:AssumeRole refused)
# --------------------------------------------------------------------------------------------------


def access_role_not_ready(*, account_id: str, role_name: str) -> str:
    """AssumeRole refused for an account that may be new: normal for minutes after CreateAccount,
    and for an invited account until the client deployed the access role."""
    return (
        f"The account's IAM is not ready yet: AWS does not let Switchyard assume {role_name} "
        f"in {account_id}. This is normal for several minutes after an account is created; "
        f"{TRY_AGAIN} If it lasts, check that the role exists and trusts the main account "
        "(an invited account needs the CloudFormation template run first)."
    )


def access_role_refused(*, account_id: str, role_name: str) -> str:
    """AssumeRole refused for an account Switchyard has reached before: someone changed the role."""
    return (
        f"AWS does not let Switchyard into the account {account_id} through {role_name} any more, so "
        "Switchyard cannot see or change its roles. Check that the role exists and trusts the main "
        "account (ask the client to restore it if it was removed or changed), then retry."
    )
