"""What AWS really allows: which main-account principals can assume which member-account roles.

Every member role trusts ``arn:aws:iam::<main>:root``, which hands the decision to the main
account's IAM: any IAM user (or role) there whose own policies allow ``sts:AssumeRole`` on a role
can switch into it, grant or no grant. moto does not evaluate policies, so this module (with the
statement-level evaluator in :mod:`switchroles.policy_evaluation`) is Switchyard's own, pure (no
AWS, no database): it takes the main account's
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
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from switchroles.policy_evaluation import (
    CompiledStatement,
    PolicySource,
    Principal,
    TargetRole,
    compile_statements,
    statement_conditions,
    trust_decision,
)

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
    policy variables and tags, included when any policy refers to them). A policy is told apart
    by its document too: two users' inline policies may share a name and say different things."""
    return (
        principal.kind,
        tuple(sorted((s.kind, s.name, s.via, id(s.document)) for s in principal.policies)),
        (principal.boundary.name, id(principal.boundary.document)) if principal.boundary else "",
        principal.name if uses_tags else "",
        tuple(sorted(principal.tags.items())) if uses_tags else (),
    )


@dataclass
class _SourceDecisions:
    """What one policy decides for every role it mentions: the first statement allowing each
    (a decided one preferred), the decided Denies, and Denies that depend on an undecided condition."""

    allow: dict[int, tuple[CompiledStatement, tuple[str, ...]]] = field(default_factory=dict)
    deny: dict[int, CompiledStatement] = field(default_factory=dict)
    deny_caveats: dict[int, list[str]] = field(default_factory=dict)
    allow_undecided: bool = False  # some allow depends on a condition the evaluator cannot decide


class _RoleIndex:
    """The roles by account and by ARN, so a statement is only matched against its candidates."""

    def __init__(self, roles: Sequence[TargetRole]) -> None:
        self.roles = roles
        self.by_account: dict[str, list[int]] = defaultdict(list)
        self.by_arn: dict[str, int] = {}
        for number, role in enumerate(roles):
            self.by_account[role.account_id].append(number)
            self.by_arn.setdefault(role.arn, number)

    def candidates(self, statement: CompiledStatement) -> Iterable[int]:
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
    for statement in compile_statements((source,), context):
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
                    outcome = by_account[role.account_id] = statement_conditions(
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
                decided.allow_undecided = decided.allow_undecided or bool(unknown)
    return decided


def _merge(parts: Sequence[_SourceDecisions]) -> _SourceDecisions:
    """The principal's policies together: for each role the first policy's allowing statement (a
    decided one preferred over one subject to a condition), every Deny and every caveat."""
    if len(parts) == 1:
        return parts[0]  # (only read from here on)
    merged = _SourceDecisions()
    if not any(part.allow_undecided or part.deny_caveats for part in parts):
        # Every allow is decided: the first policy to allow a role is the one, so a union taken in
        # reverse order says the same as the loop below, at C speed.
        for part in reversed(parts):
            merged.allow.update(part.allow)
        for part in parts:
            for number, statement in part.deny.items():
                merged.deny.setdefault(number, statement)
        return merged
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


@dataclass
class _Decided:
    """What a principal's identity policies (and boundary) decide, for every role some statement
    mentions, grouped so the trust side is decided once per distinct trust policy: the roles an
    explicit Deny stops (by reason), those the boundary does not allow, and the allowed ones by
    trust key, each with its allowing statement and undecided conditions, in role order."""

    denied: dict[str, list[int]] = field(default_factory=dict)
    outside_boundary: list[int] = field(default_factory=list)
    by_trust: dict[tuple[str, str], list[tuple[int, CompiledStatement, tuple[str, ...]]]] = field(default_factory=dict)


def analyse(principals: Sequence[Principal], roles: Sequence[TargetRole]) -> Analysis:
    """Decide every (principal, role) pair. Principals sharing their policies share the work, and
    both MFA variants of a user share it when no policy of theirs mentions MFA; trust decisions are
    made once per distinct trust policy (and account, when it names ``aws:ResourceAccount``)."""
    analysis = Analysis(principals=list(principals))
    # By document (alive for the whole analysis): (refers to the principal itself, mentions MFA).
    refers: dict[int, tuple[bool, bool]] = {}

    def refers_to(source: PolicySource) -> tuple[bool, bool]:
        key = id(source.document)
        found = refers.get(key)
        if found is None:
            text = json.dumps(source.document)
            lowered = text.lower()
            found = refers[key] = (
                "${" in text or "principaltag" in lowered or "aws:username" in lowered or "aws:principalarn" in lowered,
                "multifactorauth" in lowered,
            )
        return found

    def personal_source(source: PolicySource) -> bool:
        return refers_to(source)[0]

    def mentions_mfa(source: PolicySource) -> bool:
        return refers_to(source)[1]

    trusts: dict[str, Mapping[str, Any]] = {}
    trust_key_of_role: list[tuple[str, str]] = []
    for role in roles:
        text = json.dumps(role.trust_policy, sort_keys=True)
        trusts.setdefault(text, role.trust_policy)
        trust_key_of_role.append((text, role.account_id if "ResourceAccount" in text else ""))
    indexed = _RoleIndex(roles)
    source_cache: dict[tuple[Any, ...], _SourceDecisions] = {}

    def decisions_of(principal: Principal, context: Mapping[str, Any], with_mfa: bool,
                     source: PolicySource) -> _SourceDecisions:
        owner = principal.arn if personal_source(source) or source.kind in ("user inline", "role inline") else ""
        key = (source, id(source.document), owner, principal.kind, with_mfa if mentions_mfa(source) else None)
        found = source_cache.get(key)
        if found is None:
            found = source_cache[key] = _source_decisions(source, context, indexed)
        return found

    def decide(principal: Principal, context: Mapping[str, Any], with_mfa: bool) -> _Decided:
        merged = _merge([decisions_of(principal, context, with_mfa, s) for s in principal.policies])
        boundary = decisions_of(principal, context, with_mfa, principal.boundary) if principal.boundary else None
        decided = _Decided()
        for role_index in sorted(merged.allow):
            statement, unknown = merged.allow[role_index]
            denied = merged.deny.get(role_index)
            if denied is None and boundary is not None:
                denied = boundary.deny.get(role_index)
                if denied is None:
                    if role_index not in boundary.allow:
                        decided.outside_boundary.append(role_index)
                        continue
                    unknown = unknown + boundary.allow[role_index][1] + \
                        tuple(boundary.deny_caveats.get(role_index, ()))
            if denied is not None:
                reason = f"an explicit Deny in {denied.source.label} {denied.label}"
                decided.denied.setdefault(reason, []).append(role_index)
                continue
            unknown = unknown + tuple(merged.deny_caveats.get(role_index, ()))
            decided.by_trust.setdefault(trust_key_of_role[role_index], []).append((role_index, statement, unknown))
        return decided

    identity_cache: dict[tuple[Any, ...], _Decided] = {}
    for principal in principals:
        blocked: dict[str, set[int]] = defaultdict(set)
        reached: dict[str, Reach] = {}
        reached_in: list[list[tuple[int, CompiledStatement, tuple[str, ...]]]] = []
        sources = (*principal.policies, *((principal.boundary,) if principal.boundary else ()))
        signature = _signature(principal, any(personal_source(s) for s in sources))
        uses_mfa = any(mentions_mfa(s) for s in sources)
        for with_mfa, context in _contexts(principal):
            key = (*signature, with_mfa if uses_mfa else None)
            decided = identity_cache.get(key)
            if decided is None:
                decided = identity_cache[key] = decide(principal, context, with_mfa)
            for reason, indexes in decided.denied.items():
                blocked[reason].update(indexes)
            if decided.outside_boundary and principal.boundary is not None:
                blocked[f"its {principal.boundary.label} does not allow sts:AssumeRole there"].update(
                    decided.outside_boundary)
            allowed: list[tuple[list[tuple[int, CompiledStatement, tuple[str, ...]]], tuple[str, ...]]] = []
            for trust_key, items in decided.by_trust.items():
                trust_allowed, trust_unknown, why = trust_decision(trusts[trust_key[0]], principal, context,
                                                           roles[items[0][0]].account_id)
                if not trust_allowed:
                    blocked[f"the role's trust refuses it: {why}"].update(index for index, _, _ in items)
                    continue
                allowed.append((items, trust_unknown))
            if not allowed:
                continue
            if len(allowed) == 1:
                in_order, also = allowed[0]
            else:  # role order across the trust policies, as one walk over the roles would give
                in_order = sorted(((index, statement, unknown + trust_unknown)
                                   for items, trust_unknown in allowed for index, statement, unknown in items),
                                  key=lambda item: item[0])
                also = ()
            reached_in.append(in_order)
            for index, statement, unknown in in_order:
                role = roles[index]
                earlier = reached.get(role.arn)
                if earlier is not None and not earlier.subject_to:
                    continue
                reached[role.arn] = Reach(
                    principal=principal, role=role, allowed_by=statement.source, statement=statement.label,
                    statement_json=statement.text, mfa_only=with_mfa, subject_to=(unknown + also) if also else unknown,
                )
        analysis.reaches.extend(reached.values())
        if not blocked:
            continue
        reached_indexes = {index for in_order in reached_in for index, _, _ in in_order}
        for reason, stopped in sorted(blocked.items()):
            count = len(stopped - reached_indexes)
            if count:
                analysis.blocked.append(Blocked(principal=principal, reason=reason, roles=count))
    return analysis
