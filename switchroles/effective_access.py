"""What AWS really allows: which main-account principals can assume which member-account roles.

Every member role trusts ``arn:aws:iam::<main>:root``, which hands the decision to the main
account's IAM: any IAM user (or role) there whose own policies allow ``sts:AssumeRole`` on a role
can switch into it, grant or no grant. moto does not evaluate policies, so this module is
Switchyard's own evaluator, pure (no AWS, no database): it takes the main account's
``GetAccountAuthorizationDetails`` output (all pages merged, see
``portal.aws.read_authorization_details``) and the roles to decide for, and answers, for
each pair, the way AWS's policy-evaluation logic does for a cross-account ``sts:AssumeRole``:

1. an explicit ``Deny`` in any identity policy or in the permissions boundary wins;
2. otherwise some identity policy (user inline and attached, the user's groups' inline and
   attached; a role's inline and attached) must ``Allow`` it (``Action``/``NotAction``,
   ``Resource``/``NotResource``, wildcards; actions case-insensitive, ARNs glob-matched);
3. a permissions boundary, when set, must allow it too;
4. the target role's trust policy must allow the principal (the main account's root or the
   principal's own ARN), with its conditions met.

The management account is not subject to SCPs, so none apply here. Conditions are decided when
the portal can know the answer (``aws:ResourceAccount``, ``aws:MultiFactorAuthPresent``,
``aws:PrincipalTag/*``, ``aws:username``, ``aws:PrincipalArn``/``Account``/``Type``, and keys the
caller chooses such as ``sts:RoleSessionName``); any other condition never drops access
silently: the pair is "reachable, subject to <condition>".

A role session has no ``aws:username``, so it can never meet the console roles' trust condition
``sts:RoleSessionName = ${aws:username}``: main-account roles do not reach console roles, and
:attr:`Analysis.blocked` says so with the reason. They do reach an access role whose trust has no
such condition (``OrganizationAccountAccessRole``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import unquote

ASSUME_ROLE = "sts:AssumeRole"

# Keys the caller picks when calling AssumeRole: a condition on them can be met by choosing a value.
_CALLER_CHOSEN_KEYS = frozenset({"sts:rolesessionname", "sts:externalid", "sts:sourceidentity"})


# --- input ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySource:
    """Where a statement comes from, in the words the findings use."""

    kind: str  # "user inline" | "group inline" | "role inline" | "managed" | "boundary"
    name: str  # policy name (inline) or ARN (managed)
    via: str = ""  # "group <name>" when it reaches a user through a group
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def label(self) -> str:
        what = f"inline policy {self.name}" if "inline" in self.kind else f"managed policy {self.name}"
        if self.kind == "boundary":
            what = f"permissions boundary {self.name}"
        return f"{what} (via {self.via})" if self.via else what


@dataclass(frozen=True)
class Principal:
    """A main-account IAM user or role, with every policy that applies to it."""

    kind: str  # "user" | "role"
    name: str
    arn: str
    path: str
    account_id: str
    tags: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    groups: tuple[str, ...] = ()
    policies: tuple[PolicySource, ...] = field(default=(), compare=False, hash=False)
    boundary: PolicySource | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class TargetRole:
    """A member-account role to decide for, with the trust policy it has (or should have)."""

    arn: str
    account_id: str
    trust_policy: Mapping[str, Any] = field(compare=False, hash=False)
    kind: str = "switchyard"  # "switchyard" | "access role"
    is_administrator: bool = False


# --- output --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """AWS lets ``principal`` assume ``role``: the first statement that allows it, whether only
    with MFA, and the conditions the evaluator could not decide (empty: reachable outright)."""

    principal: Principal
    role: TargetRole
    allowed_by: PolicySource
    statement: str
    statement_json: str
    mfa_only: bool
    subject_to: tuple[str, ...] = ()

    @property
    def classification(self) -> str:
        if self.subject_to:
            return "reachable, subject to " + "; ".join(self.subject_to)
        return "reachable with MFA" if self.mfa_only else "reachable"


@dataclass(frozen=True)
class Blocked:
    """A principal whose own policies allow ``sts:AssumeRole`` on roles, stopped by something
    else (an explicit Deny, a permissions boundary, the roles' trust policy): why, and how many."""

    principal: Principal
    reason: str
    roles: int


@dataclass
class Analysis:
    reaches: list[Reach] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    principals: list[Principal] = field(default_factory=list)

    def reach_of(self, principal_arn: str) -> dict[str, Reach]:
        return {r.role.arn: r for r in self.reaches if r.principal.arn == principal_arn}


# --- reading GetAccountAuthorizationDetails ------------------------------------------------------


def policy_document(value: Any) -> dict[str, Any]:
    """IAM documents arrive decoded (boto3) or as URL-encoded JSON text."""
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value)
    if text.lstrip()[:3].lower() == "%7b":
        text = unquote(text)
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else {}


def principals_from_details(details: Mapping[str, Any], *, account_id: str) -> list[Principal]:
    """Users (with their groups' policies folded in) and roles of the main account."""
    managed: dict[str, dict[str, Any]] = {}
    for policy in details.get("Policies", []):
        default = next(
            (v for v in policy.get("PolicyVersionList", []) if v.get("IsDefaultVersion")), None
        )
        if default is not None:
            managed[policy["Arn"]] = policy_document(default.get("Document", {}))
    groups: dict[str, list[PolicySource]] = {}
    for group in details.get("GroupDetailList", []):
        name = group["GroupName"]
        sources = [
            PolicySource("group inline", p["PolicyName"], f"group {name}", policy_document(p["PolicyDocument"]))
            for p in group.get("GroupPolicyList", [])
        ]
        sources += [
            PolicySource("managed", p["PolicyArn"], f"group {name}", managed.get(p["PolicyArn"], {}))
            for p in group.get("AttachedManagedPolicies", [])
        ]
        groups[name] = sources

    def boundary_of(raw: Mapping[str, Any]) -> PolicySource | None:
        arn = (raw.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        return PolicySource("boundary", arn, "", managed.get(arn, {})) if arn else None

    def tags_of(raw: Mapping[str, Any]) -> dict[str, str]:
        return {tag["Key"]: tag["Value"] for tag in raw.get("Tags", []) or []}

    result: list[Principal] = []
    for user in details.get("UserDetailList", []):
        own = [
            PolicySource("user inline", p["PolicyName"], "", policy_document(p["PolicyDocument"]))
            for p in user.get("UserPolicyList", [])
        ]
        own += [
            PolicySource("managed", p["PolicyArn"], "", managed.get(p["PolicyArn"], {}))
            for p in user.get("AttachedManagedPolicies", [])
        ]
        member_of = tuple(sorted(user.get("GroupList", [])))
        for group_name in member_of:
            own += groups.get(group_name, [])
        result.append(Principal(
            kind="user", name=user["UserName"], arn=user["Arn"], path=user.get("Path", "/"),
            account_id=account_id, tags=tags_of(user), groups=member_of, policies=tuple(own),
            boundary=boundary_of(user),
        ))
    for role in details.get("RoleDetailList", []):
        own = [
            PolicySource("role inline", p["PolicyName"], "", policy_document(p["PolicyDocument"]))
            for p in role.get("RolePolicyList", [])
        ]
        own += [
            PolicySource("managed", p["PolicyArn"], "", managed.get(p["PolicyArn"], {}))
            for p in role.get("AttachedManagedPolicies", [])
        ]
        result.append(Principal(
            kind="role", name=role["RoleName"], arn=role["Arn"], path=role.get("Path", "/"),
            account_id=account_id, tags=tags_of(role), policies=tuple(own), boundary=boundary_of(role),
        ))
    return result


def managed_policy_arns_missing(details: Mapping[str, Any]) -> set[str]:
    """Attached (or boundary) policy ARNs whose documents the walk did not include."""
    known = {policy["Arn"] for policy in details.get("Policies", [])}
    wanted: set[str] = set()
    for key in ("UserDetailList", "GroupDetailList", "RoleDetailList"):
        for entity in details.get(key, []):
            wanted.update(p["PolicyArn"] for p in entity.get("AttachedManagedPolicies", []))
            boundary = (entity.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
            if boundary:
                wanted.add(boundary)
    return wanted - known


# --- matching ------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


_VARIABLE_RE = re.compile(r"\$\{([^}]*)\}")


class _Unresolved(Exception):
    pass


def _substitute(text: str, context: Mapping[str, Any]) -> str:
    """Policy variables (``${aws:username}``...); a missing one cannot match anything."""
    if "${" not in text:
        return text

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in ("*", "?", "$"):
            return key
        name, _, default = key.partition(", ")
        found = context.get(name.strip().lower())
        if found is None:
            if default:
                return default.strip().strip("'")
            raise _Unresolved(key)
        return str(found[0] if isinstance(found, list) else found)

    return _VARIABLE_RE.sub(value, text)


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        return any(_glob(str(a), True).fullmatch(action) for a in _as_list(statement["Action"]))
    if "NotAction" in statement:
        return not any(_glob(str(a), True).fullmatch(action) for a in _as_list(statement["NotAction"]))
    return False


def _resource_matcher(statement: Mapping[str, Any], context: Mapping[str, Any]) -> Callable[[str], bool]:
    negate = "Resource" not in statement
    raw = _as_list(statement.get("Resource") if not negate else statement.get("NotResource"))
    if not negate and "NotResource" not in statement and "Resource" not in statement:
        return lambda _arn: False
    patterns = []
    for pattern in raw:
        try:
            patterns.append(_substitute(str(pattern), context))
        except _Unresolved:
            continue
    if any(p == "*" for p in patterns):
        return (lambda _arn: False) if negate else (lambda _arn: True)
    # Literal ARNs in a set, wildcard ones as (cached) globs: a statement can list hundreds.
    literal = frozenset(p for p in patterns if "*" not in p and "?" not in p)
    # "arn:aws:iam::*:role/..." with no other wildcard (Switchyard's own form): a set lookup too.
    any_account = frozenset(p for p in patterns if p not in literal and _only_account_wild(p))
    globs = [_glob(p, False) for p in patterns if p not in literal and p not in any_account]

    def matches(arn: str) -> bool:
        hit = arn in literal
        if not hit and any_account:
            parts = arn.split(":", 5)
            hit = len(parts) == 6 and ":".join((*parts[:4], "*", parts[5])) in any_account
        if not hit and globs:
            hit = any(g.fullmatch(arn) for g in globs)
        return not hit if negate else hit

    return matches


def _only_account_wild(pattern: str) -> bool:
    parts = pattern.split(":", 5)
    return len(parts) == 6 and parts[4] == "*" and not any(c in part for part in (*parts[:4], parts[5]) for c in "*?")


# --- conditions ----------------------------------------------------------------------------------

_STRING_OPERATORS: dict[str, tuple[bool, bool, bool]] = {
    # operator: (negated, like, ignore case)
    "stringequals": (False, False, False),
    "stringnotequals": (True, False, False),
    "stringequalsignorecase": (False, False, True),
    "stringnotequalsignorecase": (True, False, True),
    "stringlike": (False, True, False),
    "stringnotlike": (True, True, False),
    "arnequals": (False, True, False),
    "arnlike": (False, True, False),
    "arnnotequals": (True, True, False),
    "arnnotlike": (True, True, False),
}


def _describe(operator: str, key: str, values: Any) -> str:
    return f"{operator} {key} {json.dumps(values)}"


def _condition_value(
    operator: str, key: str, values: Any, context: Mapping[str, Any]
) -> bool | str:
    """True / False, or a description of a condition the evaluator cannot decide."""
    qualifier, _, bare = operator.rpartition(":")
    op = bare.lower()
    if_exists = op.endswith("ifexists")
    if if_exists:
        op = op[: -len("ifexists")]
    lowered_key = key.lower()
    wanted = _as_list(values)
    if lowered_key in _CALLER_CHOSEN_KEYS and lowered_key not in context:
        # The caller picks the value: met if some value it could send matches.
        if op in _STRING_OPERATORS:
            negated = _STRING_OPERATORS[op][0]
            if negated:
                return True
            for value in wanted:
                try:
                    _substitute(str(value), context)
                except _Unresolved:
                    continue
                return True
            return False
        if op == "null":
            return True
        return _describe(operator, key, values)
    known = lowered_key in context or lowered_key.startswith("aws:principaltag/") or lowered_key in {
        "aws:resourceaccount", "aws:multifactorauthpresent", "aws:username", "aws:principalarn",
        "aws:principalaccount", "aws:principaltype", "aws:principalisawsservice", "aws:viaawsservice",
    }
    if not known:
        return _describe(operator, key, values)
    present = context.get(lowered_key)
    if op == "null":
        expect_absent = [str(v).lower() for v in wanted] == ["true"]
        return (present is None) == expect_absent
    if present is None:
        if if_exists:
            return True
        if qualifier.lower() == "forallvalues":
            return True
        if op in _STRING_OPERATORS:
            return _STRING_OPERATORS[op][0]  # a negated operator is met by a missing key
        return False
    actual = [str(v) for v in _as_list(present)]
    if op == "bool":
        return any(str(w).lower() == a.lower() for w in wanted for a in actual)
    if op not in _STRING_OPERATORS:
        return _describe(operator, key, values)
    negated, like, ignore_case = _STRING_OPERATORS[op]
    patterns = []
    for value in wanted:
        try:
            patterns.append(_substitute(str(value), context))
        except _Unresolved:
            continue

    def one(candidate: str) -> bool:
        for pattern in patterns:
            if like:
                if _glob(pattern, ignore_case).fullmatch(candidate):
                    return True
            elif (pattern.lower() == candidate.lower()) if ignore_case else pattern == candidate:
                return True
        return False

    if qualifier.lower() == "forallvalues":
        hit = all(one(a) for a in actual)
    else:
        hit = any(one(a) for a in actual)
    return not hit if negated else hit


def _conditions(statement: Mapping[str, Any], context: Mapping[str, Any]) -> Literal[False] | tuple[str, ...]:
    """False when a condition fails; otherwise the undecided ones (empty: all met)."""
    condition = statement.get("Condition") or {}
    if not isinstance(condition, Mapping):
        return (f"an unreadable condition {condition!r}",)
    unknown: list[str] = []
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            unknown.append(f"{operator} {block!r}")
            continue
        for key, values in block.items():
            outcome = _condition_value(str(operator), str(key), values, context)
            if outcome is False:
                return False
            if isinstance(outcome, str):
                unknown.append(outcome)
    return tuple(unknown)


def _statements(document: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    raw = document.get("Statement", [])
    items = raw if isinstance(raw, list) else [raw]
    return [(number, s) for number, s in enumerate(items, start=1) if isinstance(s, Mapping)]


def _statement_label(number: int, statement: Mapping[str, Any]) -> str:
    sid = statement.get("Sid")
    return f"statement {sid}" if sid else f"statement #{number}"


# --- identity side --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    effect: str
    source: PolicySource
    label: str
    text: str
    resource: Callable[[str], bool]
    pending: Mapping[str, Any]  # conditions on aws:ResourceAccount, decided per role
    unknown: tuple[str, ...]
    exact_arns: frozenset[str] | None = None  # the only ARNs it can match (no wildcard in Resource)
    accounts: frozenset[str] | None = None  # the only accounts it can match (StringEquals aws:ResourceAccount)


def _compile(sources: Iterable[PolicySource], context: Mapping[str, Any]) -> list[_Compiled]:
    """The statements about ``sts:AssumeRole`` whose principal-side conditions can still hold."""
    compiled = []
    for source in sources:
        for number, statement in _statements(source.document):
            effect = str(statement.get("Effect", ""))
            if effect not in ("Allow", "Deny") or not _action_matches(statement, ASSUME_ROLE):
                continue
            condition = statement.get("Condition") or {}
            per_role: dict[str, dict[str, Any]] = {}
            rest: dict[str, dict[str, Any]] = {}
            if isinstance(condition, Mapping):
                for operator, block in condition.items():
                    if not isinstance(block, Mapping):
                        rest.setdefault(operator, {})
                        continue
                    for key, values in block.items():
                        target = per_role if str(key).lower() == "aws:resourceaccount" else rest
                        target.setdefault(operator, {})[key] = values
            outcome = _conditions({"Condition": rest}, context)
            if outcome is False:
                continue
            compiled.append(_Compiled(
                effect=effect, source=source, label=_statement_label(number, statement),
                text=json.dumps(statement, sort_keys=True)[:2000],
                resource=_resource_matcher(statement, context), pending=per_role, unknown=outcome,
                exact_arns=_exact_arns(statement), accounts=_literal_accounts(per_role),
            ))
    return compiled


def _exact_arns(statement: Mapping[str, Any]) -> frozenset[str] | None:
    if "Resource" not in statement:
        return None
    values = [str(v) for v in _as_list(statement["Resource"])]
    if any(ch in v for v in values for ch in "*?$"):
        return None
    return frozenset(values)


def _literal_accounts(per_role: Mapping[str, Mapping[str, Any]]) -> frozenset[str] | None:
    """The accounts a plain ``StringEquals aws:ResourceAccount`` allows (None: any, or not plain)."""
    if set(per_role) != {"StringEquals"} or len(per_role["StringEquals"]) != 1:
        return None
    values = [str(v) for v in _as_list(next(iter(per_role["StringEquals"].values())))]
    if any(ch in v for v in values for ch in "*?$"):
        return None
    return frozenset(values)


def _decide(
    statements: Sequence[_Compiled], role: TargetRole, context: Mapping[str, Any]
) -> tuple[str, _Compiled | None, tuple[str, ...]]:
    """("deny" | "allow" | "none", the deciding statement, undecided conditions)."""
    role_context: dict[str, Any] | None = None
    allow: _Compiled | None = None
    allow_unknown: tuple[str, ...] = ()
    deny_caveats: list[str] = []
    for statement in statements:
        if not statement.resource(role.arn):
            continue
        unknown = statement.unknown
        if statement.pending:
            if role_context is None:
                role_context = {**context, "aws:resourceaccount": role.account_id}
            outcome = _conditions({"Condition": statement.pending}, role_context)
            if outcome is False:
                continue
            unknown = unknown + outcome
        if statement.effect == "Deny":
            if not unknown:
                return "deny", statement, ()
            deny_caveats.append(
                f"not denied by {statement.source.label} {statement.label} ({'; '.join(unknown)})"
            )
        elif allow is None or (allow_unknown and not unknown):
            allow, allow_unknown = statement, unknown
    if allow is None:
        return "none", None, ()
    return "allow", allow, tuple(allow_unknown) + tuple(deny_caveats)


# --- trust side ------------------------------------------------------------------------------------


def _principal_matches(statement: Mapping[str, Any], principal: Principal) -> bool:
    negate = "Principal" not in statement
    raw = statement.get("NotPrincipal") if negate else statement.get("Principal")
    if raw == "*":
        return not negate
    values = _as_list(raw.get("AWS")) if isinstance(raw, Mapping) else []
    root = f"arn:aws:iam::{principal.account_id}:root"
    hit = any(
        str(v) in ("*", principal.account_id, root, principal.arn)
        or (principal.kind == "role" and str(v).startswith(f"arn:aws:sts::{principal.account_id}:assumed-role/"
                                                            f"{principal.name}/"))
        for v in values
    )
    return not hit if negate else hit


def _trust(
    trust: Mapping[str, Any], principal: Principal, context: Mapping[str, Any], account_id: str
) -> tuple[bool, tuple[str, ...], str]:
    """(allowed, undecided conditions, why not)."""
    role_context = {**context, "aws:resourceaccount": account_id}
    allowed = False
    unknown: tuple[str, ...] = ()
    why = "its trust policy does not name the main account or this principal"
    for _number, statement in _statements(trust):
        if not _action_matches(statement, ASSUME_ROLE) or not _principal_matches(statement, principal):
            continue
        outcome = _conditions(statement, role_context)
        if statement.get("Effect") == "Deny":
            if outcome == ():
                return False, (), "its trust policy denies it"
            continue
        if statement.get("Effect") != "Allow":
            continue
        if outcome is False:
            why = _why_trust_refuses(statement, principal, context)
            continue
        if not allowed or (unknown and not outcome):
            allowed, unknown = True, outcome
    return allowed, unknown, "" if allowed else why


def _why_trust_refuses(statement: Mapping[str, Any], principal: Principal, context: Mapping[str, Any]) -> str:
    text = json.dumps(statement.get("Condition") or {})
    if "${aws:username}" in text and principal.kind == "role":
        return ("a role session has no aws:username, so it can never meet the trust condition "
                "sts:RoleSessionName = ${aws:username}")
    if "aws:PrincipalTag/" in text:
        return "the principal lacks the tag the trust policy requires"
    if "aws:MultiFactorAuthPresent" in text and context.get("aws:multifactorauthpresent") is None:
        return "the trust policy requires MFA, which a role session does not carry"
    return f"it does not meet the trust policy's conditions {text[:300]}"


# --- the analysis -----------------------------------------------------------------------------------


def _contexts(principal: Principal) -> list[tuple[bool, dict[str, Any]]]:
    """(with MFA, request context) variants the principal can present."""
    base: dict[str, Any] = {
        "aws:principalarn": principal.arn,
        "aws:principalaccount": principal.account_id,
        "aws:principalisawsservice": "false",
        "aws:viaawsservice": "false",
    }
    for key, value in principal.tags.items():
        base[f"aws:principaltag/{key.lower()}"] = value
    if principal.kind == "user":
        base["aws:username"] = principal.name
        base["aws:principaltype"] = "User"
        return [(False, {**base, "aws:multifactorauthpresent": "false"}),
                (True, {**base, "aws:multifactorauthpresent": "true"})]
    base["aws:principaltype"] = "AssumedRole"
    return [(False, base)]


def _signature(principal: Principal, uses_tags: bool) -> tuple[Any, ...]:
    """Principals with the same policies decide identically (the name matters only through
    policy variables and tags, included when any policy refers to them)."""
    return (
        principal.kind,
        tuple(sorted((s.kind, s.name, s.via) for s in principal.policies)),
        principal.boundary.name if principal.boundary else "",
        principal.name if uses_tags else "",
        tuple(sorted(principal.tags.items())) if uses_tags else (),
    )


@dataclass
class _SourceDecisions:
    """What one policy decides for every role it mentions: the first statement allowing each
    (a decided one preferred), the decided Denies, and Denies that depend on an undecided condition."""

    allow: dict[int, tuple[_Compiled, tuple[str, ...]]] = field(default_factory=dict)
    deny: dict[int, _Compiled] = field(default_factory=dict)
    deny_caveats: dict[int, list[str]] = field(default_factory=dict)


class _RoleIndex:
    """The roles by account and by ARN, so a statement is only matched against its candidates."""

    def __init__(self, roles: Sequence[TargetRole]) -> None:
        self.roles = roles
        self.by_account: dict[str, list[int]] = defaultdict(list)
        self.by_arn: dict[str, int] = {}
        for number, role in enumerate(roles):
            self.by_account[role.account_id].append(number)
            self.by_arn.setdefault(role.arn, number)

    def candidates(self, statement: _Compiled) -> Iterable[int]:
        if statement.exact_arns is not None:
            found = [self.by_arn[a] for a in statement.exact_arns if a in self.by_arn]
            if statement.accounts is not None:
                return [i for i in found if self.roles[i].account_id in statement.accounts]
            return found
        if statement.accounts is not None:
            return [i for account in sorted(statement.accounts) for i in self.by_account.get(account, ())]
        return range(len(self.roles))


def _source_decisions(source: PolicySource, context: Mapping[str, Any], index: _RoleIndex) -> _SourceDecisions:
    decided = _SourceDecisions()
    for statement in _compile((source,), context):
        by_account: dict[str, Literal[False] | tuple[str, ...]] = {}
        for number in index.candidates(statement):
            role = index.roles[number]
            if not statement.resource(role.arn):
                continue
            unknown = statement.unknown
            if statement.pending and statement.accounts is None:
                # (a plain StringEquals on aws:ResourceAccount is met: candidates are its accounts)
                outcome = by_account.get(role.account_id)
                if outcome is None:
                    outcome = by_account[role.account_id] = _conditions(
                        {"Condition": statement.pending}, {**context, "aws:resourceaccount": role.account_id}
                    )
                if outcome is False:
                    continue
                unknown = unknown + outcome
            if statement.effect == "Deny":
                if not unknown:
                    decided.deny.setdefault(number, statement)
                else:
                    decided.deny_caveats.setdefault(number, []).append(
                        f"not denied by {statement.source.label} {statement.label} ({'; '.join(unknown)})"
                    )
                continue
            current = decided.allow.get(number)
            if current is None or (current[1] and not unknown):
                decided.allow[number] = (statement, unknown)
    return decided


def _merge(parts: Sequence[_SourceDecisions]) -> _SourceDecisions:
    merged = _SourceDecisions()
    for part in parts:
        for number, (statement, unknown) in part.allow.items():
            current = merged.allow.get(number)
            if current is None or (current[1] and not unknown):
                merged.allow[number] = (statement, unknown)
        for number, statement in part.deny.items():
            merged.deny.setdefault(number, statement)
        for number, caveats in part.deny_caveats.items():
            merged.deny_caveats.setdefault(number, []).extend(caveats)
    return merged


def analyse(principals: Sequence[Principal], roles: Sequence[TargetRole]) -> Analysis:
    """Decide every (principal, role) pair. Principals sharing their policies share the work;
    trust decisions are cached per distinct trust policy."""
    analysis = Analysis(principals=list(principals))
    refers_to_self: dict[PolicySource, bool] = {}

    def personal(principal: Principal) -> bool:
        for source in (*principal.policies, *((principal.boundary,) if principal.boundary else ())):
            if source not in refers_to_self:
                text = json.dumps(source.document)
                refers_to_self[source] = "${" in text or "principaltag" in text.lower() or \
                    "aws:username" in text.lower() or "aws:principalarn" in text.lower()
            if refers_to_self[source]:
                return True
        return False

    trusts: dict[str, Mapping[str, Any]] = {}
    trust_of_role: list[str] = []
    for role in roles:
        text = json.dumps(role.trust_policy, sort_keys=True)
        trusts.setdefault(text, role.trust_policy)
        trust_of_role.append(text)
    indexed = _RoleIndex(roles)
    source_cache: dict[tuple[Any, ...], _SourceDecisions] = {}

    def decisions_of(principal: Principal, context: Mapping[str, Any], with_mfa: bool,
                     source: PolicySource) -> _SourceDecisions:
        owner = principal.arn if personal_source(source) or source.kind in ("user inline", "role inline") else ""
        key = (source, owner, principal.kind, with_mfa)
        found = source_cache.get(key)
        if found is None:
            found = source_cache[key] = _source_decisions(source, context, indexed)
        return found

    def personal_source(source: PolicySource) -> bool:
        if source not in refers_to_self:
            text = json.dumps(source.document).lower()
            refers_to_self[source] = "${" in text or "principaltag" in text or "aws:username" in text or \
                "aws:principalarn" in text
        return refers_to_self[source]

    # Per signature and MFA variant, only the roles some statement decides (allow, deny, boundary):
    # most principals are decided "nothing allows it" for most roles, and those cost nothing here.
    identity_cache: dict[tuple[Any, ...], list[tuple[int, str, _Compiled | None, tuple[str, ...]]]] = {}
    for principal in principals:
        blocked: dict[str, set[int]] = defaultdict(set)
        reached: dict[str, Reach] = {}
        reached_indexes: set[int] = set()
        uses_self = personal(principal)
        for with_mfa, context in _contexts(principal):
            key = (*_signature(principal, uses_self), with_mfa)
            decisions = identity_cache.get(key)
            if decisions is None:
                merged = _merge([decisions_of(principal, context, with_mfa, s) for s in principal.policies])
                boundary = decisions_of(principal, context, with_mfa, principal.boundary) \
                    if principal.boundary else None
                decisions = []
                for role_index in sorted(merged.allow):
                    allowing, unknown = merged.allow[role_index]
                    statement: _Compiled | None = allowing
                    outcome = "allow"
                    denied = merged.deny.get(role_index)
                    if denied is not None:
                        outcome, statement = "deny", denied
                    elif boundary is not None:
                        if role_index in boundary.deny:
                            outcome, statement = "deny", boundary.deny[role_index]
                        elif role_index not in boundary.allow:
                            outcome = "boundary"
                        else:
                            unknown = unknown + boundary.allow[role_index][1] + \
                                tuple(boundary.deny_caveats.get(role_index, ()))
                    if outcome == "allow":
                        unknown = unknown + tuple(merged.deny_caveats.get(role_index, ()))
                    decisions.append((role_index, outcome, statement, unknown))
                identity_cache[key] = decisions
            trust_cache: dict[tuple[str, str], tuple[bool, tuple[str, ...], str]] = {}
            for index, outcome, statement, unknown in decisions:
                role = roles[index]
                if statement is None:
                    continue
                if outcome == "deny":
                    blocked[f"an explicit Deny in {statement.source.label} {statement.label}"].add(index)
                    continue
                if outcome == "boundary" and principal.boundary is not None:
                    blocked[f"its {principal.boundary.label} does not allow sts:AssumeRole there"].add(index)
                    continue
                trust_text = trust_of_role[index]
                cache_key = (trust_text, role.account_id if "ResourceAccount" in trust_text else "")
                trusted = trust_cache.get(cache_key)
                if trusted is None:
                    trusted = _trust(trusts[trust_text], principal, context, role.account_id)
                    trust_cache[cache_key] = trusted
                allowed, trust_unknown, why = trusted
                if not allowed:
                    blocked[f"the role's trust refuses it: {why}"].add(index)
                    continue
                reached_indexes.add(index)
                if role.arn in reached and not reached[role.arn].subject_to:
                    continue
                reached[role.arn] = Reach(
                    principal=principal, role=role, allowed_by=statement.source, statement=statement.label,
                    statement_json=statement.text, mfa_only=with_mfa, subject_to=unknown + trust_unknown,
                )
        analysis.reaches.extend(reached.values())
        for reason, indexes in sorted(blocked.items()):
            count = len(indexes - reached_indexes)
            if count:
                analysis.blocked.append(Blocked(principal=principal, reason=reason, roles=count))
    return analysis
