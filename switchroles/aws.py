"""Main-account enforcement: the IAM policies that let a team (IAM group) or person (IAM user)
call ``sts:AssumeRole`` on exactly the member-account roles Switchyard granted them.

Two halves:

* :func:`compile_assume_policies` (pure) turns grants into at most 10 managed-policy documents of at
  most 6,144 characters each, and :func:`allowed_role_arns` expands documents back into role ARNs
  so tests and drift checks can compare sets.
* ``apply_*`` / ``read_*`` / :func:`remove_principal_policies` write and read those documents as
  customer managed policies ``<prefix>-<n>`` under the path ``/switchyard/``.

Compression, most exact first (the first level whose documents fit is used):

1. **per client**: one statement per client and *role set* (the set of role names granted in an
   account): ``Resource`` lists ``arn:aws:iam::*:role/switchyard/<client>/<role>`` for each role in
   the set and ``aws:ResourceAccount`` lists the client's accounts with exactly that set. Exact at
   the ARN level: every allowed (account, ARN) pair is granted.
2. **shared across clients**: one statement per role set for all clients, listing each client's
   exact role paths and the union of their accounts. Also admits, syntactically, a role at client
   B's path inside client A's account; Switchyard never creates one (roles live under the owning
   client's slug), so among roles Switchyard creates the allowed set is exactly the granted set.
3. **path wildcard**: as 2 but the resource is ``arn:aws:iam::*:role/switchyard/*/<role>``: among
   Switchyard's roles (``/switchyard/<owning client>/<role>``) still exactly the grants, and
   roughly 15 characters per account whatever the number of clients.

Roles whose path is not ``/switchyard/<client-slug>/`` (or accounts claimed by two clients) are
always listed as full ARNs, which is exact without any assumption.

Every statement requires MFA with ``"Bool": {"aws:MultiFactorAuthPresent": "true"}``.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

from botocore.exceptions import ClientError

from onboarding.aws import PERSON_TAG_KEY as PERSON_TAG_KEY  # one name for the tag, re-exported here
from switchroles.policies import (
    ACCOUNT_ID_RE,
    MANAGED_POLICY_MAX_CHARS,
    MAX_MANAGED_POLICIES_PER_PRINCIPAL,
    MAX_POLICY_VERSIONS,
    ROLE_NAME_RE,
    ROLE_PATH_RE,
    policy_json,
    policy_size,
)

if TYPE_CHECKING:
    from portal.aws import ClientFactory

logger = logging.getLogger(__name__)

POLICY_PATH = "/switchyard/"
ROLE_PATH_ROOT = "/switchyard/"
MAX_POLICY_DOCUMENTS = MAX_MANAGED_POLICIES_PER_PRINCIPAL
MFA_CONDITION = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}
RESOURCE_ACCOUNT_KEY = "aws:ResourceAccount"
_ASSUME_ROLE = "sts:AssumeRole"
_STATEMENT_KEYS = {"Effect", "Action", "Resource", "Condition"}
_WILDCARD_ROLE_ARN_RE = re.compile(
    r"\Aarn:aws:iam::\*:role(?P<path>/(?:[\w+=,.@*-]+/)*)(?P<name>[\w+=,.@-]+)\Z", re.ASCII
)
_ROLE_ARN_RE = re.compile(
    r"\Aarn:aws:iam::(?P<account>[0-9]{12}):role(?P<path>/(?:[\w+=,.@-]+/)*)(?P<name>[\w+=,.@-]+)\Z", re.ASCII
)
_SLUG_RE = re.compile(r"\A[\w+=,.@-]+\Z", re.ASCII)
_ID_CHARS_RE = re.compile(r"[^A-Za-z0-9_-]+")

PrincipalType = Literal["group", "user"]


class PolicyTooLarge(ValueError):
    """The grants cannot be expressed within IAM's limits (10 policies of 6,144 characters)."""


class PrincipalNotFound(LookupError):
    """The IAM user to attach policies to does not exist (Switchyard creates groups, not users)."""


@dataclass(frozen=True)
class RoleRef:
    """One granted role: ``arn:aws:iam::<account_id>:role<role_path><role_name>``."""

    account_id: str
    client_slug: str
    role_path: str
    role_name: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role{self.role_path}{self.role_name}"


@dataclass(frozen=True)
class ManagedPolicyDocument:
    name: str
    arn: str
    version_id: str
    document: dict[str, Any]


@dataclass(frozen=True)
class PrincipalPolicies:
    """The ``/switchyard/`` managed policies attached to a group or user, in ``<prefix>-<n>`` order."""

    principal_type: PrincipalType
    principal_name: str
    exists: bool
    policies: tuple[ManagedPolicyDocument, ...]

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [policy.document for policy in self.policies]


@dataclass(frozen=True)
class AppliedPolicies:
    """What :func:`apply_group_policies` / :func:`apply_user_policies` did (ARNs per outcome)."""

    principal_type: PrincipalType
    principal_name: str
    policy_arns: tuple[str, ...]
    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]
    deleted: tuple[str, ...]
    group_created: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted or self.group_created)


# --- compile -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """A piece of a statement: allows ``accounts`` x ``resources`` (no accounts: full ARNs)."""

    accounts: tuple[str, ...]
    resources: tuple[str, ...]


class _DoesNotFit(Exception):
    pass


def compile_assume_policies(*, principal_label: str, role_arns: Iterable[RoleRef]) -> list[dict[str, Any]]:
    """IAM policy documents allowing ``sts:AssumeRole`` (with MFA) on exactly the granted roles.

    Deterministic (same grants, same documents, so re-applying changes nothing), at most
    :data:`MAX_POLICY_DOCUMENTS` documents of at most 6,144 characters. Empty grants give ``[]``.
    Raises ValueError for an invalid RoleRef and :class:`PolicyTooLarge` when nothing fits.
    """
    refs = sorted(
        set(role_arns), key=lambda ref: (ref.client_slug, ref.account_id, ref.role_path, ref.role_name)
    )
    for ref in refs:
        _check_ref(ref)
    if not refs:
        return []

    # Accounts claimed by two clients break the "roles live under the owning client's slug"
    # reasoning behind levels 2-3, so their roles are always listed as full ARNs.
    slugs_by_account: dict[str, set[str]] = defaultdict(set)
    for ref in refs:
        slugs_by_account[ref.account_id].add(ref.client_slug)
    regular = [
        ref
        for ref in refs
        if ref.role_path == f"{ROLE_PATH_ROOT}{ref.client_slug}/"
        and len(slugs_by_account[ref.account_id]) == 1
    ]
    irregular = sorted({ref.arn for ref in refs} - {ref.arn for ref in regular})

    # role set ("signature") per account, then accounts per (client, signature)
    names_by_account: dict[str, set[str]] = defaultdict(set)
    client_of: dict[str, str] = {}
    for ref in regular:
        names_by_account[ref.account_id].add(ref.role_name)
        client_of[ref.account_id] = ref.client_slug
    accounts_by_client_signature: dict[tuple[str, ...], dict[str, list[str]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for account, names in sorted(names_by_account.items()):
        accounts_by_client_signature[tuple(sorted(names))][client_of[account]].append(account)

    full_arn_group = (
        [("arn", [_Unit(accounts=(), resources=(arn,)) for arn in irregular])] if irregular else []
    )
    for level in (1, 2, 3):
        groups = _statement_groups(level, accounts_by_client_signature) + full_arn_group
        try:
            return _pack(principal_label, groups)
        except _DoesNotFit:
            continue
    raise PolicyTooLarge(
        f"The roles granted to {principal_label} do not fit in {MAX_POLICY_DOCUMENTS} IAM policies of "
        f"{MANAGED_POLICY_MAX_CHARS:,} characters "
        f"({len(refs):,} roles in {len(slugs_by_account):,} accounts). "
        "Split the grants across more teams or grant fewer accounts."
    )


def _check_ref(ref: RoleRef) -> None:
    if not isinstance(ref, RoleRef):
        raise ValueError(f"Expected a RoleRef, got {ref!r}.")
    if not isinstance(ref.account_id, str) or not ACCOUNT_ID_RE.match(ref.account_id):
        raise ValueError(f"Invalid account ID in {ref!r}.")
    if not isinstance(ref.role_name, str) or not ROLE_NAME_RE.match(ref.role_name):
        raise ValueError(f"Invalid role name in {ref!r}.")
    if not isinstance(ref.role_path, str) or not ROLE_PATH_RE.match(ref.role_path):
        raise ValueError(f"Invalid role path in {ref!r}.")
    if not isinstance(ref.client_slug, str) or not _SLUG_RE.match(ref.client_slug):
        raise ValueError(f"Invalid client slug in {ref!r}.")


def _statement_groups(
    level: int, accounts_by_client_signature: Mapping[tuple[str, ...], Mapping[str, list[str]]]
) -> list[tuple[Any, list[_Unit]]]:
    """Units grouped by the statement they may share, for one compression level."""
    groups: list[tuple[Any, list[_Unit]]] = []
    for signature, accounts_by_client in sorted(accounts_by_client_signature.items()):
        units = []
        for client, accounts in sorted(accounts_by_client.items()):
            if level == 3:
                resources = tuple(f"arn:aws:iam::*:role{ROLE_PATH_ROOT}*/{name}" for name in signature)
            else:
                resources = tuple(f"arn:aws:iam::*:role{ROLE_PATH_ROOT}{client}/{name}" for name in signature)
            unit = _Unit(accounts=tuple(sorted(accounts)), resources=resources)
            if level == 1:
                groups.append(((client, signature), [unit]))
            else:
                units.append(unit)
        if level != 1:
            groups.append((signature, units))
    return groups


def _statement(unit: _Unit) -> dict[str, Any]:
    condition: dict[str, Any] = {"Bool": dict(MFA_CONDITION["Bool"])}
    if unit.accounts:
        condition["StringEquals"] = {RESOURCE_ACCOUNT_KEY: list(unit.accounts)}
    return {
        "Effect": "Allow",
        "Action": _ASSUME_ROLE,
        "Resource": list(unit.resources),
        "Condition": condition,
    }


def _merge(first: _Unit, second: _Unit) -> _Unit:
    return _Unit(
        accounts=tuple(dict.fromkeys(first.accounts + second.accounts)),
        resources=tuple(dict.fromkeys(first.resources + second.resources)),
    )


def _document(principal_label: str, number: int | None, statements: list[dict[str, Any]]) -> dict[str, Any]:
    label = _ID_CHARS_RE.sub("-", principal_label).strip("-")[:64] or "principal"
    # While packing the number is unknown; measure with the widest one so the final text fits too.
    suffix = str(number) if number is not None else str(MAX_POLICY_DOCUMENTS)
    return {"Version": "2012-10-17", "Id": f"switchyard-{label}-{suffix}", "Statement": statements}


def _pack(principal_label: str, groups: list[tuple[Any, list[_Unit]]]) -> list[dict[str, Any]]:
    """Greedy fill: units of one group share a statement while the document has room."""
    documents: list[list[_Unit]] = []  # statements (as units) per document

    def fits(statements: list[_Unit]) -> bool:
        document = _document(principal_label, None, [_statement(unit) for unit in statements])
        return policy_size(document) <= MANAGED_POLICY_MAX_CHARS

    for _key, units in groups:
        open_statement = False  # is the last statement of the last document this group's?
        pending = deque(units)
        while pending:
            unit = pending.popleft()
            if open_statement:
                merged = documents[-1][:-1] + [_merge(documents[-1][-1], unit)]
                if fits(merged):
                    documents[-1] = merged
                    continue
            if documents and fits(documents[-1] + [unit]):
                documents[-1].append(unit)
                open_statement = True
                continue
            if fits([unit]):
                documents.append([unit])
                open_statement = True
                if len(documents) > MAX_POLICY_DOCUMENTS:
                    raise _DoesNotFit
                continue
            pending.extendleft(reversed(_split(unit)))
    if len(documents) > MAX_POLICY_DOCUMENTS:
        raise _DoesNotFit
    return [
        _document(principal_label, number, [_statement(unit) for unit in statements])
        for number, statements in enumerate(documents, start=1)
    ]


def _split(unit: _Unit) -> list[_Unit]:
    """Halve a unit too big for an empty document; each half still allows only granted pairs."""
    if len(unit.accounts) > 1:
        middle = len(unit.accounts) // 2
        return [_Unit(unit.accounts[:middle], unit.resources), _Unit(unit.accounts[middle:], unit.resources)]
    if len(unit.resources) > 1:
        middle = len(unit.resources) // 2
        return [_Unit(unit.accounts, unit.resources[:middle]), _Unit(unit.accounts, unit.resources[middle:])]
    raise _DoesNotFit


def allowed_role_arns(
    documents: Iterable[Mapping[str, Any]], *, account_clients: Mapping[str, str] | None = None
) -> set[str]:
    """The role ARNs that documents in Switchyard's form allow assuming.

    ``account_clients`` (account ID -> client slug) lets the expansion apply the ARN scheme: a
    ``/switchyard/<slug>/`` role exists only in that client's accounts, so cross-client pairs of a
    shared statement are dropped and ``/switchyard/*/`` resources resolve to the owning client.
    Without it, explicit resources are expanded literally (every listed account x every resource)
    and a ``/switchyard/*/`` resource raises ValueError.

    Raises ValueError for any statement not in the form :func:`compile_assume_policies` writes
    (Deny, NotAction, missing MFA, unknown condition, wildcard resource without accounts, ...), so
    a drift check treats a hand-edited policy as drift rather than guessing.
    """
    allowed: set[str] = set()
    for document in documents:
        statements = document.get("Statement", [])
        if isinstance(statements, Mapping):
            statements = [statements]
        for statement in statements:
            accounts, resources = _parse_statement(statement)
            for resource in resources:
                if not accounts:
                    if not _ROLE_ARN_RE.match(resource):
                        raise ValueError(f"Not a role ARN: {resource!r}")
                    allowed.add(resource)
                    continue
                match = _WILDCARD_ROLE_ARN_RE.match(resource)
                if not match:
                    raise ValueError(f"Not a Switchyard role pattern: {resource!r}")
                allowed.update(_expand(match["path"], match["name"], accounts, account_clients))
    return allowed


def _parse_statement(statement: Any) -> tuple[list[str], list[str]]:
    if not isinstance(statement, Mapping) or set(statement) - {"Sid"} != _STATEMENT_KEYS:
        raise ValueError(f"Statement not in Switchyard's form: {statement!r}")
    action = statement["Action"]
    if statement["Effect"] != "Allow" or (action != _ASSUME_ROLE and action != [_ASSUME_ROLE]):
        raise ValueError(f"Statement not in Switchyard's form: {statement!r}")
    condition = statement["Condition"]
    if not isinstance(condition, Mapping) or condition.get("Bool") != MFA_CONDITION["Bool"]:
        raise ValueError(f"Statement does not require MFA: {statement!r}")
    accounts: list[str] = []
    if set(condition) - {"Bool"}:
        string_equals = condition.get("StringEquals")
        if set(condition) != {"Bool", "StringEquals"} or set(string_equals or ()) != {RESOURCE_ACCOUNT_KEY}:
            raise ValueError(f"Unexpected condition: {condition!r}")
        accounts = _as_list(condition["StringEquals"][RESOURCE_ACCOUNT_KEY])
        if not accounts or not all(isinstance(a, str) and ACCOUNT_ID_RE.match(a) for a in accounts):
            raise ValueError(f"Unexpected {RESOURCE_ACCOUNT_KEY} values: {accounts!r}")
    resources = _as_list(statement["Resource"])
    if not resources or not all(isinstance(resource, str) for resource in resources):
        raise ValueError(f"Unexpected Resource: {statement['Resource']!r}")
    return accounts, resources


def _expand(path: str, name: str, accounts: list[str], account_clients: Mapping[str, str] | None) -> set[str]:
    result = set()
    wildcard_client = path == f"{ROLE_PATH_ROOT}*/"
    if "*" in path and not wildcard_client:
        raise ValueError(f"Unexpected wildcard in role path {path!r}")
    for account in accounts:
        if wildcard_client:
            if account_clients is None or account not in account_clients:
                raise ValueError(f"Need the client of account {account} to expand {path}{name}.")
            result.add(f"arn:aws:iam::{account}:role{ROLE_PATH_ROOT}{account_clients[account]}/{name}")
            continue
        slug = _client_slug_of_path(path)
        if account_clients is not None and slug is not None and account in account_clients:
            if account_clients[account] != slug:
                continue  # a path of another client: no such Switchyard role in this account
        result.add(f"arn:aws:iam::{account}:role{path}{name}")
    return result


def _client_slug_of_path(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) == 4 and f"/{parts[1]}/" == ROLE_PATH_ROOT:
        return parts[2]
    return None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


# --- AWS: write --------------------------------------------------------------------------------


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


def apply_user_policies(
    *,
    clients: ClientFactory,
    user_name: str,
    documents: Sequence[Mapping[str, Any]],
    policy_name_prefix: str,
) -> AppliedPolicies:
    """As :func:`apply_group_policies` for an IAM user, which must exist (:class:`PrincipalNotFound`)."""
    return _apply(clients, "user", user_name, documents, policy_name_prefix, create_group=False)


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

    iam = clients.client("iam")
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
    iam: Any,
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


def _detach_from_others(iam: Any, arn: str, principal_type: PrincipalType, principal_name: str) -> None:
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


def _delete_policy(iam: Any, arn: str) -> bool:
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


def read_group_policies(
    *, clients: ClientFactory, group_name: str, policy_name_prefix: str | None = None
) -> PrincipalPolicies:
    """Current default-version documents of the ``/switchyard/`` policies attached to the group
    (only ``<prefix>-<n>`` ones when a prefix is given), for drift checks."""
    return _read(clients, "group", group_name, policy_name_prefix)


def read_user_policies(
    *, clients: ClientFactory, user_name: str, policy_name_prefix: str | None = None
) -> PrincipalPolicies:
    """As :func:`read_group_policies` for an IAM user."""
    return _read(clients, "user", user_name, policy_name_prefix)


def _read(
    clients: ClientFactory, principal_type: PrincipalType, principal_name: str, prefix: str | None
) -> PrincipalPolicies:
    iam = clients.client("iam")
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


def read_group_members(*, clients: ClientFactory, group_name: str) -> tuple[str, ...] | None:
    """The IAM user names in the group, sorted; ``None`` when the group does not exist."""
    iam = clients.client("iam")
    names: list[str] = []
    try:
        for page in iam.get_paginator("get_group").paginate(GroupName=group_name):
            names.extend(user["UserName"] for user in page.get("Users", []))
    except ClientError as exc:
        if _is_no_such_entity(exc):
            return None
        raise
    return tuple(sorted(set(names)))


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
    iam = clients.client("iam")
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
    def __init__(self, iam: Any, principal_type: PrincipalType, name: str) -> None:
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
        for page in self.iam.get_paginator(operation).paginate(**kwargs):
            for policy in page["AttachedPolicies"]:
                result[policy["PolicyName"]] = policy["PolicyArn"]
        return result

    def attach(self, arn: str) -> None:
        if self.type == "group":
            self.iam.attach_group_policy(GroupName=self.name, PolicyArn=arn)
        else:
            self.iam.attach_user_policy(UserName=self.name, PolicyArn=arn)


def _policy_arn_prefix(clients: ClientFactory) -> str:
    identity = clients.client("sts").get_caller_identity()
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

#: The principal tag Switchyard puts on the IAM users of its people (``onboarding.aws``, where the
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


def read_user_switchyard_state(
    *, clients: ClientFactory, user_name: str, group_names: Iterable[str] = ()
) -> UserSwitchyardState:
    """The IAM user's Switchyard groups (path ``/switchyard/`` or one of ``group_names``, the
    teams' groups), attached ``/switchyard/`` policies and Switchyard tags. A missing user carries
    nothing (``exists=False``)."""
    iam = clients.client("iam")
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
    iam = clients.client("iam")
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


def read_authorization_details(*, clients: ClientFactory) -> AuthorizationDetails:
    """One paginated walk of the main account's IAM: users (with groups, inline and attached
    policies, boundaries, tags), groups, roles and customer managed policies; then one
    ``GetPolicy`` + ``GetPolicyVersion`` per AWS managed policy that is attached somewhere (a
    handful), rather than all of AWS's managed policies. Raises botocore errors unchanged."""
    iam = clients.client("iam")
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


def apply_person_tags(
    *, clients: ClientFactory, tag_key: str, tagged: Iterable[str], untagged: Iterable[str]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Put ``tag_key`` on the IAM users ``tagged`` (value: the user name) and take it off
    ``untagged``; users that do not exist are skipped. Idempotent. Returns (tagged, untagged)
    as done. Raises botocore errors other than NoSuchEntity unchanged."""
    iam = clients.client("iam")
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
