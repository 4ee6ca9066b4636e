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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import unquote

import orjson

from switchroles.policy_evaluation import (
    CompiledStatement,
    PolicySource,
    Principal,
    RoleIndex,
    TargetRole,
    compile_statements,
    statement_conditions,
    trust_decision,
)

# --- output --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, slots=True)
class Allowance:
    """Why a principal reaches a role: the first statement that allows it (``by``), whether only
    with MFA, and the conditions the evaluator could not decide (empty: reachable outright). One
    allowance is shared by every role a statement allows alike, so a principal that reaches
    thousands of roles holds a handful of them (compared by identity)."""

    by: CompiledStatement
    mfa_only: bool
    subject_to: tuple[str, ...]

    @property
    def allowed_by(self) -> PolicySource:
        return self.by.source

    @property
    def statement(self) -> str:
        return self.by.label

    @property
    def statement_json(self) -> str:
        return self.by.text

    @property
    def classification(self) -> str:
        if self.subject_to:
            return "reachable, subject to " + "; ".join(self.subject_to)
        return "reachable with MFA" if self.mfa_only else "reachable"


@dataclass(frozen=True, eq=False, slots=True)
class Reach(Allowance):
    """AWS lets ``principal`` assume ``role``, with this allowance (one pair, as
    :attr:`Analysis.reaches` lists them)."""

    principal: Principal
    role: TargetRole


@dataclass(frozen=True)
class Reached:
    """Every role one principal can assume: role index (in :attr:`Analysis.roles`) -> allowance,
    in the order the analysis found them."""

    principal: Principal
    roles: Mapping[int, Allowance]


@dataclass(frozen=True)
class Blocked:
    """A principal whose own policies allow ``sts:AssumeRole`` on roles, stopped by something
    else (an explicit Deny, a permissions boundary, the roles' trust policy): why, and how many."""

    principal: Principal
    reason: str
    roles: int


@dataclass
class Analysis:
    roles: Sequence[TargetRole] = ()
    reached: list[Reached] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)
    principals: list[Principal] = field(default_factory=list)

    @property
    def reachable_pairs(self) -> int:
        return sum(len(reached.roles) for reached in self.reached)

    @property
    def reaches(self) -> list[Reach]:
        """Every (principal, role) pair AWS allows, one object each (for small answers: the check
        reads :attr:`reached`)."""
        return [reach for reached in self.reached for reach in self._pairs(reached)]

    def reach_of(self, principal_arn: str) -> dict[str, Reach]:
        return {reach.role.arn: reach for reached in self.reached if reached.principal.arn == principal_arn
                for reach in self._pairs(reached)}

    def _pairs(self, reached: Reached) -> Iterator[Reach]:
        for index, allowance in reached.roles.items():
            yield Reach(by=allowance.by, mfa_only=allowance.mfa_only, subject_to=allowance.subject_to,
                        principal=reached.principal, role=self.roles[index])


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


_Value = tuple[CompiledStatement, tuple[str, ...]]  # an allowing statement, with its undecided conditions


@dataclass
class _SourceDecisions:
    """What one policy decides for every role it mentions: the first statement allowing each (a
    decided one preferred) with its undecided conditions, as one ``(statement, conditions)`` value
    shared by the roles a statement allows alike; the decided Denies; and Denies that depend on an
    undecided condition."""

    allow: dict[int, _Value] = field(default_factory=dict)
    deny: dict[int, CompiledStatement] = field(default_factory=dict)
    deny_caveats: dict[int, list[str]] = field(default_factory=dict)
    allow_undecided: bool = False  # some allow depends on a condition the evaluator cannot decide


_NONE_UNDECIDED: Mapping[int, tuple[str, ...]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class _Matched:
    """One statement of one policy matched against the roles once, for every request context: the
    roles it names whose ``aws:ResourceAccount`` conditions can hold, and those of them whose
    condition is undecided (with the conditions)."""

    statement: CompiledStatement
    roles: tuple[int, ...]
    undecided: Mapping[int, tuple[str, ...]]


def _match(source: PolicySource, context: Mapping[str, Any], index: RoleIndex) -> list[_Matched]:
    matched = []
    for statement in compile_statements((source,), context):
        named = index.named_by(statement)
        if not statement.pending_keys or statement.accounts is not None:
            # (a plain StringEquals on aws:ResourceAccount is met: named_by kept its accounts)
            matched.append(_Matched(statement, tuple(named), _NONE_UNDECIDED))
            continue
        pending = statement.pending
        by_account: dict[str, Literal[False] | tuple[str, ...]] = {}
        roles: list[int] = []
        undecided: dict[int, tuple[str, ...]] = {}
        for number in named:
            account_id = index.roles[number].account_id
            outcome = by_account.get(account_id)
            if outcome is None:
                outcome = by_account[account_id] = statement_conditions(
                    {"Condition": pending}, {**context, "aws:resourceaccount": account_id}
                )
            if outcome is False:
                continue
            if outcome:
                undecided[number] = outcome
            roles.append(number)
        matched.append(_Matched(statement, tuple(roles), undecided or _NONE_UNDECIDED))
    return matched


def _source_decisions(
    matched: Sequence[_Matched], context: Mapping[str, Any],
    conditions: dict[tuple[Any, ...], Literal[False] | tuple[str, ...]],
) -> _SourceDecisions:
    """``conditions``: the principal-side conditions already decided in ``context``."""
    decided = _SourceDecisions()
    allow = decided.allow
    for match in matched:
        statement = match.statement
        met = statement.conditions_met(context, conditions)
        if met is False:
            continue
        if statement.effect == "Deny":
            for number in match.roles:
                unknown = met + match.undecided[number] if number in match.undecided else met
                if not unknown:
                    decided.deny.setdefault(number, statement)
                else:
                    decided.deny_caveats.setdefault(number, []).append(
                        f"not denied by {statement.source.label} {statement.label} ({'; '.join(unknown)})"
                    )
            continue
        shared = (statement, met)
        if not met and not match.undecided and not decided.allow_undecided:
            # Decided, and so is every allow before it: it takes the roles no earlier one took.
            allow.update(dict.fromkeys(set(match.roles).difference(allow), shared))
            continue
        for number in match.roles:
            value = (statement, met + match.undecided[number]) if number in match.undecided else shared
            current = allow.get(number)
            if current is None or (current[1] and not value[1]):
                allow[number] = value
                decided.allow_undecided = decided.allow_undecided or bool(value[1])
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
        for number, value in part.allow.items():
            current = merged.allow.get(number)
            if current is None or (current[1] and not value[1]):
                merged.allow[number] = value
        for number, statement in part.deny.items():
            merged.deny.setdefault(number, statement)
        for number, caveats in part.deny_caveats.items():
            merged.deny_caveats.setdefault(number, []).extend(caveats)
    return merged


@dataclass
class _Decided:
    """What a principal's identity policies (and boundary) decide, for every role some statement
    mentions: the roles an explicit Deny stops (by reason), those the boundary does not allow, and
    the allowed ones, each with its ``(statement, undecided conditions)`` value, by trust key in
    role order (so the trust side is decided once per distinct trust policy)."""

    denied: dict[str, list[int]] = field(default_factory=dict)
    outside_boundary: list[int] = field(default_factory=list)
    allowed: Mapping[int, _Value] = field(default_factory=dict)
    by_trust: dict[tuple[str, str], list[int]] = field(default_factory=dict)


def _identity_decision(
    merged: _SourceDecisions, boundary: _SourceDecisions | None, trust_key_of_role: Sequence[tuple[str, str]]
) -> _Decided:
    decided = _Decided(allowed=merged.allow)
    if boundary is not None or merged.deny or merged.deny_caveats:
        allowed: dict[int, _Value] = {}
        for role_index, value in merged.allow.items():
            denied = merged.deny.get(role_index)
            extra: tuple[str, ...] = ()
            if denied is None and boundary is not None:
                denied = boundary.deny.get(role_index)
                if denied is None:
                    if role_index not in boundary.allow:
                        decided.outside_boundary.append(role_index)
                        continue
                    extra = boundary.allow[role_index][1] + tuple(boundary.deny_caveats.get(role_index, ()))
            if denied is not None:
                reason = f"an explicit Deny in {denied.source.label} {denied.label}"
                decided.denied.setdefault(reason, []).append(role_index)
                continue
            extra += tuple(merged.deny_caveats.get(role_index, ()))
            allowed[role_index] = (value[0], value[1] + extra) if extra else value
        decided.allowed = allowed
    in_order = sorted(decided.allowed)
    keys = list(map(trust_key_of_role.__getitem__, in_order))
    if len(set(keys)) == 1:
        decided.by_trust[keys[0]] = in_order
        return decided
    for role_index, key in zip(in_order, keys, strict=True):
        decided.by_trust.setdefault(key, []).append(role_index)
    return decided


def _reach(
    reached: dict[int, Allowance], groups: Sequence[tuple[list[int], tuple[str, ...]]],
    allowed: Mapping[int, _Value], with_mfa: bool, allowances: dict[tuple[Any, ...], Allowance],
) -> None:
    """Record the roles of ``groups`` (allowed by the identity policies and by one trust policy,
    in role order, with the trust's undecided conditions) that no earlier request context reached
    outright, in role order. ``allowances``: those made so far, one per distinct (statement,
    conditions, MFA), shared by every principal they apply to."""
    outright: Iterable[int] = reached
    if any(allowance.subject_to for allowance in set(reached.values())):
        outright = {index for index, allowance in reached.items() if not allowance.subject_to}
    found: dict[int, Allowance] = {}
    for in_order, also in groups:
        fresh = sorted(set(in_order).difference(outright)) if reached else in_order
        values = list(map(allowed.__getitem__, fresh))
        made = {}
        for value in set(values):
            # (by the statement's id: it lives as long as the analysis, and a key of plain values
            # costs the garbage collector nothing)
            key = (id(value[0]), value[1], with_mfa, also)
            allowance = allowances.get(key)
            if allowance is None:
                allowance = allowances[key] = Allowance(
                    by=value[0], mfa_only=with_mfa, subject_to=value[1] + also)
            made[value] = allowance
        found.update(zip(fresh, map(made.__getitem__, values), strict=True))
    reached.update(sorted(found.items()) if len(groups) > 1 else found)


def _document_text(document: Any) -> bytes:
    """A policy document as JSON text, to look for what it refers to. (By orjson: some AWS managed
    policies list thousands of actions, and the standard library's encoder took a tenth of the
    analysis; its own for what orjson cannot write, such as an integer beyond 64 bits.)"""
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError:
        return json.dumps(document).encode()


def analyse(principals: Sequence[Principal], roles: Sequence[TargetRole]) -> Analysis:
    """Decide every (principal, role) pair. Each policy is read and matched against the roles
    once (the roles it names, through :class:`RoleIndex`), then decided per request context;
    principals sharing their policies share the work, and both MFA variants of a user share it
    when no policy of theirs mentions MFA; trust decisions are made once per distinct trust policy
    (and account, when it names ``aws:ResourceAccount``)."""
    analysis = Analysis(roles=roles, principals=list(principals))
    # By document (alive for the whole analysis): (refers to the principal itself, mentions MFA).
    refers: dict[int, tuple[bool, bool]] = {}

    def refers_to(source: PolicySource) -> tuple[bool, bool]:
        key = id(source.document)
        found = refers.get(key)
        if found is None:
            text = _document_text(source.document)
            lowered = text.lower()
            found = refers[key] = (
                b"${" in text or b"principaltag" in lowered or b"aws:username" in lowered
                or b"aws:principalarn" in lowered,
                b"multifactorauth" in lowered,
            )
        return found

    def personal_source(source: PolicySource) -> bool:
        return refers_to(source)[0]

    def mentions_mfa(source: PolicySource) -> bool:
        return refers_to(source)[1]

    trusts: dict[str, Mapping[str, Any]] = {}
    trust_texts: dict[int, str] = {}  # by document: roles share their trust policy's dict
    trust_keys: dict[tuple[str, str], tuple[str, str]] = {}  # one tuple per key, shared by its roles
    trust_key_of_role: list[tuple[str, str]] = []
    for role in roles:
        text = trust_texts.get(id(role.trust_policy))
        if text is None:
            text = trust_texts[id(role.trust_policy)] = json.dumps(role.trust_policy, sort_keys=True)
        trusts.setdefault(text, role.trust_policy)
        key = (text, role.account_id if "ResourceAccount" in text else "")
        trust_key_of_role.append(trust_keys.setdefault(key, key))
    indexed = RoleIndex(roles)
    matched_cache: dict[tuple[Any, ...], list[_Matched]] = {}
    source_cache: dict[tuple[Any, ...], _SourceDecisions] = {}

    def decisions_of(principal: Principal, context: Mapping[str, Any], with_mfa: bool, source: PolicySource,
                     conditions: dict[tuple[Any, ...], Literal[False] | tuple[str, ...]]) -> _SourceDecisions:
        personal = personal_source(source)
        owner = principal.arn if personal or source.kind in ("user inline", "role inline") else ""
        key = (source, id(source.document), owner, principal.kind, with_mfa if mentions_mfa(source) else None)
        found = source_cache.get(key)
        if found is None:
            # The roles a policy names do not depend on the request context, unless it names
            # them with policy variables.
            match_key = key if personal else (source, id(source.document), owner)
            matched = matched_cache.get(match_key)
            if matched is None:
                matched = matched_cache[match_key] = _match(source, context, indexed)
            found = source_cache[key] = _source_decisions(matched, context, conditions)
        return found

    def decide(principal: Principal, context: Mapping[str, Any], with_mfa: bool) -> _Decided:
        conditions: dict[tuple[Any, ...], Literal[False] | tuple[str, ...]] = {}
        merged = _merge([decisions_of(principal, context, with_mfa, s, conditions) for s in principal.policies])
        boundary = (decisions_of(principal, context, with_mfa, principal.boundary, conditions)
                    if principal.boundary else None)
        return _identity_decision(merged, boundary, trust_key_of_role)

    identity_cache: dict[tuple[Any, ...], _Decided] = {}
    allowances: dict[tuple[Any, ...], Allowance] = {}
    for principal in principals:
        blocked: dict[str, set[int]] = defaultdict(set)
        reached: dict[int, Allowance] = {}
        reached_in: list[list[int]] = []
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
            groups: list[tuple[list[int], tuple[str, ...]]] = []
            for trust_key, indexes in decided.by_trust.items():
                trust_allowed, trust_unknown, why = trust_decision(trusts[trust_key[0]], principal, context,
                                                                   roles[indexes[0]].account_id)
                if not trust_allowed:
                    blocked[f"the role's trust refuses it: {why}"].update(indexes)
                    continue
                groups.append((indexes, trust_unknown))
            if groups:
                reached_in.extend(indexes for indexes, _ in groups)
                _reach(reached, groups, decided.allowed, with_mfa, allowances)
        if reached:
            analysis.reached.append(Reached(principal, reached))
        if not blocked:
            continue
        reached_indexes = {index for in_order in reached_in for index in in_order}
        for reason, stopped in sorted(blocked.items()):
            count = len(stopped - reached_indexes)
            if count:
                analysis.blocked.append(Blocked(principal=principal, reason=reason, roles=count))
    return analysis
