"""AWS's limits and name patterns, in one place: forms, model validators, the policy checks and the
AWS seam all refuse what AWS would refuse, with the same rule, *before* anything is sent.

Patterns are anchored with ``\\A...\\Z`` (``^...$`` would accept a trailing newline) and compiled with
``re.ASCII``: Python's ``\\w`` also accepts "é", which IAM refuses, and the refusal would only
surface later, in the enforcement sync of a whole team. ``.match`` and ``.fullmatch`` are both safe.

Pure Python (no Django, no boto3). Sizes follow IAM's own rule: a policy's length is counted
without whitespace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

# --- IAM and Organizations limits (defaults; see DESIGN.md "Limits to validate") -----------------
# https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html

MANAGED_POLICY_MAX_CHARS: Final = 6_144
TRUST_POLICY_MAX_CHARS: Final = 2_048
INLINE_POLICIES_MAX_CHARS: Final = 10_240
INLINE_ROLE_TOTAL_MAX_CHARS: Final = INLINE_POLICIES_MAX_CHARS
MANAGED_POLICIES_PER_ROLE: Final = 10
MAX_MANAGED_POLICIES_PER_ROLE: Final = MANAGED_POLICIES_PER_ROLE
# Default quota of managed policies attached to one IAM user or group (adjustable up to 20).
MAX_MANAGED_POLICIES_PER_PRINCIPAL: Final = 10
MAX_POLICY_VERSIONS: Final = 5

MIN_SESSION_SECONDS: Final = 3_600
MAX_SESSION_SECONDS: Final = 43_200
MIN_SESSION_DURATION: Final = MIN_SESSION_SECONDS
MAX_SESSION_DURATION: Final = MAX_SESSION_SECONDS

ACCOUNT_NAME_MIN_CHARS: Final = 1
ACCOUNT_NAME_MAX_CHARS: Final = 50
ACCOUNT_EMAIL_MIN_CHARS: Final = 6
ACCOUNT_EMAIL_MAX_CHARS: Final = 64
HANDSHAKE_NOTES_MAX_CHARS: Final = 1024
ROLE_DESCRIPTION_MAX_CHARS: Final = 1000

IAM_NAME_MAX_CHARS: Final = 64
ROLE_NAME_MAX_CHARS: Final = IAM_NAME_MAX_CHARS
ROLE_PATH_MAX_CHARS: Final = 512

# --- name patterns ------------------------------------------------------------------------------

ACCOUNT_ID_PATTERN: Final = r"\A[0-9]{12}\Z"
#: IAM's rule for the names of users, groups and roles: 1–64 ASCII letters and digits and
#: ``+ = , . @ _ -`` (with ``re.ASCII``). The Django validators are built from this pattern.
IAM_NAME_PATTERN: Final = r"\A[\w+=,.@-]{1,64}\Z"
IAM_NAME_MESSAGE: Final = "Use 1–64 letters (A–Z, no accents), digits and + = , . @ _ - only."

ACCOUNT_ID_RE: Final = re.compile(ACCOUNT_ID_PATTERN)
IAM_NAME_RE: Final = re.compile(IAM_NAME_PATTERN, re.ASCII)
ROLE_NAME_RE: Final = IAM_NAME_RE
POLICY_NAME_RE: Final = re.compile(r"\A[\w+=,.@-]{1,128}\Z", re.ASCII)
# What IAM itself accepts as a path: "/" alone, or "/" + printable ASCII segments + "/".
IAM_PATH_RE: Final = re.compile(r"\A/(?:[\x21-\x7E]+/)?\Z")
# The paths Switchyard writes: "/" or "/seg/.../" with only role-name characters between slashes,
# so a path is safe in an ARN, a switch-role URL and an INI file alike.
ROLE_PATH_RE: Final = re.compile(r"\A(?=.{1,512}\Z)/(?:[\w+=,.@-]+/)*\Z", re.ASCII)
# A path segment or a client slug inside one.
PATH_SEGMENT_RE: Final = re.compile(r"\A[\w+=,.@-]+\Z", re.ASCII)

# --- names Switchyard gives things in AWS -------------------------------------------------------

MANAGED_BY_TAG_KEY: Final = "managed-by"
MANAGED_BY_TAG_VALUE: Final = "switchyard"
PERSON_TAG_KEY: Final = "switchyard-person"
DEFAULT_ACCESS_ROLE_NAME: Final = "OrganizationAccountAccessRole"
INVITED_ACCESS_ROLE_NAME: Final = "SwitchyardAccessRole"
ADMINISTRATOR_ACCESS_ARN: Final = "arn:aws:iam::aws:policy/AdministratorAccess"


def is_iam_name(name: str) -> bool:
    """True when IAM accepts ``name`` as the name of a user, group or role."""
    return bool(IAM_NAME_RE.match(name))


def require_account_id(account_id: str) -> None:
    """Raise ``ValueError`` unless ``account_id`` is exactly 12 digits."""
    if not ACCOUNT_ID_RE.match(account_id):
        raise ValueError(f"An AWS account id is exactly 12 digits, not {account_id!r}.")


def count_policy_chars(text: str) -> int:
    """Characters IAM counts against a policy size limit: everything except whitespace."""
    return sum(1 for char in text if not char.isspace())


def policy_json(document: Mapping[str, Any]) -> str:
    """The compact JSON text Switchyard sends to IAM, so the size we checked is the size sent."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def policy_size(document: Mapping[str, Any]) -> int:
    """Size of ``document`` as IAM counts it (compact JSON, whitespace not counted)."""
    return count_policy_chars(policy_json(document))
