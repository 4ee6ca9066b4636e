"""Switchyard's own IAM policy evaluator for a cross-account ``sts:AssumeRole``, pure (no AWS, no database).

moto does not evaluate policies, so this module decides, statement by statement, the way AWS's
policy-evaluation logic does: which statements of a principal's identity policies (and permissions
boundary) are about ``sts:AssumeRole`` (``Action``/``NotAction``, ``Resource``/``NotResource``,
wildcards; actions case-insensitive, ARNs glob-matched), whether their conditions hold, and whether
a target role's trust policy lets the principal in (the main account's root or the principal's own
ARN), with its conditions met. :mod:`switchroles.effective_access` puts these decisions together
for every (principal, role) pair.

Conditions are decided when the portal can know the answer (``aws:ResourceAccount``,
``aws:MultiFactorAuthPresent``, ``aws:PrincipalTag/*``, ``aws:username``,
``aws:PrincipalArn``/``Account``/``Type``, and keys the caller chooses such as
``sts:RoleSessionName``); any other condition never drops access silently: it is returned as
undecided, and the pair is "reachable, subject to <condition>".
"""

from __future__ import annotations

import json
import re
import sys
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import chain
from typing import Any, Literal, NamedTuple

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


class TargetRole(NamedTuple):
    """A member-account role to decide for, with the trust policy it has (or should have). (A
    named tuple: a check makes one per role of the estate, and a tuple is made without running
    Python code per field.)"""

    arn: str
    account_id: str
    trust_policy: Mapping[str, Any]
    kind: str = "switchyard"  # "switchyard" | "access role"
    is_administrator: bool = False

    def __hash__(self) -> int:  # the trust policy is a dict: the role is hashed without it
        return hash((self.arn, self.account_id, self.kind, self.is_administrator))



# --- matching ------------------------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        parts.append(".*" if char == "*" else "." if char == "?" else re.escape(char))
    return re.compile("".join(parts), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _as_list(value: Any) -> Sequence[Any]:
    """A policy field that may be one value or a list of them, as a sequence (never copied: a
    statement can list hundreds of ARNs or accounts, and the evaluator only reads them)."""
    if value is None:
        return ()
    if isinstance(value, list | tuple):
        return value
    return (value,)


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


@lru_cache(maxsize=65536)
def _action_pattern_matches(pattern: str, action: str) -> bool:
    return _glob(pattern, True).fullmatch(action) is not None


def _action_matches(statement: Mapping[str, Any], action: str) -> bool:
    if "Action" in statement:
        written, negated = statement["Action"], False
    elif "NotAction" in statement:
        written, negated = statement["NotAction"], True
    else:
        return False
    if isinstance(written, str):  # (most statements name one action: one look-up, no loop)
        return _action_pattern_matches(written, action) != negated
    return any(_action_pattern_matches(str(a), action) for a in _as_list(written)) != negated


def _resource_patterns(statement: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[bool, tuple[str, ...]]:
    """(negated, ARN patterns): the ``Resource`` patterns, or the ``NotResource`` ones (negated; a
    statement with neither is negated with none, so it applies to every role), policy variables
    substituted (one that cannot be resolved names nothing)."""
    negated = "Resource" not in statement
    written = _as_list(statement.get("NotResource") if negated else statement["Resource"])
    try:
        if "${" not in "\n".join(written):  # (one look for variables, not one per ARN)
            return negated, tuple(written)
    except TypeError:  # not all text: each as written, below
        pass
    patterns = []
    for pattern in written:
        try:
            patterns.append(_substitute(str(pattern), context))
        except _Unresolved:
            continue
    return negated, tuple(patterns)


# "arn:aws:iam::*:role/..." with no other wildcard: five colon-separated parts (the account "*"),
# then the rest. Such a pattern names the roles whose ARN, with its account replaced by "*", is it.
_ONLY_ACCOUNT_WILD_RE = re.compile(r"\A[^:*?]*:[^:*?]*:[^:*?]*:[^:*?]*:\*:[^*?]*\Z")
_WILDCARD_RE = re.compile(r"[*?]")


def _any_account(arn: str) -> str | None:
    parts = arn.split(":", 5)
    if len(parts) != 6:
        return None
    parts[4] = "*"
    return ":".join(parts)


class RoleIndex:
    """The roles to decide for, indexed by what a statement's ``Resource`` can name: by ARN, by
    ARN with the account left out (Switchyard's own ``arn:aws:iam::*:role/...`` form), by
    account, and by the part of the ARN after the account (sorted, for paths such as
    ``role/switchyard/acme/*``), so a statement is matched against the roles it can name, not all
    of them. A role listed twice (the same ARN) is decided once, as its first entry."""

    def __init__(self, roles: Sequence[TargetRole]) -> None:
        self.roles = roles
        by_arn: dict[str, int] = {}
        by_account: dict[str, list[int]] = defaultdict(list)
        by_any_account: dict[str, list[int]] = defaultdict(list)
        for number, role in enumerate(roles):
            arn = role.arn
            if arn in by_arn:
                continue
            by_arn[arn] = number
            by_account[role.account_id].append(number)
            key = _any_account(arn)
            if key is not None:
                by_any_account[key].append(number)
        self.by_arn = by_arn
        self.everything = list(by_arn.values())
        # (tuples of positions: the garbage collector need not walk thousands of small lists)
        self.by_account = {account: tuple(numbers) for account, numbers in by_account.items()}
        self._by_any_account = {key: tuple(numbers) for key, numbers in by_any_account.items()}

    # Indexes that only other wildcard patterns need, built the first time one does (Switchyard's
    # own statements name roles by ARN or with the account left out, answered above).

    @cached_property
    def _by_name(self) -> dict[str, tuple[int, ...]]:
        """By the part of the ARN after the last "/"."""
        by_name: dict[str, list[int]] = defaultdict(list)
        for number in self.everything:
            by_name[self.roles[number].arn.rsplit("/", 1)[-1]].append(number)
        return {name: tuple(numbers) for name, numbers in by_name.items()}

    @cached_property
    def _by_after_account(self) -> tuple[list[str], list[int], list[int]]:
        """The parts after the account, sorted, with their roles; and the roles whose ARNs do not
        have exactly five colons."""
        after_account: list[tuple[str, int]] = []
        irregular: list[int] = []
        for number in self.everything:
            arn = self.roles[number].arn
            if arn.count(":") == 5:
                after_account.append((arn.rsplit(":", 1)[1], number))
            else:
                irregular.append(number)
        after_account.sort()
        return [part for part, _ in after_account], [number for _, number in after_account], irregular

    def _roles_in_account(self, account_id: str) -> tuple[int, ...]:
        return self.by_account.get(account_id, ())

    def named_by(self, statement: CompiledStatement) -> Collection[int]:
        """The roles ``statement``'s ``Resource`` (or ``NotResource``) applies to, each once; only
        those in its accounts when it names them (``StringEquals aws:ResourceAccount``)."""
        within: Sequence[int] = self.everything
        if statement.accounts is not None:
            within = list(chain.from_iterable(map(self._roles_in_account, statement.accounts)))
        hits = self._hits(statement.patterns, within)
        if statement.negated:
            return () if hits is None else [n for n in within if n not in hits]
        if hits is None:
            return within
        if statement.accounts is None:
            return hits
        return [n for n in within if n in hits]

    def _hits(self, patterns: tuple[str, ...], within: Sequence[int]) -> Collection[int] | None:
        """The roles some pattern matches (None: every role, ``*``); of those a wildcard pattern
        matches, only those ``within``."""
        if "*" in patterns:
            return None
        if len(patterns) == 1 and "*" not in patterns[0] and "?" not in patterns[0]:
            number = self.by_arn.get(patterns[0])
            return () if number is None else (number,)
        hits: set[int] = set()
        for pattern in patterns:
            if "*" not in pattern and "?" not in pattern:
                number = self.by_arn.get(pattern)
                if number is not None:
                    hits.add(number)
            elif _ONLY_ACCOUNT_WILD_RE.match(pattern):
                hits.update(self._by_any_account.get(pattern, ()))
            else:
                glob = _glob(pattern, False)
                hits.update(n for n in self._could_match(pattern, within) if glob.fullmatch(self.roles[n].arn))
        return hits

    def _could_match(self, pattern: str, within: Sequence[int]) -> Sequence[int]:
        """Roles ``within`` that include every one a wildcard pattern matches (the glob decides),
        as few as the index can tell: those with the name it ends with, if it ends with a literal
        one; and, since a literal colon in the pattern matches one in the ARN, with five colons
        (as a role ARN has) each part matches its part, so the part after the account starts
        with the pattern's literal prefix there."""
        options = [within]
        *_, name = pattern.rsplit("/", 1)
        if name != pattern and not _WILDCARD_RE.search(name):
            options.append(self._by_name.get(name, ()))
        options.append(self._by_colons(pattern))
        return min(options, key=len)

    def _by_colons(self, pattern: str) -> Sequence[int]:
        colons = pattern.count(":")
        if colons < 5:
            return self.everything  # a wildcard stands for colons too: "*", "arn:aws:iam::*"
        after_account, numbers, irregular = self._by_after_account
        if colons > 5:
            return irregular
        after = pattern.rsplit(":", 1)[1]
        wildcard = _WILDCARD_RE.search(after)
        prefix = after[:wildcard.start()] if wildcard else after
        low = bisect_left(after_account, prefix)
        if not prefix or prefix[-1] == chr(sys.maxunicode):
            high = len(after_account)
        else:
            high = bisect_left(after_account, prefix[:-1] + chr(ord(prefix[-1]) + 1))
        return [*numbers[low:high], *irregular]


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


def statement_conditions(statement: Mapping[str, Any], context: Mapping[str, Any]) -> Literal[False] | tuple[str, ...]:
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


@dataclass(eq=False, slots=True)
class CompiledStatement:
    """A statement about ``sts:AssumeRole``, read once for every request context: where it comes
    from, the ARN patterns its ``Resource`` names (:meth:`RoleIndex.named_by` finds the roles),
    and its conditions split into those on ``aws:ResourceAccount`` (decided per role) and the rest
    (decided per request context, :meth:`conditions_met`). Compared by identity: each is one
    statement of one policy as one principal has it. Never changed once made (not frozen only
    because a check makes thousands, and a frozen dataclass sets each field through a call)."""

    effect: str
    source: PolicySource
    label: str
    statement: Mapping[str, Any]
    negated: bool  # NotResource: it applies to the roles its patterns do not name
    patterns: tuple[str, ...]  # the Resource (or NotResource) ARN patterns
    condition: Mapping[str, Any] = field(default_factory=dict)  # its Condition, as written
    # (operator, key) of the conditions on aws:ResourceAccount, and of the others (kept as
    # references into ``condition``: a principal's thousands of statements make no copies)
    pending_keys: tuple[tuple[str, str], ...] = ()
    principal_keys: tuple[tuple[str, str], ...] = ()
    # the principal-side conditions as a value, so statements with the same ones are decided
    # once per request context (None: not comparable)
    principal_side_key: tuple[Any, ...] | None = None
    accounts: tuple[str, ...] | None = None  # the only accounts it can match (StringEquals aws:ResourceAccount)

    @property
    def pending(self) -> dict[str, dict[str, Any]]:
        """The conditions on ``aws:ResourceAccount`` (decided per role)."""
        return _conditions_of(self.condition, self.pending_keys)

    @property
    def principal_side(self) -> dict[str, dict[str, Any]]:
        """The other conditions (decided per request context)."""
        return _conditions_of(self.condition, self.principal_keys)

    @property
    def text(self) -> str:
        """The statement as JSON, for the findings."""
        return json.dumps(self.statement, sort_keys=True)[:2000]

    def conditions_met(
        self, context: Mapping[str, Any], decided: dict[tuple[Any, ...], Literal[False] | tuple[str, ...]]
    ) -> Literal[False] | tuple[str, ...]:
        """The principal-side conditions in ``context``: False when one fails, else the undecided
        ones. ``decided`` holds the outcomes of conditions already decided in this same context."""
        if not self.principal_keys:
            return ()
        key = self.principal_side_key
        if key is None:
            return statement_conditions({"Condition": self.principal_side}, context)
        found = decided.get(key)
        if found is None:
            found = decided[key] = statement_conditions({"Condition": self.principal_side}, context)
        return found


def compile_statements(sources: Iterable[PolicySource], context: Mapping[str, Any]) -> list[CompiledStatement]:
    """The statements about ``sts:AssumeRole`` (``context`` fills the policy variables in their
    ``Resource``; their conditions are decided later, per request context and role)."""
    compiled = []
    for source in sources:
        for number, statement in _statements(source.document):
            effect = str(statement.get("Effect", ""))
            if effect not in ("Allow", "Deny") or not _action_matches(statement, ASSUME_ROLE):
                continue
            condition = statement.get("Condition") or {}
            if not isinstance(condition, Mapping):
                condition = {}  # unreadable: as if there were none
            pending_keys, principal_keys = _split_conditions(condition)
            negated, patterns = _resource_patterns(statement, context)
            compiled.append(CompiledStatement(
                effect=effect, source=source, label=_statement_label(number, statement), statement=statement,
                negated=negated, patterns=patterns, condition=condition, pending_keys=pending_keys,
                principal_keys=principal_keys,
                principal_side_key=_conditions_key(_conditions_of(condition, principal_keys)),
                accounts=_literal_accounts(_conditions_of(condition, pending_keys)) if pending_keys else None,
            ))
    return compiled


def _split_conditions(
    condition: Mapping[str, Any]
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """The (operator, key) pairs on ``aws:ResourceAccount``, and the others, in order. An
    unreadable block counts as none."""
    per_role: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    for operator, block in condition.items():
        if not isinstance(block, Mapping):
            continue
        for key in block:
            (per_role if str(key).lower() == "aws:resourceaccount" else rest).append((operator, key))
    return tuple(per_role), tuple(rest)


def _conditions_of(condition: Mapping[str, Any], keys: Iterable[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for operator, key in keys:
        found.setdefault(operator, {})[key] = condition[operator][key]
    return found


def _conditions_key(conditions: Mapping[str, Mapping[str, Any]]) -> tuple[Any, ...] | None:
    """Conditions as a hashable value (a value and a list of one stay apart, as their descriptions
    do); None for values other than strings and lists of strings."""
    parts: list[tuple[Any, ...]] = []
    for operator, block in conditions.items():
        for key, values in block.items():
            if isinstance(values, str):
                parts.append((operator, key, values))
            elif isinstance(values, list) and all(isinstance(v, str) for v in values):
                parts.append((operator, key, tuple(values)))
            else:
                return None
    return tuple(parts)


def _literal_accounts(per_role: Mapping[str, Mapping[str, Any]]) -> tuple[str, ...] | None:
    """The accounts a plain ``StringEquals aws:ResourceAccount`` allows, each once (None: any, or
    not plain)."""
    block = per_role.get("StringEquals")
    if block is None or len(per_role) != 1 or len(block) != 1:
        return None
    raw = _as_list(next(iter(block.values())))
    try:
        written = "\n".join(raw)  # (one look for wildcards and variables, not one per account)
    except TypeError:  # not all text: as written
        raw = [str(v) for v in raw]
        written = "\n".join(raw)
    if "*" in written or "?" in written or "$" in written:
        return None
    return tuple(dict.fromkeys(raw))


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


def trust_decision(
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
        outcome = statement_conditions(statement, role_context)
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
