"""Main-account IAM: the writes and reads behind enforcement (the ``/switchyard/`` managed policies of
IAM groups and users, group members, person tags, leavers), the account's authorization details for
the effective-access check, and an engineer's MFA device for their CLI profiles.

Every public function takes ``clients`` keyword-only and raises :class:`portal.aws.errors.AwsError`
for anything AWS refused (never a botocore error); :class:`PrincipalNotFound` and
:class:`PolicyTooLarge` (a ``ValueError``) are Switchyard's own refusals. The documents come from
:func:`portal.aws.policy_compiler.compile_assume_policies`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from botocore.exceptions import BotoCoreError, ClientError

from portal.aws.clients import ClientFactory, iam_client, sts_client

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_iam import IAMClient
from portal.aws.errors import translating
from portal.aws.limits import (
    MANAGED_POLICY_MAX_CHARS,
    MAX_MANAGED_POLICIES_PER_PRINCIPAL,
    MAX_POLICY_VERSIONS,
    policy_json,
    policy_size,
)
from portal.aws.policy_compiler import (
    MAX_POLICY_DOCUMENTS,
    POLICY_PATH,
    AppliedPolicies,
    ManagedPolicyDocument,
    PolicyTooLarge,
    PrincipalNotFound,
    PrincipalPolicies,
    PrincipalType,
)

logger = logging.getLogger(__name__)


@translating()
def apply_group_policies(
    *,
    clients: ClientFactory,
    group_name: str,
    documents: Sequence[Mapping[str, Any]],
    policy_name_prefix: str,
) -> AppliedPolicies:
    """Make the group's ``/switchyard/<prefix>-<n>`` policies say exactly ``documents``.

    Creates the group (path ``/switchyard/``) if missing and there is something to attach; creates or
    updates each policy (a new default version, pruning the oldest non-default one at 5 versions),
    attaches it, then detaches and deletes leftover ``<prefix>-<n>`` policies. Idempotent: applying
    the same documents again changes nothing. Empty ``documents`` remove every such policy.
    """
    return _apply(clients, "group", group_name, documents, policy_name_prefix, create_group=True)


@translating()
def apply_user_policies(
    *,
    clients: ClientFactory,
    user_name: str,
    documents: Sequence[Mapping[str, Any]],
    policy_name_prefix: str,
) -> AppliedPolicies:
    """As :func:`apply_group_policies` for an IAM user, which must exist (:class:`PrincipalNotFound`)."""
    return _apply(clients, "user", user_name, documents, policy_name_prefix, create_group=False)


@translating()
def remove_principal_policies(
    *,
    clients: ClientFactory,
    principal_type: PrincipalType,
    principal_name: str,
    policy_name_prefix: str,
) -> AppliedPolicies:
    """Detach and delete all of the principal's ``<prefix>-<n>`` policies (nothing is granted).
    The group or user itself is left alone; a missing one is not an error."""
    return _apply(clients, principal_type, principal_name, [], policy_name_prefix, create_group=False)


def _apply(
    clients: ClientFactory,
    principal_type: PrincipalType,
    principal_name: str,
    documents: Sequence[Mapping[str, Any]],
    prefix: str,
    *,
    create_group: bool,
) -> AppliedPolicies:
    _check_prefix(prefix)
    if len(documents) > MAX_POLICY_DOCUMENTS:
        raise PolicyTooLarge(
            f"{len(documents)} policies is more than the {MAX_POLICY_DOCUMENTS} IAM attaches."
        )
    texts = [policy_json(document) for document in documents]
    for number, document in enumerate(documents, start=1):
        size = policy_size(document)
        if size > MANAGED_POLICY_MAX_CHARS:
            raise PolicyTooLarge(
                f"Policy {prefix}-{number} is {size:,} characters; IAM allows {MANAGED_POLICY_MAX_CHARS:,}."
            )

    iam = iam_client(clients)
    arn_prefix = _policy_arn_prefix(clients)
    principal = _Principal(iam, principal_type, principal_name)

    group_created = False
    exists = principal.exists()
    if not exists and documents:
        if principal_type == "group" and create_group:
            iam.create_group(GroupName=principal_name, Path=POLICY_PATH)
            group_created = True
            logger.info("switchroles.iam.group_created", extra={"group": principal_name})
        else:
            raise PrincipalNotFound(f"IAM {principal_type} {principal_name!r} does not exist.")
        exists = True

    attached = principal.attached_policy_arns() if exists else {}
    ours = {arn for name, arn in attached.items() if _is_our_policy_name(name, prefix)}
    others = len(attached) - len(ours)
    if documents and others + len(documents) > MAX_MANAGED_POLICIES_PER_PRINCIPAL:
        raise PolicyTooLarge(
            f"IAM {principal_type} {principal_name!r} already has {others} other managed policies attached; "
            f"{len(documents)} more would pass the limit of {MAX_MANAGED_POLICIES_PER_PRINCIPAL}."
        )

    created: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    policy_arns: list[str] = []
    for number, (document, text) in enumerate(zip(documents, texts, strict=True), start=1):
        name = f"{prefix}-{number}"
        arn = f"{arn_prefix}{name}"
        outcome = _put_policy(iam, arn, name, document, text, principal_type, principal_name)
        {"created": created, "updated": updated, "unchanged": unchanged}[outcome].append(arn)
        if outcome != "created":
            # A policy is one principal's: if its group or user was renamed, the old one must not
            # keep the grants through an attachment left behind.
            _detach_from_others(iam, arn, principal_type, principal_name)
        if arn not in attached.values():
            principal.attach(arn)
        policy_arns.append(arn)

    # Leftovers: attached ones beyond the new count, plus orphans of an interrupted earlier run.
    leftovers = (ours - set(policy_arns)) | {
        f"{arn_prefix}{prefix}-{number}" for number in range(len(documents) + 1, MAX_POLICY_DOCUMENTS + 1)
    }
    deleted = [arn for arn in sorted(leftovers) if _delete_policy(iam, arn)]
    if created or updated or deleted or group_created:
        logger.info(
            "switchroles.iam.policies_applied",
            extra={
                "principal_type": principal_type,
                "principal": principal_name,
                # not "created": that name is taken by logging.LogRecord
                "policies_created": len(created),
                "policies_updated": len(updated),
                "policies_deleted": len(deleted),
            },
        )
    return AppliedPolicies(
        principal_type=principal_type,
        principal_name=principal_name,
        policy_arns=tuple(policy_arns),
        created=tuple(created),
        updated=tuple(updated),
        unchanged=tuple(unchanged),
        deleted=tuple(deleted),
        group_created=group_created,
    )


def _put_policy(
    iam: IAMClient,
    arn: str,
    name: str,
    document: Mapping[str, Any],
    text: str,
    principal_type: str,
    principal_name: str,
) -> str:
    try:
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
    except ClientError as exc:
        if not _is_no_such_entity(exc):
            raise
        iam.create_policy(
            PolicyName=name,
            Path=POLICY_PATH,
            PolicyDocument=text,
            Description=_description(principal_type, principal_name),
        )
        return "created"
    current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    if _as_document(current["Document"]) == _as_document(text):
        return "unchanged"
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    if len(versions) >= MAX_POLICY_VERSIONS:
        oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
        iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=text, SetAsDefault=True)
    return "updated"


def _detach_from_others(iam: IAMClient, arn: str, principal_type: PrincipalType, principal_name: str) -> None:
    for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
        for group in page.get("PolicyGroups", []):
            if (principal_type, principal_name) != ("group", group["GroupName"]):
                iam.detach_group_policy(GroupName=group["GroupName"], PolicyArn=arn)
                logger.warning("switchroles.iam.policy_detached", extra={"policy": arn, "group": group["GroupName"]})
        for user in page.get("PolicyUsers", []):
            if (principal_type, principal_name) != ("user", user["UserName"]):
                iam.detach_user_policy(UserName=user["UserName"], PolicyArn=arn)
                logger.warning("switchroles.iam.policy_detached", extra={"policy": arn, "user": user["UserName"]})
        for role in page.get("PolicyRoles", []):
            iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
            logger.warning("switchroles.iam.policy_detached", extra={"policy": arn, "role": role["RoleName"]})


def _delete_policy(iam: IAMClient, arn: str) -> bool:
    """Detach from every entity, delete non-default versions, delete. False if it did not exist."""
    try:
        iam.get_policy(PolicyArn=arn)
    except ClientError as exc:
        if _is_no_such_entity(exc):
            return False
        raise
    for page in iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=arn):
        for group in page.get("PolicyGroups", []):
            iam.detach_group_policy(GroupName=group["GroupName"], PolicyArn=arn)
        for user in page.get("PolicyUsers", []):
            iam.detach_user_policy(UserName=user["UserName"], PolicyArn=arn)
        for role in page.get("PolicyRoles", []):
            iam.detach_role_policy(RoleName=role["RoleName"], PolicyArn=arn)
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=arn)
    return True


# --- AWS: read ---------------------------------------------------------------------------------


@translating()
def read_group_policies(
    *, clients: ClientFactory, group_name: str, policy_name_prefix: str | None = None
) -> PrincipalPolicies:
    """Current default-version documents of the ``/switchyard/`` policies attached to the group
    (only ``<prefix>-<n>`` ones when a prefix is given), for drift checks."""
    return _read(clients, "group", group_name, policy_name_prefix)


@translating()
def read_user_policies(
    *, clients: ClientFactory, user_name: str, policy_name_prefix: str | None = None
) -> PrincipalPolicies:
    """As :func:`read_group_policies` for an IAM user."""
    return _read(clients, "user", user_name, policy_name_prefix)


def _read(
    clients: ClientFactory, principal_type: PrincipalType, principal_name: str, prefix: str | None
) -> PrincipalPolicies:
    iam = iam_client(clients)
    principal = _Principal(iam, principal_type, principal_name)
    if not principal.exists():
        return PrincipalPolicies(principal_type, principal_name, exists=False, policies=())
    found = []
    for name, arn in principal.attached_policy_arns(path_prefix=POLICY_PATH).items():
        if prefix is not None and not _is_our_policy_name(name, prefix):
            continue
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
        version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
        found.append(
            ManagedPolicyDocument(name, arn, version["VersionId"], _as_document(version["Document"]))
        )
    found.sort(key=lambda policy: _name_sort_key(policy.name))
    return PrincipalPolicies(principal_type, principal_name, exists=True, policies=tuple(found))


# --- AWS: group members -----------------------------------------------------------------------


@dataclass(frozen=True)
class GroupMembers:
    """What :func:`apply_group_members` did: IAM users added to / removed from the group, and
    wanted users that do not exist in IAM (Switchyard does not create IAM users)."""

    group_name: str
    added: tuple[str, ...]
    removed: tuple[str, ...]
    missing_users: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


@translating()
def read_group_members(*, clients: ClientFactory, group_name: str) -> tuple[str, ...] | None:
    """The IAM user names in the group, sorted; ``None`` when the group does not exist."""
    iam = iam_client(clients)
    names: list[str] = []
    try:
        for page in iam.get_paginator("get_group").paginate(GroupName=group_name):
            names.extend(user["UserName"] for user in page.get("Users", []))
    except ClientError as exc:
        if _is_no_such_entity(exc):
            return None
        raise
    return tuple(sorted(set(names)))


@translating()
def apply_group_members(*, clients: ClientFactory, group_name: str, user_names: Iterable[str]) -> GroupMembers:
    """Make the group's members exactly ``user_names`` (those that exist in IAM).

    A missing group is left missing (nothing to be a member of; :func:`apply_group_policies`
    creates it when there is something to allow). Idempotent.
    """
    wanted = set(user_names)
    for name in wanted:
        if not isinstance(name, str) or not re.fullmatch(r"[\w+=,.@-]{1,64}", name, re.ASCII):
            raise ValueError(f"Invalid IAM user name {name!r}.")
    current = read_group_members(clients=clients, group_name=group_name)
    if current is None:
        return GroupMembers(group_name, (), (), ())
    iam = iam_client(clients)
    # Removals first: a refused addition must never leave someone who left in the group.
    removed = []
    for name in sorted(set(current) - wanted):
        iam.remove_user_from_group(GroupName=group_name, UserName=name)
        removed.append(name)
    added, missing = [], []
    for name in sorted(wanted - set(current)):
        try:
            iam.add_user_to_group(GroupName=group_name, UserName=name)
        except ClientError as exc:
            if not _is_no_such_entity(exc):
                raise
            missing.append(name)
            continue
        added.append(name)
    if added or removed:
        logger.info(
            "switchroles.iam.group_members_applied",
            extra={"group": group_name, "members_added": len(added), "members_removed": len(removed)},
        )
    return GroupMembers(group_name, tuple(added), tuple(removed), tuple(missing))


# --- helpers -----------------------------------------------------------------------------------


class _Principal:
    def __init__(self, iam: IAMClient, principal_type: PrincipalType, name: str) -> None:
        if principal_type not in ("group", "user"):
            raise ValueError(f"principal_type must be 'group' or 'user', not {principal_type!r}")
        self.iam, self.type, self.name = iam, principal_type, name

    def exists(self) -> bool:
        try:
            if self.type == "group":
                self.iam.get_group(GroupName=self.name, MaxItems=1)
            else:
                self.iam.get_user(UserName=self.name)
        except ClientError as exc:
            if _is_no_such_entity(exc):
                return False
            raise
        return True

    def attached_policy_arns(self, path_prefix: str | None = None) -> dict[str, str]:
        operation = "list_attached_group_policies" if self.type == "group" else "list_attached_user_policies"
        kwargs: dict[str, Any] = {"GroupName" if self.type == "group" else "UserName": self.name}
        if path_prefix:
            kwargs["PathPrefix"] = path_prefix
        result = {}
        # The operation is chosen at run time; the stubs' get_paginator overloads need a literal one.
        for page in cast(Any, self.iam).get_paginator(operation).paginate(**kwargs):
            for policy in page["AttachedPolicies"]:
                result[policy["PolicyName"]] = policy["PolicyArn"]
        return result

    def attach(self, arn: str) -> None:
        if self.type == "group":
            self.iam.attach_group_policy(GroupName=self.name, PolicyArn=arn)
        else:
            self.iam.attach_user_policy(UserName=self.name, PolicyArn=arn)


def _policy_arn_prefix(clients: ClientFactory) -> str:
    identity = sts_client(clients).get_caller_identity()
    partition = identity["Arn"].split(":")[1]
    return f"arn:{partition}:iam::{identity['Account']}:policy{POLICY_PATH}"


def _description(principal_type: str, principal_name: str) -> str:
    return f"Managed by Switchyard: sts:AssumeRole for IAM {principal_type} {principal_name}"[:1000]


def _check_prefix(prefix: str) -> None:
    # <prefix>-<n> must be a valid policy name (1-128 of [\w+=,.@-]).
    if not isinstance(prefix, str) or not re.fullmatch(r"[\w+=,.@-]{1,120}", prefix, re.ASCII):
        raise ValueError("The policy name prefix must be 1-120 letters, digits or +=,.@-_ characters.")


def _is_our_policy_name(name: str, prefix: str) -> bool:
    return re.fullmatch(re.escape(prefix) + r"-[0-9]+", name) is not None


def _name_sort_key(name: str) -> tuple[str, int]:
    base, _, number = name.rpartition("-")
    return (base, int(number)) if number.isdigit() else (name, 0)


def _as_document(value: Any) -> dict[str, Any]:
    """boto3 decodes IAM policy documents to dicts; accept (URL-encoded) JSON text as well."""
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value)
    if text.lstrip().startswith("%7B") or text.lstrip().startswith("%7b"):
        text = unquote(text)
    result = json.loads(text)
    if not isinstance(result, dict):
        raise ValueError("A policy document must be a JSON object.")
    return result


def _is_no_such_entity(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("NoSuchEntity", "NoSuchEntityException")


# --- AWS: a person who leaves (issue 18) -----------------------------------------------------------

#: The principal tag Switchyard puts on the IAM users of its people (``portal.aws``, where the
#: console roles' trust condition checks it). Any tag whose key starts with "switchyard" is Switchyard's.
_OUR_TAG_PREFIX = "switchyard"


def _is_our_tag(key: str, value: str) -> bool:
    return key.lower().startswith(_OUR_TAG_PREFIX) or (key == "managed-by" and value == "switchyard")


@dataclass(frozen=True)
class UserSwitchyardState:
    """What of Switchyard an IAM user still carries in the main account, read from IAM."""

    user_name: str
    exists: bool
    groups: tuple[str, ...]
    policies: tuple[str, ...]  # ARNs of attached policies under /switchyard/
    tags: tuple[str, ...]  # keys of Switchyard's tags

    @property
    def is_clean(self) -> bool:
        return not (self.groups or self.policies or self.tags)

    def as_dict(self) -> dict[str, Any]:
        return {"user_name": self.user_name, "exists": self.exists, "groups": list(self.groups),
                "policies": list(self.policies), "tags": list(self.tags)}


@translating()
def read_user_switchyard_state(
    *, clients: ClientFactory, user_name: str, group_names: Iterable[str] = ()
) -> UserSwitchyardState:
    """The IAM user's Switchyard groups (path ``/switchyard/`` or one of ``group_names``, the
    teams' groups), attached ``/switchyard/`` policies and Switchyard tags. A missing user carries
    nothing (``exists=False``)."""
    iam = iam_client(clients)
    ours = set(group_names)
    try:
        groups = [
            group["GroupName"]
            for page in iam.get_paginator("list_groups_for_user").paginate(UserName=user_name)
            for group in page.get("Groups", [])
            if group["GroupName"] in ours or group.get("Path", "").startswith(POLICY_PATH)
        ]
        policies = [
            policy["PolicyArn"]
            for page in iam.get_paginator("list_attached_user_policies").paginate(UserName=user_name)
            for policy in page.get("AttachedPolicies", [])
            if f":policy{POLICY_PATH}" in policy["PolicyArn"]
        ]
        tags = [
            tag["Key"]
            for page in iam.get_paginator("list_user_tags").paginate(UserName=user_name)
            for tag in page.get("Tags", [])
            if _is_our_tag(tag["Key"], tag.get("Value", ""))
        ]
    except ClientError as exc:
        if _is_no_such_entity(exc):
            return UserSwitchyardState(user_name, False, (), (), ())
        raise
    return UserSwitchyardState(user_name, True, tuple(sorted(groups)), tuple(sorted(policies)), tuple(sorted(tags)))


@translating()
def remove_user_from_switchyard(
    *, clients: ClientFactory, user_name: str, group_names: Iterable[str] = (), policy_name_prefix: str
) -> UserSwitchyardState:
    """Take everything of Switchyard off the IAM user: out of its groups, its ``/switchyard/``
    policies detached (the person's own ``<prefix>-<n>`` ones deleted), Switchyard's tags removed.
    The user itself stays (Switchyard does not create or delete IAM users). Idempotent; returns
    what it removed. Call :func:`read_user_switchyard_state` afterwards to verify."""
    _check_prefix(policy_name_prefix)
    found = read_user_switchyard_state(clients=clients, user_name=user_name, group_names=group_names)
    if not found.exists:
        return found
    iam = iam_client(clients)
    for group in found.groups:
        try:
            iam.remove_user_from_group(GroupName=group, UserName=user_name)
        except ClientError as exc:
            if not _is_no_such_entity(exc):
                raise
    for arn in found.policies:
        try:
            iam.detach_user_policy(UserName=user_name, PolicyArn=arn)
        except ClientError as exc:
            if not _is_no_such_entity(exc):
                raise
        if _is_our_policy_name(arn.rsplit("/", 1)[-1], policy_name_prefix):
            _delete_policy(iam, arn)
    if found.tags:
        iam.untag_user(UserName=user_name, TagKeys=list(found.tags))
    logger.info("switchroles.iam.user_removed", extra={"user": user_name, "groups": len(found.groups),
                                                       "policies": len(found.policies), "tags": len(found.tags)})
    return found
# --- AWS: the whole main account, for effective access ---------------------------------------------


@dataclass(frozen=True)
class AuthorizationDetails:
    """The main account's ``GetAccountAuthorizationDetails`` (every page merged), with the
    documents of attached AWS managed policies added to ``Policies``, and how many AWS calls
    reading it took."""

    details: dict[str, Any]
    api_calls: int


@translating()
def read_authorization_details(*, clients: ClientFactory) -> AuthorizationDetails:
    """One paginated walk of the main account's IAM: users (with groups, inline and attached
    policies, boundaries, tags), groups, roles and customer managed policies; then one
    ``GetPolicy`` + ``GetPolicyVersion`` per AWS managed policy that is attached somewhere (a
    handful), rather than all of AWS's managed policies. Raises AwsError."""
    iam = iam_client(clients)
    merged: dict[str, Any] = {"UserDetailList": [], "GroupDetailList": [], "RoleDetailList": [], "Policies": []}
    calls = 0
    marker: str | None = None
    while True:
        kwargs: dict[str, Any] = {"Filter": ["User", "Group", "Role", "LocalManagedPolicy"]}
        if marker:
            kwargs["Marker"] = marker
        page = iam.get_account_authorization_details(**kwargs)
        calls += 1
        for key in merged:
            merged[key].extend(page.get(key, []))
        if not page.get("IsTruncated"):
            break
        marker = page.get("Marker")
        if not marker:
            break
    known = {policy["Arn"] for policy in merged["Policies"]}
    attached: set[str] = set()
    for key in ("UserDetailList", "GroupDetailList", "RoleDetailList"):
        for entity in merged[key]:
            attached.update(p["PolicyArn"] for p in entity.get("AttachedManagedPolicies", []))
            boundary = (entity.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
            if boundary:
                attached.add(boundary)
    for arn in sorted(attached - known):
        try:
            policy = iam.get_policy(PolicyArn=arn)["Policy"]
            version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
        except ClientError as exc:
            calls += 1
            if _is_no_such_entity(exc):
                continue
            raise
        calls += 2
        merged["Policies"].append({
            "Arn": arn, "PolicyName": policy["PolicyName"], "Path": policy.get("Path", "/"),
            "DefaultVersionId": policy["DefaultVersionId"],
            "PolicyVersionList": [{"Document": version["Document"], "VersionId": version["VersionId"],
                                   "IsDefaultVersion": True}],
        })
    return AuthorizationDetails(details=merged, api_calls=calls)


# --- AWS: the person tag on main-account IAM users -------------------------------------------------


@translating()
def apply_person_tags(
    *, clients: ClientFactory, tag_key: str, tagged: Iterable[str], untagged: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Put ``tag_key`` on the IAM users ``tagged`` (value: the user name) and take it off
    ``untagged``; users that do not exist are skipped. Idempotent. Returns (tagged, untagged)
    as done. Raises AwsError (a missing user or tag is not an error)."""
    iam = iam_client(clients)
    done_tagged: list[str] = []
    done_untagged: list[str] = []
    for name in sorted(set(tagged)):
        try:
            iam.tag_user(UserName=name, Tags=[{"Key": tag_key, "Value": name}])
        except ClientError as exc:
            if not _is_no_such_entity(exc):
                raise
            continue
        done_tagged.append(name)
    for name in sorted(set(untagged) - set(tagged)):
        try:
            iam.untag_user(UserName=name, TagKeys=[tag_key])
        except ClientError as exc:
            if not _is_no_such_entity(exc):
                raise
            continue
        done_untagged.append(name)
    return tuple(done_tagged), tuple(done_untagged)


@translating()
def sandbox_iam_users_ensure(*, clients: ClientFactory, user_names: Iterable[str], path: str = "/people/") -> None:
    """The IAM users of the sandbox's demo people, created when missing. Switchyard never creates IAM
    users outside the sandbox (people's users are the customer's own)."""
    iam = iam_client(clients)
    for user_name in user_names:
        try:
            iam.get_user(UserName=user_name)
        except iam.exceptions.NoSuchEntityException:
            iam.create_user(UserName=user_name, Path=path)


# --- the engineer's MFA device ----------------------------------------------------------------


@dataclass(frozen=True)
class MfaLookup:
    """The device's serial (ARN) to put in ``mfa_serial``, or None with ``note`` saying why and
    what to do."""

    serial: str | None
    note: str = ""


def mfa_device_of(*, clients: ClientFactory, user_name: str) -> MfaLookup:
    """The IAM user's first authenticator the CLI can use (virtual or hardware TOTP; a security key
    cannot answer the CLI's prompt), read with ListMFADevices in the main account."""
    try:
        devices = iam_client(clients).list_mfa_devices(UserName=user_name).get("MFADevices", [])
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchEntity":
            return MfaLookup(None, f"Your IAM user {user_name} does not exist in the main account. "
                                   "Ask a manager to check the IAM user name on your profile.")
        return MfaLookup(None, f"Switchyard could not read your MFA device from IAM ({code}). "
                               "Download the profiles again in a few minutes, or add mfa_serial yourself.")
    except BotoCoreError as exc:
        return MfaLookup(None, f"Switchyard could not reach IAM to read your MFA device ({type(exc).__name__}). "
                               "Download the profiles again in a few minutes, or add mfa_serial yourself.")
    usable = sorted((device for device in devices if ":mfa/" in device.get("SerialNumber", "")
                     or not device.get("SerialNumber", "").startswith("arn:")),
                    key=lambda device: str(device.get("EnableDate", "")))
    if usable:
        return MfaLookup(usable[0]["SerialNumber"])
    if devices:
        return MfaLookup(None, f"Your IAM user {user_name} has only a security key, which the AWS CLI cannot use. "
                               "Add an authenticator app as a second MFA device in IAM, then download again.")
    return MfaLookup(None, f"Your IAM user {user_name} has no MFA device, and the roles require one. "
                           "Add an authenticator app in IAM (Security credentials), then download again.")
