"""IAM limits and the validation of custom policies that managers paste into role templates.

Pure Python (no Django, no boto3), so forms, services and tests share one set of rules and we
refuse what AWS would refuse *before* calling AWS: moto accepts much that IAM rejects.

Sizes follow IAM's own rule: a policy's length is counted without whitespace.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

# IAM and Organizations limits and name patterns: one place, portal.aws.limits (named here for
# the callers of these checks).
from portal.aws.limits import (
    ACCOUNT_EMAIL_MAX_CHARS as ACCOUNT_EMAIL_MAX_CHARS,
)
from portal.aws.limits import (
    ACCOUNT_EMAIL_MIN_CHARS as ACCOUNT_EMAIL_MIN_CHARS,
)
from portal.aws.limits import (
    ACCOUNT_ID_RE as ACCOUNT_ID_RE,
)
from portal.aws.limits import (
    ACCOUNT_NAME_MAX_CHARS as ACCOUNT_NAME_MAX_CHARS,
)
from portal.aws.limits import (
    ACCOUNT_NAME_MIN_CHARS as ACCOUNT_NAME_MIN_CHARS,
)
from portal.aws.limits import (
    INLINE_ROLE_TOTAL_MAX_CHARS as INLINE_ROLE_TOTAL_MAX_CHARS,
)
from portal.aws.limits import (
    MANAGED_POLICY_MAX_CHARS as MANAGED_POLICY_MAX_CHARS,
)
from portal.aws.limits import (
    MAX_MANAGED_POLICIES_PER_PRINCIPAL as MAX_MANAGED_POLICIES_PER_PRINCIPAL,
)
from portal.aws.limits import (
    MAX_MANAGED_POLICIES_PER_ROLE as MAX_MANAGED_POLICIES_PER_ROLE,
)
from portal.aws.limits import (
    MAX_POLICY_VERSIONS as MAX_POLICY_VERSIONS,
)
from portal.aws.limits import (
    MAX_SESSION_DURATION as MAX_SESSION_DURATION,
)
from portal.aws.limits import (
    MIN_SESSION_DURATION as MIN_SESSION_DURATION,
)
from portal.aws.limits import (
    ROLE_NAME_MAX_CHARS as ROLE_NAME_MAX_CHARS,
)
from portal.aws.limits import (
    ROLE_NAME_RE as ROLE_NAME_RE,
)
from portal.aws.limits import (
    ROLE_PATH_MAX_CHARS as ROLE_PATH_MAX_CHARS,
)
from portal.aws.limits import (
    ROLE_PATH_RE as ROLE_PATH_RE,
)
from portal.aws.limits import (
    TRUST_POLICY_MAX_CHARS as TRUST_POLICY_MAX_CHARS,
)
from portal.aws.limits import (
    count_policy_chars as count_policy_chars,
)
from portal.aws.limits import (
    policy_json as policy_json,
)
from portal.aws.limits import (
    policy_size as policy_size,
)

# --- custom policy validation ------------------------------------------------------------------

# Raw text is refused outright above this, before counting or parsing (the count is linear, but
# there is no reason to look at megabytes a form should never send).
POLICY_TEXT_MAX_CHARS = 20_000
# A real permission policy nests at most 6 levels (policy > Statement list > statement >
# Condition > operator > key list); anything deeper is a mistake or an attack.
POLICY_MAX_DEPTH = 10

POLICY_VERSIONS = ("2012-10-17", "2008-10-17")
_TOP_LEVEL_KEYS = frozenset({"Version", "Id", "Statement"})
_STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
    | {"Principal", "NotPrincipal"}
)
_SID_RE = re.compile(r"\A[A-Za-z0-9]*\Z")
# service prefix (lowercase letters, digits, hyphens, e.g. "execute-api") : action with wildcards
_ACTION_RE = re.compile(r"\A[A-Za-z0-9-]+:[A-Za-z0-9*?]+\Z")
_CONDITION_OPERATORS = frozenset(
    {
        "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
        "StringLike", "StringNotLike",
        "NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
        "NumericGreaterThan", "NumericGreaterThanEquals",
        "DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals",
        "DateGreaterThan", "DateGreaterThanEquals",
        "Bool", "BinaryEquals", "IpAddress", "NotIpAddress",
        "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike",
    }
)  # fmt: skip
_SHOWN_VALUE_MAX_CHARS = 60
# What IAM accepts in a policy document: tab, line feed, carriage return and U+0020-U+00FF. (It also
# keeps NUL, which PostgreSQL cannot store in JSON, out of the template.)
_POLICY_TEXT_RE = re.compile(r"\A[\t\n\r\x20-\xff]*\Z")


@dataclass(frozen=True)
class PolicyCheck:
    """The outcome of :func:`validate_custom_policy`.

    ``document`` is the parsed policy (``{}`` when it could not be parsed). ``errors`` block saving;
    ``warnings`` are shown but do not. Messages are short sentences for display under a form field.
    """

    document: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return not self.errors


def validate_custom_policy(text: str) -> PolicyCheck:
    """Check a custom (identity-based) permission policy for a role template.

    Refuses, before parsing: text over :data:`POLICY_TEXT_MAX_CHARS`, over
    :data:`MANAGED_POLICY_MAX_CHARS` once whitespace is removed, or nested deeper than
    :data:`POLICY_MAX_DEPTH`. Then checks the grammar IAM enforces for permission policies.
    """
    if not isinstance(text, str) or not text.strip():
        return PolicyCheck(document={}, errors=["Enter the policy as JSON."])
    if len(text) > POLICY_TEXT_MAX_CHARS:
        return PolicyCheck(
            document={},
            errors=[f"The policy text is over {POLICY_TEXT_MAX_CHARS:,} characters; AWS would refuse it."],
        )
    size = count_policy_chars(text)
    if size > MANAGED_POLICY_MAX_CHARS:
        return PolicyCheck(
            document={},
            errors=[
                f"The policy is {size:,} characters long without spaces; "
                f"AWS allows at most {MANAGED_POLICY_MAX_CHARS:,}."
            ],
        )
    if _nesting_depth(text) > POLICY_MAX_DEPTH:
        return PolicyCheck(document={}, errors=["The policy is nested too deeply to be an IAM policy."])

    duplicates: list[str] = []
    try:
        parsed = json.loads(
            text,
            object_pairs_hook=lambda pairs: _object_without_duplicates(pairs, duplicates),
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        return PolicyCheck(
            document={},
            errors=[f"The policy is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."],
        )
    except (ValueError, RecursionError):
        # NaN/Infinity (written so, or a number too big for a float), or an integer too long to
        # convert: not something IAM accepts either.
        return PolicyCheck(document={}, errors=["The policy is not valid JSON."])

    if not isinstance(parsed, dict):
        return PolicyCheck(document={}, errors=["The policy must be a JSON object, starting with {."])

    errors = [f"The key {_shown(key)} appears more than once in the same object." for key in duplicates]
    errors += [
        f"{_shown(json.dumps(value, ensure_ascii=False))[1:-1]} has a character AWS does not accept in a "
        "policy: use printable Latin-1 text only." for value in _unsupported_strings(parsed)[:3]
    ]
    warnings: list[str] = []
    _check_top_level(parsed, errors, warnings)
    return PolicyCheck(document=parsed, errors=errors, warnings=warnings)


def _nesting_depth(text: str) -> int:
    """Deepest nesting of [ and { outside JSON strings, found without parsing."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > POLICY_MAX_DEPTH:
                    return deepest
        elif char in "]}":
            depth -= 1
    return deepest


def _object_without_duplicates(pairs: list[tuple[str, Any]], duplicates: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            duplicates.append(key)
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _unsupported_strings(value: Any) -> list[str]:
    """Keys and string values (at any depth) with a character outside IAM's policy alphabet."""
    if isinstance(value, str):
        return [] if _POLICY_TEXT_RE.match(value) else [value]
    if isinstance(value, dict):
        return [bad for key, item in value.items() for bad in (*_unsupported_strings(key), *_unsupported_strings(item))]
    if isinstance(value, list):
        return [bad for item in value for bad in _unsupported_strings(item)]
    return []


def _shown(value: object) -> str:
    """A value quoted for a message, cut short so a message stays one line."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else f'"{value}"'
    if len(text) > _SHOWN_VALUE_MAX_CHARS:
        text = text[: _SHOWN_VALUE_MAX_CHARS - 1] + "…"
    # A lone surrogate ("\ud800" in the JSON) cannot be written out as UTF-8: show it escaped.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_top_level(policy: dict[str, Any], errors: list[str], warnings: list[str]) -> None:
    for key in policy:
        if key not in _TOP_LEVEL_KEYS:
            errors.append(f"Remove {_shown(key)}: a policy has only Version, Id and Statement.")

    if "Version" not in policy:
        warnings.append(
            'Version is missing, so AWS uses "2008-10-17", which has no policy variables. '
            'Add "Version": "2012-10-17".'
        )
    elif policy["Version"] not in POLICY_VERSIONS:
        errors.append('Version must be "2012-10-17" (or the older "2008-10-17").')

    if "Id" in policy and not isinstance(policy["Id"], str):
        errors.append("Id must be a string.")

    if "Statement" not in policy:
        errors.append("Add a Statement.")
        return
    statements = policy["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        errors.append("Statement must be an object or a non-empty list of objects.")
        return

    sids: set[str] = set()
    for number, statement in enumerate(statements, start=1):
        if not isinstance(statement, dict):
            errors.append(f"Statement {number} must be an object.")
            continue
        _check_statement(number, statement, sids, errors, warnings)


def _check_statement(
    number: int, statement: dict[str, Any], sids: set[str], errors: list[str], warnings: list[str]
) -> None:
    sid = statement.get("Sid")
    where = f"Statement {number}"
    if "Sid" in statement:
        if not isinstance(sid, str) or not _SID_RE.match(sid):
            errors.append(f"{where}: Sid may contain only letters and digits.")
        elif sid in sids:
            errors.append(f"{where}: Sid {_shown(sid)} is used twice; each Sid must be unique.")
        else:
            sids.add(sid)
            if sid:
                where = f"Statement {_shown(sid)}"

    for key in statement:
        if key in ("Principal", "NotPrincipal"):
            errors.append(
                f"{where}: remove {key}. A role's permission policy applies to the role itself; "
                "who may assume the role is set by its trust policy."
            )
        elif key not in _STATEMENT_KEYS:
            errors.append(f"{where}: remove {_shown(key)}; it is not a statement element.")

    effect = statement.get("Effect")
    if effect is None:
        errors.append(f'{where}: add "Effect": "Allow" or "Deny".')
    elif effect not in ("Allow", "Deny"):
        errors.append(f'{where}: Effect must be "Allow" or "Deny".')

    actions = _one_of(where, statement, "Action", "NotAction", errors)
    resources = _one_of(where, statement, "Resource", "NotResource", errors)
    if actions is not None:
        _check_actions(where, actions, errors)
    if resources is not None:
        _check_resources(where, resources, errors)
    if "Condition" in statement:
        _check_condition(where, statement["Condition"], errors)

    if effect == "Allow" and "Resource" in statement and _has_star(statement["Resource"]):
        if "Action" in statement and _has_star(statement["Action"]):
            warnings.append(
                f"{where} allows every action on every resource: that is full administrator access."
            )
        elif "NotAction" in statement:
            warnings.append(f"{where} allows every action except those listed, on every resource.")


def _one_of(where: str, statement: dict[str, Any], first: str, second: str, errors: list[str]) -> Any:
    if first in statement and second in statement:
        errors.append(f"{where}: use {first} or {second}, not both.")
        return None
    if first not in statement and second not in statement:
        errors.append(f"{where}: add {first} (or {second}).")
        return None
    return statement.get(first, statement.get(second))


def _string_list(where: str, name: str, value: Any, errors: list[str]) -> list[str] | None:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        errors.append(f"{where}: {name} must be a string or a non-empty list of strings.")
        return None
    if not all(isinstance(item, str) for item in values):
        errors.append(f"{where}: every {name} entry must be a string.")
        return None
    return values


def _check_actions(where: str, value: Any, errors: list[str]) -> None:
    actions = _string_list(where, "action", value, errors)
    for action in actions or ():
        if action != "*" and not _ACTION_RE.match(action):
            errors.append(
                f"{where}: {_shown(action)} is not an action; write service:Action, for example s3:GetObject."
            )


def _check_resources(where: str, value: Any, errors: list[str]) -> None:
    resources = _string_list(where, "resource", value, errors)
    for resource in resources or ():
        if resource == "*":
            continue
        parts = resource.split(":", 5)
        if (
            len(parts) < 6
            or parts[0] != "arn"
            or not parts[1]
            or not parts[2]
            or not parts[5]
            or any(not char.isprintable() for char in resource)
        ):
            errors.append(
                f"{where}: {_shown(resource)} is not an ARN; "
                'use "*" or an ARN such as arn:aws:s3:::my-bucket/*.'
            )


def _check_condition(where: str, condition: Any, errors: list[str]) -> None:
    if not isinstance(condition, dict) or not condition:
        errors.append(f"{where}: Condition must be an object of operators.")
        return
    for operator, block in condition.items():
        if not _is_condition_operator(operator):
            errors.append(f"{where}: {_shown(operator)} is not a condition operator.")
            continue
        if not isinstance(block, dict) or not block:
            errors.append(f"{where}: condition {_shown(operator)} must map keys to values.")
            continue
        for key, values in block.items():
            items = values if isinstance(values, list) else [values]
            if not items or not all(isinstance(item, str | bool | int | float) for item in items):
                errors.append(f"{where}: condition key {_shown(key)} must have a value or a list of values.")


def _is_condition_operator(operator: str) -> bool:
    name = operator
    for prefix in ("ForAllValues:", "ForAnyValue:"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    if name == "Null":
        return True
    if name.endswith("IfExists"):
        name = name[: -len("IfExists")]
    return name in _CONDITION_OPERATORS


def _has_star(value: Any) -> bool:
    return value == "*" or (isinstance(value, list) and "*" in value)
