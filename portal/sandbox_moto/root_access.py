"""Centralized root access for the sandbox's moto (moto 5.2.5 has none of it).

What AWS offers since late 2024 and this module plays:

- IAM ``ListOrganizationsFeatures``, ``Enable/DisableOrganizationsRootCredentialsManagement`` and
  ``Enable/DisableOrganizationsRootSessions``: only from the Organization's management account, only
  once trusted access for IAM (``iam.amazonaws.com``) is enabled in Organizations (moto's
  ``EnableAWSServiceAccess`` is taught that IAM is a trusted service);
- STS ``AssumeRoot``: only from the management account, only with ``RootSessions`` enabled, only into
  a member account, only with one of the five ``root-task`` policies, at most 900 seconds;
- a root user per member account (login profile, MFA devices, access keys, signing certificates).
  An account that joined by invitation starts with a root password, a created one with nothing
  (AWS creates member accounts without root credentials once the feature is on), unless its e-mail
  is one of ``root_password_emails`` (the sandbox's demo data);
- IAM calls signed with a root session's credentials and no ``UserName`` act on that root user, as
  far as the session's task policy allows (else ``AccessDenied``).

moto looks action handlers up on the response class at call time, so the methods attached here are
live actions in decorator and server mode alike. All state lives on moto's backend instances
(``/moto-api/reset`` and the end of a ``mock_aws`` block clear it). ``tests/portal/test_sandbox_moto_root.py``
fails as soon as moto ships one of these actions natively, so the patch is revisited then.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

ROOT_TASK_POLICY_PREFIX = "arn:aws:iam::aws:policy/root-task/"
AUDIT = "IAMAuditRootUserCredentials"
CREATE_PASSWORD = "IAMCreateRootUserPassword"  # noqa: S105 (a task policy name)
DELETE = "IAMDeleteRootUserCredentials"
TASK_POLICIES = frozenset({AUDIT, CREATE_PASSWORD, DELETE, "S3UnlockBucketPolicy", "SQSUnlockQueuePolicy"})
ROOT_CREDENTIALS_MANAGEMENT = "RootCredentialsManagement"
ROOT_SESSIONS = "RootSessions"
IAM_PRINCIPAL = "iam.amazonaws.com"
MAX_ROOT_SESSION_SECONDS = 900

# The IAM actions each task policy allows on the root user (AWS's managed root-task policies).
_AUDIT_ACTIONS = frozenset({"GetLoginProfile", "ListAccessKeys", "ListMFADevices", "ListSigningCertificates",
                            "GetAccessKeyLastUsed", "GetUser"})
TASK_ACTIONS: dict[str, frozenset[str]] = {
    AUDIT: _AUDIT_ACTIONS,
    DELETE: _AUDIT_ACTIONS | {"DeleteLoginProfile", "DeleteAccessKey", "DeleteSigningCertificate",
                              "DeactivateMFADevice"},
    CREATE_PASSWORD: frozenset({"CreateLoginProfile", "GetLoginProfile", "GetUser"}),
}
# IAM actions this module answers for root sessions (patched on IamResponse).
ROOT_IAM_ACTIONS = ("GetLoginProfile", "CreateLoginProfile", "DeleteLoginProfile", "ListMFADevices",
                    "DeactivateMFADevice", "ListAccessKeys", "DeleteAccessKey", "ListSigningCertificates",
                    "DeleteSigningCertificate", "GetUser")
# Actions this module adds (a guard test checks moto still lacks each).
ADDED_IAM_ACTIONS = ("ListOrganizationsFeatures", "EnableOrganizationsRootCredentialsManagement",
                     "DisableOrganizationsRootCredentialsManagement", "EnableOrganizationsRootSessions",
                     "DisableOrganizationsRootSessions")
ADDED_STS_ACTIONS = ("AssumeRoot",)

_STATE_LOCK = threading.RLock()
_installed: dict[str, Any] = {}
# Accounts created with one of these e-mails start with a root password (the sandbox's demo data).
root_password_emails: set[str] = set()


@dataclass
class RootUser:
    """A member account's root user as IAM would report it."""

    password_created_at: datetime.datetime | None = None
    mfa_devices: list[str] = field(default_factory=list)  # serial numbers
    access_keys: list[str] = field(default_factory=list)  # access key ids
    signing_certificates: list[str] = field(default_factory=list)  # certificate ids

    @property
    def has_password(self) -> bool:
        return self.password_created_at is not None


@dataclass(frozen=True)
class RootSession:
    account_id: str
    task_policy: str
    expires_at: datetime.datetime


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --------------------------------------------------------------------------------------------------
# State on moto's backends
# --------------------------------------------------------------------------------------------------


def _iam_backend(account_id: str) -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[account_id]["aws"]


def _org_backend(account_id: str) -> Any:
    from moto.organizations.models import organizations_backends

    return organizations_backends[account_id]["aws"]


def _features(management_account_id: str) -> set[str]:
    backend = _iam_backend(management_account_id)
    with _STATE_LOCK:
        if not hasattr(backend, "switchyard_root_features"):
            backend.switchyard_root_features = set()
        return backend.switchyard_root_features  # type: ignore[no-any-return]


def _sessions(account_id: str) -> dict[str, RootSession]:
    backend = _iam_backend(account_id)
    with _STATE_LOCK:
        if not hasattr(backend, "switchyard_root_sessions"):
            backend.switchyard_root_sessions = {}
        return backend.switchyard_root_sessions  # type: ignore[no-any-return]


def _member(account_id: str) -> Any | None:
    """moto's FakeAccount for a member account, from its management account's backend."""
    from moto.organizations.models import organizations_backends

    owner = organizations_backends.master_accounts.get(account_id)
    if owner is None:
        return None
    backend = organizations_backends[owner[0]][owner[1]]
    return next((a for a in backend.accounts if a.id == account_id), None)


def root_user(account_id: str) -> RootUser:
    """The root user of ``account_id`` (made on first use: an invited account, or one created with an
    e-mail of :data:`root_password_emails`, starts with a password; any other with nothing). Tests
    use it to give a root user MFA devices, keys or certificates."""
    backend = _iam_backend(account_id)
    with _STATE_LOCK:
        existing = getattr(backend, "switchyard_root_user", None)
        if existing is not None:
            return existing  # type: ignore[no-any-return]
    member = _member(account_id)
    user = RootUser()
    if member is not None and (
        getattr(member, "joined_method", "CREATED") == "INVITED"
        or str(getattr(member, "email", "")).lower() in root_password_emails
    ):
        user.password_created_at = getattr(member, "create_time", None) or _now()
    with _STATE_LOCK:
        if getattr(backend, "switchyard_root_user", None) is None:
            backend.switchyard_root_user = user
        return backend.switchyard_root_user  # type: ignore[no-any-return]


def _management_account_of(response: Any) -> tuple[str, Any]:
    """(caller's account id, its Organization) when the caller is a management account, else raises."""
    account_id = response.current_account
    org = _org_backend(account_id).org
    if org is None:
        raise _org_not_found()
    if org.master_account_id != account_id:
        raise _iam_error("AccountNotManagementOrDelegatedAdministratorException",
                         "You can only call this operation from the management account or the "
                         "delegated administrator for IAM.")
    return account_id, org


def _trusted_access_enabled(account_id: str) -> bool:
    return any(s.get("ServicePrincipal") == IAM_PRINCIPAL for s in _org_backend(account_id).services)


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


def _iam_error(code: str, message: str) -> Exception:
    from moto.iam.exceptions import IAMException

    return IAMException(code, message)


def _org_not_found() -> Exception:
    return _iam_error("OrganizationNotFoundException", "The account is not a member of an organization.")


def _sts_error(code: str, message: str) -> Exception:
    from moto.sts.exceptions import STSClientError

    return STSClientError(code, message)


# --------------------------------------------------------------------------------------------------
# IAM: the Organization's features
# --------------------------------------------------------------------------------------------------


def _features_result(org: Any, features: set[str]) -> Any:
    from moto.core.responses import ActionResult

    return ActionResult({"OrganizationId": org.id, "EnabledFeatures": sorted(features)})


def _checked_features(response: Any) -> tuple[Any, set[str]]:
    account_id, org = _management_account_of(response)
    if not _trusted_access_enabled(account_id):
        raise _iam_error("ServiceAccessNotEnabledException",
                         "Trusted access for IAM (iam.amazonaws.com) is not enabled in AWS Organizations.")
    if getattr(org, "feature_set", "ALL") != "ALL":
        raise _iam_error("OrganizationNotInAllFeaturesModeException",
                         "The organization must have all features enabled.")
    return org, _features(account_id)


def list_organizations_features(self: Any) -> Any:
    org, features = _checked_features(self)
    return _features_result(org, features)


def _switch(feature: str, on: bool) -> Callable[[Any], Any]:
    def action(self: Any) -> Any:
        org, features = _checked_features(self)
        with _STATE_LOCK:
            if on:
                features.add(feature)
            else:
                features.discard(feature)
        return _features_result(org, features)

    return action


# --------------------------------------------------------------------------------------------------
# STS: AssumeRoot
# --------------------------------------------------------------------------------------------------

_ACCOUNT_FROM_PRINCIPAL = re.compile(r"^(?:arn:aws:iam::)?([0-9]{12})(?::root)?\Z")


def assume_root(self: Any) -> Any:
    from moto.core.responses import ActionResult

    target = str(self._get_param("TargetPrincipal") or "")
    policy = self._get_param("TaskPolicyArn") or {}
    task_arn = str(policy.get("arn", "") if isinstance(policy, dict) else self._get_param("TaskPolicyArn.arn") or "")
    duration = int(self._get_param("DurationSeconds") or MAX_ROOT_SESSION_SECONDS)
    caller = self.current_account
    org = _org_backend(caller).org
    if org is None or org.master_account_id != caller:
        raise _sts_error("AccessDenied", "AssumeRoot can only be called from the management account of an "
                                         "organization or the delegated administrator for IAM.")
    if ROOT_SESSIONS not in _features(caller) or not _trusted_access_enabled(caller):
        raise _sts_error("AccessDenied", "Centralized root access is not enabled: the organization has not "
                                         "enabled RootSessions for IAM.")
    task = task_arn.removeprefix(ROOT_TASK_POLICY_PREFIX)
    if not task_arn.startswith(ROOT_TASK_POLICY_PREFIX) or task not in TASK_POLICIES:
        raise _sts_error("ValidationError", f"The task policy {task_arn!r} is not a valid root task policy "
                                            f"(arn:aws:iam::aws:policy/root-task/<name>).")
    if not 0 < duration <= MAX_ROOT_SESSION_SECONDS:
        raise _sts_error("ValidationError", f"DurationSeconds must be at most {MAX_ROOT_SESSION_SECONDS}.")
    match = _ACCOUNT_FROM_PRINCIPAL.match(target)
    member = _member(match.group(1)) if match else None
    if match is None or member is None or member.master_account_id != caller or match.group(1) == caller:
        raise _sts_error("AccessDenied", f"{target} is not a member account of this organization.")
    account_id = match.group(1)
    key = _iam_backend(account_id).create_temp_access_key()
    expires = _now() + datetime.timedelta(seconds=duration)
    with _STATE_LOCK:
        _sessions(account_id)[key.access_key_id] = RootSession(account_id, task, expires)
    root_user(account_id)
    return ActionResult({
        "Credentials": {
            "AccessKeyId": key.access_key_id,
            "SecretAccessKey": key.secret_access_key,
            "SessionToken": secrets.token_urlsafe(96),
            "Expiration": expires,
        },
        "SourceIdentity": "",
    })


# --------------------------------------------------------------------------------------------------
# IAM calls from root sessions
# --------------------------------------------------------------------------------------------------


def _root_session(response: Any) -> RootSession | None:
    return _sessions(response.current_account).get(response.get_access_key())


def _allowed(session: RootSession, action: str) -> None:
    if session.expires_at <= _now():
        raise _iam_error("ExpiredToken", "The security token included in the request is expired.")
    if action not in TASK_ACTIONS.get(session.task_policy, frozenset()):
        raise _iam_error("AccessDenied", f"The root session's task policy {session.task_policy} does not allow "
                                         f"iam:{action}.")


def _root_action(action: str, session: RootSession, response: Any) -> Any:
    from moto.core.responses import ActionResult, EmptyResult

    _allowed(session, action)
    user = root_user(session.account_id)
    arn = f"arn:aws:iam::{session.account_id}:root"
    no_entity = _iam_error("NoSuchEntity", "The root user has no login profile.")
    with _STATE_LOCK:
        if action == "GetUser":
            return ActionResult({"User": {"Path": "/", "UserName": "root", "UserId": session.account_id,
                                          "Arn": arn, "CreateDate": _now()}})
        if action == "GetLoginProfile":
            if user.password_created_at is None:
                raise no_entity
            return ActionResult({"LoginProfile": {"CreateDate": user.password_created_at,
                                                  "PasswordResetRequired": False}})
        if action == "CreateLoginProfile":
            if user.password_created_at is not None:
                raise _iam_error("EntityAlreadyExists", "The root user already has a login profile.")
            if response._get_param("Password"):
                raise _iam_error("InvalidInput", "A root user's login profile is created without a password: "
                                                 "the root e-mail's holder sets one through password recovery.")
            user.password_created_at = _now()
            return ActionResult({"LoginProfile": {"CreateDate": user.password_created_at,
                                                  "PasswordResetRequired": False}})
        if action == "DeleteLoginProfile":
            if user.password_created_at is None:
                raise no_entity
            user.password_created_at = None
            return EmptyResult()
        if action == "ListMFADevices":
            return ActionResult({"MFADevices": [{"SerialNumber": s, "EnableDate": _now()} for s in user.mfa_devices],
                                 "IsTruncated": False})
        if action == "DeactivateMFADevice":
            return _remove(user.mfa_devices, str(response._get_param("SerialNumber") or ""), "MFA device")
        if action == "ListAccessKeys":
            return ActionResult({"AccessKeyMetadata": [
                {"AccessKeyId": k, "Status": "Active", "CreateDate": _now()} for k in user.access_keys
            ], "IsTruncated": False})
        if action == "DeleteAccessKey":
            return _remove(user.access_keys, str(response._get_param("AccessKeyId") or ""), "access key")
        if action == "ListSigningCertificates":
            return ActionResult({"Certificates": [
                {"UserName": "root", "CertificateId": c, "CertificateBody": "-----BEGIN CERTIFICATE-----",
                 "Status": "Active", "UploadDate": _now()} for c in user.signing_certificates
            ], "IsTruncated": False})
        if action == "DeleteSigningCertificate":
            return _remove(user.signing_certificates, str(response._get_param("CertificateId") or ""),
                           "signing certificate")
    raise AssertionError(action)  # pragma: no cover (ROOT_IAM_ACTIONS lists every branch above)


def _remove(items: list[str], item: str, what: str) -> Any:
    from moto.core.responses import EmptyResult

    if item not in items:
        raise _iam_error("NoSuchEntity", f"The root user has no {what} {item}.")
    items.remove(item)
    return EmptyResult()


def _refuse_other_iam(session: RootSession) -> None:
    raise _iam_error("AccessDenied", f"A root session ({session.task_policy}) may only manage the root user's "
                                     "credentials.")


def _with_root_sessions(action: str, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def method(self: Any) -> Any:
        session = _root_session(self)
        if session is None:
            return original(self)
        if self._get_param("UserName"):
            _refuse_other_iam(session)
        return _root_action(action, session, self)

    method.__name__ = original.__name__
    method.switchyard_root_access = True  # type: ignore[attr-defined]
    return method


def _root_sessions_stay_in_their_task(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A root session may only manage the root user's credentials: any other IAM action is refused."""

    def call_action(self: Any) -> Any:
        from moto.core.responses import ActionResult

        session = _root_session(self)
        if session is not None and self._get_action() not in ROOT_IAM_ACTIONS:
            error = _iam_error("AccessDenied", f"A root session ({session.task_policy}) may only manage the root "
                                               f"user's credentials, not iam:{self._get_action()}.")
            return self.serialized(ActionResult(error))
        return original(self)

    return call_action


# --------------------------------------------------------------------------------------------------
# Install
# --------------------------------------------------------------------------------------------------


def _snake(action: str) -> str:
    from moto.core.utils import camelcase_to_underscores

    return str(camelcase_to_underscores(action))


def install(*, emails_with_root_password: Iterable[str] = ()) -> None:
    """Patch moto in this process (idempotent). ``emails_with_root_password`` adds to
    :data:`root_password_emails` (also read from ``SWITCHYARD_SANDBOX_ROOT_PASSWORD_EMAILS``,
    comma-separated)."""
    from moto.iam.responses import IamResponse
    from moto.organizations.models import FakeServiceAccess
    from moto.sts.responses import TokenResponse

    root_password_emails.update(e.strip().lower() for e in emails_with_root_password if e.strip())
    root_password_emails.update(
        e.strip().lower() for e in os.environ.get("SWITCHYARD_SANDBOX_ROOT_PASSWORD_EMAILS", "").split(",") if e.strip()
    )
    if _installed:
        return
    # moto warns that STS's model has no AccessDenied shape; AWS answers it all the same.
    warnings.filterwarnings("ignore", message=r"Exception\(STSClientError\) with code AccessDenied",
                            category=UserWarning)
    if IAM_PRINCIPAL not in FakeServiceAccess.TRUSTED_SERVICES:
        FakeServiceAccess.TRUSTED_SERVICES.append(IAM_PRINCIPAL)
    IamResponse.list_organizations_features = list_organizations_features  # type: ignore[attr-defined]
    for name, feature in (("RootCredentialsManagement", ROOT_CREDENTIALS_MANAGEMENT), ("RootSessions", ROOT_SESSIONS)):
        setattr(IamResponse, _snake(f"EnableOrganizations{name}"), _switch(feature, True))
        setattr(IamResponse, _snake(f"DisableOrganizations{name}"), _switch(feature, False))
    TokenResponse.assume_root = assume_root  # type: ignore[attr-defined]
    IamResponse.call_action = _root_sessions_stay_in_their_task(IamResponse.call_action)  # type: ignore[method-assign,assignment]
    for action in ROOT_IAM_ACTIONS:
        method = _snake(action)
        original = getattr(IamResponse, method)
        _installed.setdefault("originals", {})[method] = original
        setattr(IamResponse, method, _with_root_sessions(action, original))
    _installed["done"] = True


def _installed_originals() -> dict[str, Callable[[Any], Any]]:
    """moto's own IAM handlers that the root-session wrappers fall back to (for the guard tests)."""
    return dict(_installed.get("originals", {}))
