"""Member-account IAM: the roles Switchyard manages in client accounts (:class:`RoleSpec`, read,
ensure, delete) and the roles already there that trust the main account (adoption).

Every public function takes ``clients`` keyword-only and the temporary ``credentials`` of the member
account (from :func:`portal.aws.sts.assume_access_role`), returns plain frozen dataclasses and raises
:class:`portal.aws.errors.AwsError`. Invalid specs raise ``ValueError`` before anything is sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import unquote

from botocore.exceptions import ClientError

from portal.aws.clients import ClientFactory, TemporaryCredentials, iam_client

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_iam import IAMClient
from portal.aws.errors import AwsError, error_code, translating
from portal.aws.limits import (
    IAM_PATH_RE,
    INLINE_POLICIES_MAX_CHARS,
    MANAGED_BY_TAG_KEY,
    MANAGED_BY_TAG_VALUE,
    MANAGED_POLICIES_PER_ROLE,
    MAX_SESSION_SECONDS,
    MIN_SESSION_SECONDS,
    PERSON_TAG_KEY,
    POLICY_NAME_RE,
    ROLE_DESCRIPTION_MAX_CHARS,
    ROLE_NAME_RE,
    ROLE_PATH_MAX_CHARS,
    TRUST_POLICY_MAX_CHARS,
    require_account_id,
)
from portal.aws.messages import TRY_AGAIN

logger = logging.getLogger(__name__)


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
        if not IAM_PATH_RE.match(self.path) or len(self.path) > ROLE_PATH_MAX_CHARS:
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
        if len(self.description) > ROLE_DESCRIPTION_MAX_CHARS:
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


def trust_policy_for_console(
    *, main_account_id: str, require_mfa: bool = True, require_person_tag: bool = False
) -> dict[str, Any]:
    """The trust policy of a console (switch-role) role: trusts the main account, requires MFA
    (``Bool``, never ``BoolIfExists``) and pins the session name to the IAM user name so
    CloudTrail names the engineer. No ExternalId: the console cannot send one. With
    ``require_person_tag`` the caller must also carry the principal tag ``switchyard-person``
    (only the IAM users of Switchyard's people do)."""
    require_account_id(main_account_id)
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


def _paginate(iam: IAMClient, operation: str, key: str, **kwargs: Any) -> Iterator[Any]:
    # The operation is a run-time name; the stubs' get_paginator overloads need a literal one.
    for page in cast(Any, iam).get_paginator(operation).paginate(**kwargs):
        yield from page.get(key, [])


def _read_role(iam: IAMClient, name: str) -> RoleState | None:
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
        if error_code(exc) == "NoSuchEntity":
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


@translating()
def read_role(
    *, clients: ClientFactory, credentials: TemporaryCredentials | None, path: str, name: str
) -> RoleState | None:
    """The role ``name`` in the account the credentials reach, or None if there is none.

    IAM role names are unique in an account whatever the path, so the role is looked up by name;
    if it lives at a path other than ``path`` it is still returned, with its real ``path``, so
    that verification and drift checks see the difference instead of "missing".
    """
    if not IAM_PATH_RE.match(path):
        raise ValueError(f"{path!r} is not a valid IAM path.")
    return _read_role(iam_client(clients, credentials=credentials), name)


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


def _create_role(iam: IAMClient, spec: RoleSpec) -> str:
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


def _sync_metadata(iam: IAMClient, current: RoleState, spec: RoleSpec) -> None:
    missing_tags = {k: v for k, v in spec.all_tags.items() if current.tags.get(k) != v}
    if missing_tags:
        iam.tag_role(RoleName=spec.name, Tags=[{"Key": k, "Value": v} for k, v in missing_tags.items()])
    if current.description != spec.description:
        iam.update_role(RoleName=spec.name, Description=spec.description)


def _bring_to_spec(iam: IAMClient, current: RoleState, spec: RoleSpec) -> str:
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


@translating()
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
    iam = iam_client(clients, credentials=credentials)
    current = None if likely_new else _read_role(iam, spec.name)
    if current is None:
        try:
            arn = _create_role(iam, spec)
        except ClientError as exc:
            if error_code(exc) != "EntityAlreadyExists":
                raise
            current = _read_role(iam, spec.name)
            if current is None:
                raise AwsError(
                    "EntityAlreadyExists",
                    str(exc),
                    f"The role {spec.name} was created and deleted by someone else at the same time. "
                    f"{TRY_AGAIN}",
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
        if error_code(exc) != "NoSuchEntity":
            raise


def _delete_role(iam: IAMClient, name: str) -> bool:
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
        if error_code(exc) == "NoSuchEntity":
            return False
        raise
    return True


@translating()
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
    iam = iam_client(clients, credentials=credentials)
    if only_if_managed:
        try:
            tags = {t["Key"]: t["Value"] for t in _paginate(iam, "list_role_tags", "Tags", RoleName=name)}
        except ClientError as exc:
            if error_code(exc) == "NoSuchEntity":
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


# Adoption: the roles already in an account


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


@translating()
def roles_trusting_account(
    *, clients: ClientFactory, credentials: TemporaryCredentials | None, trusted_account_id: str,
    ignore_names: Iterable[str] = (),
) -> tuple[FoundRole, ...]:
    """Every role in the account the credentials reach whose trust policy lets ``trusted_account_id``
    (its root or any of its principals, or ``*``) assume it, except Switchyard's own (path
    ``/switchyard/`` or tag ``managed-by=switchyard``), AWS service roles and ``ignore_names`` (the
    access role). Reads only (ListRoles, ListRoleTags, ListAttachedRolePolicies)."""
    require_account_id(trusted_account_id)
    iam = iam_client(clients, credentials=credentials)
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


@translating()
def read_role_trust(
    *, clients: ClientFactory, credentials: TemporaryCredentials | None, name: str
) -> tuple[str, dict[str, Any]] | None:
    """``(arn, trust policy)`` of the role ``name`` in the account the credentials reach, or None
    when there is none. One GetRole: for checking whom an access role trusts."""
    if not ROLE_NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a valid IAM role name.")
    try:
        role = iam_client(clients, credentials=credentials).get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return None
        raise
    return str(role["Arn"]), _policy_document(role["AssumeRolePolicyDocument"])


# Drift: the roles under /switchyard/ and every role, as IAM lists them


SWITCHYARD_PATH: Final = "/switchyard/"


@dataclass(frozen=True)
class ListedRole:
    arn: str
    path: str
    name: str


@translating()
def list_switchyard_roles(*, clients: ClientFactory, credentials: TemporaryCredentials | None) -> list[ListedRole]:
    """Every role under the ``/switchyard/`` path in the account the credentials reach (all pages)."""
    iam = iam_client(clients, credentials=credentials)
    return [
        ListedRole(arn=raw["Arn"], path=raw["Path"], name=raw["RoleName"])
        for raw in _paginate(iam, "list_roles", "Roles", PathPrefix=SWITCHYARD_PATH)
    ]


@translating()
def role_is_switchyards(*, clients: ClientFactory, credentials: TemporaryCredentials | None, name: str) -> bool:
    """Whether the role carries the tag ``managed-by=switchyard`` (False when it is gone)."""
    iam = iam_client(clients, credentials=credentials)
    try:
        tags = {tag["Key"]: tag["Value"] for tag in _paginate(iam, "list_role_tags", "Tags", RoleName=name)}
    except ClientError as exc:
        if error_code(exc) == "NoSuchEntity":
            return False
        raise
    return tags.get(MANAGED_BY_TAG_KEY) == MANAGED_BY_TAG_VALUE


@translating()
def list_all_roles(*, clients: ClientFactory, credentials: TemporaryCredentials | None) -> list[dict[str, Any]]:
    """Every role in the account the credentials reach, at any path, with its trust policy."""
    iam = iam_client(clients, credentials=credentials)
    return list(_paginate(iam, "list_roles", "Roles"))
