"""The AWS seam for centralized root access: the Organization's root-access features (IAM), root
sessions (``sts:AssumeRoot``) and the root user's credentials in a member account.

Like the rest of :mod:`portal.aws`: every public function takes ``clients`` keyword-only, returns plain
frozen dataclasses and raises :class:`portal.aws.errors.AwsError` (plain message, raw code, retryable)
for anything AWS refused. The refusals particular to root access (not the management account, trusted
access off, features off, a service control policy denying root sessions) get messages that say what
to do and which permissions the workers need (:data:`WORKER_PERMISSIONS`).

No Django import at module level.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, ParamSpec, TypeVar

from botocore.exceptions import ClientError

from portal.aws.clients import ClientFactory, TemporaryCredentials, iam_client, organizations_client, sts_client

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_iam import IAMClient
from portal.aws.errors import AwsError, translating
from portal.aws.limits import ACCOUNT_ID_RE
from portal.aws.messages import ROOT_ERRORS, ROOT_FEATURES_PAGE, ErrorRule

P = ParamSpec("P")
R = TypeVar("R")

IAM_SERVICE_PRINCIPAL: Final = "iam.amazonaws.com"
ROOT_CREDENTIALS_MANAGEMENT: Final = "RootCredentialsManagement"
ROOT_SESSIONS: Final = "RootSessions"
TASK_POLICY_PREFIX: Final = "arn:aws:iam::aws:policy/root-task/"
AUDIT_TASK: Final = "IAMAuditRootUserCredentials"
DELETE_TASK: Final = "IAMDeleteRootUserCredentials"
CREATE_PASSWORD_TASK: Final = "IAMCreateRootUserPassword"  # noqa: S105 (a task policy name)
TASKS_USED: Final = (AUDIT_TASK, DELETE_TASK, CREATE_PASSWORD_TASK)
# AWS allows at most 15 minutes; Switchyard's steps need seconds.
ROOT_SESSION_SECONDS: Final = 900

# What the identity the workers run as (in the management account) needs for root access.
WORKER_PERMISSIONS: Final[tuple[str, ...]] = (
    "organizations:DescribeOrganization",
    "organizations:ListAWSServiceAccessForOrganization",
    "organizations:EnableAWSServiceAccess",
    "iam:ListOrganizationsFeatures",
    "iam:EnableOrganizationsRootCredentialsManagement",
    "iam:EnableOrganizationsRootSessions",
    "sts:AssumeRoot",
)


def worker_policy_document() -> dict[str, Any]:
    """The IAM policy for the workers' identity: the reads and enables above, and ``sts:AssumeRoot``
    limited to the three task policies Switchyard uses."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "RootAccessFeatures", "Effect": "Allow",
             "Action": [p for p in WORKER_PERMISSIONS if p != "sts:AssumeRoot"], "Resource": "*"},
            {"Sid": "RootSessions", "Effect": "Allow", "Action": "sts:AssumeRoot", "Resource": "*",
             "Condition": {"StringEquals": {"sts:TaskPolicyArn": [f"{TASK_POLICY_PREFIX}{t}" for t in TASKS_USED]}}},
        ],
    }


def permissions_sentence() -> str:
    return "The workers' AWS identity needs " + ", ".join(WORKER_PERMISSIONS) + " (see the Root access page)."


def _root_access_denied(raw: str, operation: str) -> str:
    """What a refused root-access call means: a service control policy, the features off, or the
    workers' permissions."""
    lowered = raw.lower()
    if "service control policy" in lowered or "scp" in lowered.split():
        return (
            "A service control policy (SCP) of the Organization denies root sessions (sts:AssumeRoot) for this "
            "account, so Switchyard cannot look at or change its root user. Ask whoever manages the Organization's "
            "SCPs to allow sts:AssumeRoot for Switchyard's identity on this account, then try again."
        )
    if "not enabled" in lowered or "rootsessions" in lowered.replace(" ", ""):
        return (
            "Root sessions are not enabled for the Organization (centralized root access is off). "
            f"{ROOT_FEATURES_PAGE}"
        )
    return (
        f"AWS denied Switchyard {operation}. {permissions_sentence()} Check also the Organization's service "
        "control policies."
    )


# Root access's own codes, then the access-denied rule (its message depends on what AWS said).
_ROOT_TABLE: Final[dict[str, ErrorRule]] = {**ROOT_ERRORS, "AccessDenied": (False, _root_access_denied)}


def _translating(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    return translating(_ROOT_TABLE, operation=operation)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "").removesuffix("Exception")


# --------------------------------------------------------------------------------------------------
# The Organization's features
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootFeatures:
    """Whether centralized root access can be used: trusted access for IAM in Organizations, and the
    two IAM features. ``usable`` when all three are on."""

    trusted_access: bool
    root_credentials_management: bool
    root_sessions: bool
    organization_id: str = ""

    @property
    def usable(self) -> bool:
        return self.trusted_access and self.root_credentials_management and self.root_sessions

    def refusal(self) -> AwsError | None:
        """The error every root action shows while the features are off (None when usable)."""
        if self.usable:
            return None
        missing = [name for name, on in (("trusted access for IAM", self.trusted_access),
                                         (ROOT_CREDENTIALS_MANAGEMENT, self.root_credentials_management),
                                         (ROOT_SESSIONS, self.root_sessions)) if not on]
        return AwsError(
            "RootAccessNotEnabled",
            "Not enabled: " + ", ".join(missing),
            f"Centralized root access is off for the Organization ({', '.join(missing)} not enabled), so "
            f"Switchyard cannot use root sessions. {ROOT_FEATURES_PAGE} {permissions_sentence()}",
            False,
        )


@_translating("organizations:ListAWSServiceAccessForOrganization / iam:ListOrganizationsFeatures")
def root_features(*, clients: ClientFactory) -> RootFeatures:
    """Read trusted access for IAM and the enabled IAM features. Never writes."""
    org = organizations_client(clients)
    principals = {
        s.get("ServicePrincipal")
        for page in org.get_paginator("list_aws_service_access_for_organization").paginate()
        for s in page.get("EnabledServicePrincipals", [])
    }
    trusted = IAM_SERVICE_PRINCIPAL in principals
    if not trusted:
        return RootFeatures(trusted_access=False, root_credentials_management=False, root_sessions=False)
    try:
        answer = iam_client(clients).list_organizations_features()
    except ClientError as exc:
        if _code(exc) == "ServiceAccessNotEnabled":
            return RootFeatures(trusted_access=False, root_credentials_management=False, root_sessions=False)
        raise
    enabled = set(answer.get("EnabledFeatures", []))
    return RootFeatures(
        trusted_access=True,
        root_credentials_management=ROOT_CREDENTIALS_MANAGEMENT in enabled,
        root_sessions=ROOT_SESSIONS in enabled,
        organization_id=str(answer.get("OrganizationId", "")),
    )


@_translating("organizations:EnableAWSServiceAccess / iam:EnableOrganizationsRoot*")
def enable_root_features(*, clients: ClientFactory, current: RootFeatures | None = None) -> RootFeatures:
    """Turn on trusted access for IAM, then RootCredentialsManagement and RootSessions (each only if
    off, as ``current`` or a fresh read says; safe to repeat). Returns what AWS then reports."""
    before = current or root_features(clients=clients)
    if not before.trusted_access:
        organizations_client(clients).enable_aws_service_access(ServicePrincipal=IAM_SERVICE_PRINCIPAL)
    iam = iam_client(clients)
    if not before.root_credentials_management:
        iam.enable_organizations_root_credentials_management()
    if not before.root_sessions:
        iam.enable_organizations_root_sessions()
    return root_features(clients=clients)


# --------------------------------------------------------------------------------------------------
# Root sessions and the root user's credentials
# --------------------------------------------------------------------------------------------------


@_translating("sts:AssumeRoot")
def assume_root(*, clients: ClientFactory, account_id: str, task: str) -> TemporaryCredentials:
    """A 15-minute root session in member account ``account_id`` scoped to the root-task policy
    ``task`` (one of :data:`TASKS_USED`)."""
    if not ACCOUNT_ID_RE.match(account_id):
        raise ValueError(f"An AWS account id is exactly 12 digits, not {account_id!r}.")
    if task not in TASKS_USED:
        raise ValueError(f"{task!r} is not a root task policy Switchyard uses.")
    answer = sts_client(clients).assume_root(
        TargetPrincipal=account_id,
        TaskPolicyArn={"arn": f"{TASK_POLICY_PREFIX}{task}"},
        DurationSeconds=ROOT_SESSION_SECONDS,
    )
    credentials = answer["Credentials"]
    return TemporaryCredentials(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )


@dataclass(frozen=True)
class RootCredentials:
    """What a member account's root user has, as IAM reports it to a root session."""

    password: bool
    mfa_devices: tuple[str, ...] = ()
    access_keys: tuple[str, ...] = ()
    signing_certificates: tuple[str, ...] = ()

    @property
    def none_left(self) -> bool:
        return not (self.password or self.mfa_devices or self.access_keys or self.signing_certificates)

    def described(self) -> str:
        parts = []
        if self.password:
            parts.append("a password")
        for count, what in ((len(self.mfa_devices), "MFA device"), (len(self.access_keys), "access key"),
                            (len(self.signing_certificates), "signing certificate")):
            if count:
                parts.append(f"{count} {what}{'s' if count > 1 else ''}")
        return ", ".join(parts) or "no credentials"


def _has_login_profile(iam: IAMClient) -> bool:
    try:
        iam.get_login_profile()
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return False
        raise
    return True


def _all(iam: IAMClient, operation: str, key: str, field: str) -> tuple[str, ...]:
    items: list[str] = []
    marker: str | None = None
    while True:
        page = getattr(iam, operation)(**({"Marker": marker} if marker else {}))
        items += [str(item[field]) for item in page.get(key, [])]
        marker = page.get("Marker") if page.get("IsTruncated") else None
        if not marker:
            return tuple(items)


@_translating("iam:GetLoginProfile / ListMFADevices / ListAccessKeys / ListSigningCertificates (root session)")
def read_root_credentials(*, clients: ClientFactory, credentials: TemporaryCredentials) -> RootCredentials:
    """The root user's login profile, MFA devices, access keys and signing certificates (``credentials``:
    a root session with the audit or delete task policy). Never writes."""
    iam = iam_client(clients, credentials)
    return RootCredentials(
        password=_has_login_profile(iam),
        mfa_devices=_all(iam, "list_mfa_devices", "MFADevices", "SerialNumber"),
        access_keys=_all(iam, "list_access_keys", "AccessKeyMetadata", "AccessKeyId"),
        signing_certificates=_all(iam, "list_signing_certificates", "Certificates", "CertificateId"),
    )


def _ignoring_gone(call: Callable[..., Any], **kwargs: Any) -> bool:
    try:
        call(**kwargs)
    except ClientError as exc:
        if _code(exc) == "NoSuchEntity":
            return False
        raise
    return True


@_translating("iam:DeleteLoginProfile (root session)")
def delete_root_login_profile(*, clients: ClientFactory, credentials: TemporaryCredentials) -> bool:
    """Delete the root password; False when there was none (so a retried step is safe)."""
    return _ignoring_gone(iam_client(clients, credentials).delete_login_profile)


@_translating("iam:DeleteAccessKey (root session)")
def delete_root_access_keys(*, clients: ClientFactory, credentials: TemporaryCredentials) -> tuple[str, ...]:
    """Delete every root access key; returns the ids deleted."""
    iam = iam_client(clients, credentials)
    keys = _all(iam, "list_access_keys", "AccessKeyMetadata", "AccessKeyId")
    return tuple(k for k in keys if _ignoring_gone(iam.delete_access_key, AccessKeyId=k))


@_translating("iam:DeleteSigningCertificate (root session)")
def delete_root_signing_certificates(*, clients: ClientFactory, credentials: TemporaryCredentials) -> tuple[str, ...]:
    """Delete every root signing certificate; returns the ids deleted."""
    iam = iam_client(clients, credentials)
    certificates = _all(iam, "list_signing_certificates", "Certificates", "CertificateId")
    return tuple(c for c in certificates if _ignoring_gone(iam.delete_signing_certificate, CertificateId=c))


@_translating("iam:DeactivateMFADevice (root session)")
def deactivate_root_mfa_devices(*, clients: ClientFactory, credentials: TemporaryCredentials) -> tuple[str, ...]:
    """Deactivate every root MFA device; returns their serial numbers."""
    iam = iam_client(clients, credentials)
    devices = _all(iam, "list_mfa_devices", "MFADevices", "SerialNumber")
    return tuple(d for d in devices if _ignoring_gone(iam.deactivate_mfa_device, SerialNumber=d))


@_translating("iam:CreateLoginProfile (root session)")
def enable_root_password_recovery(*, clients: ClientFactory, credentials: TemporaryCredentials) -> bool:
    """Create the root login profile without a password (``credentials``: a root session with
    IAMCreateRootUserPassword), so whoever holds the root e-mail can set one through "Forgot password".
    False when the root user has a login profile already (recovery works as it is)."""
    iam = iam_client(clients, credentials)
    try:
        iam.create_login_profile()
    except ClientError as exc:
        if _code(exc) == "EntityAlreadyExists":
            return False
        raise
    return True


def worker_policy_json() -> str:
    return json.dumps(worker_policy_document(), indent=2)
