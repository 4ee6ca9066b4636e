"""Main-account enforcement: the IAM policies that let a team (IAM group) or person (IAM user)
call ``sts:AssumeRole`` on exactly the member-account roles Switchyard granted them.

The pure half (the I/O half is :mod:`portal.aws.main_iam`):

* :func:`compile_assume_policies` turns grants into at most 10 managed-policy documents of at
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

import re
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from portal.aws.limits import (
    ACCOUNT_ID_RE,
    MANAGED_POLICY_MAX_CHARS,
    MAX_MANAGED_POLICIES_PER_PRINCIPAL,
    PATH_SEGMENT_RE,
    ROLE_NAME_RE,
    ROLE_PATH_RE,
    policy_size,
)

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
_SLUG_RE = PATH_SEGMENT_RE
_ID_CHARS_RE = re.compile(r"[^A-Za-z0-9_-]+")

PrincipalType = Literal["group", "user"]


class PolicyTooLarge(ValueError):
    """The grants cannot be expressed within IAM's limits (10 policies of 6,144 characters)."""


class PrincipalNotFound(LookupError):
    """The IAM user to attach policies to does not exist (Switchyard creates groups, not users)."""


class RoleRef(NamedTuple):
    """One granted role: ``arn:aws:iam::<account_id>:role<role_path><role_name>``. (A named tuple:
    enforcement and the effective-access check make one per role of the estate and put each in the
    sets of every principal granted it, and a tuple is made, hashed and compared at C speed.)"""

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
