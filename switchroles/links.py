"""Switch-role links and their exports (browser extension, AWS CLI).

A link grants nothing: it pre-fills the console's Switch Role form. AWS decides access (see
``switchroles.aws``). These builders refuse what the console would refuse, and always point at
``https://signin.aws.amazon.com`` whatever the inputs, because a link is shown and clicked as trusted.

Pure Python: no Django, no boto3.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from switchroles.policies import ACCOUNT_ID_RE, ROLE_NAME_RE, ROLE_PATH_RE

SWITCH_ROLE_ENDPOINT = "https://signin.aws.amazon.com/switchrole"
# The console answers 400 beyond 64 characters; it counts JavaScript (UTF-16) characters.
DISPLAY_NAME_MAX_CHARS = 64
# path (without its leading slash) + name, as the console's roleName field takes it.
SWITCH_ROLE_NAME_MAX_CHARS = 64
PROFILE_NAME_MAX_CHARS = 64

# The colours the console's Switch Role form offers; any other ``color`` value is dropped by the
# console. AWS changed this palette with the 2023-24 console redesign (the older one was F2B0A9,
# FBBF93, FAD791, B7CA9D, 99BCE3), so keep this table as the one place to update.
CONSOLE_COLORS: dict[str, str] = {
    "red": "f2b0a9",
    "orange": "fbc8aa",
    "yellow": "efda95",
    "green": "b7ca9d",
    "blue": "83d4e8",
}

# Tier -> palette colour name. Keys are normalised by :func:`color_for_tier`.
TIER_COLORS: dict[str, str] = {
    "administrator": "red",
    "admin": "red",
    "engineer": "blue",
    "oncall": "green",
    "readonly": "green",
    "custom": "yellow",
}

_HEX_TO_NAME = {hex_value: name for name, hex_value in CONSOLE_COLORS.items()}
_ELLIPSIS = "…"
_DISPLAY_SEPARATOR = " / "
_PROFILE_CHARS_RE = re.compile(r"[^a-z0-9._-]+")
_CONFIG_VALUE_RE = re.compile(r"\A[\w+=,.@:/-]+\Z", re.ASCII)


@dataclass(frozen=True)
class LinkExport:
    """One switch-role link as exported to a user's browser extension or AWS CLI config."""

    profile_name: str
    account_id: str
    role_path: str
    role_name: str
    display_name: str
    color: str


def console_color(color: str) -> str:
    """The palette hex (lowercase, no ``#``) for a palette hex or colour name; ValueError otherwise."""
    if not isinstance(color, str):
        raise ValueError("The colour must be one of the console's switch-role colours.")
    value = color.strip().lower().removeprefix("#")
    if value in _HEX_TO_NAME:
        return value
    if value in CONSOLE_COLORS:
        return CONSOLE_COLORS[value]
    raise ValueError("The colour must be one of the console's switch-role colours.")


def color_for_tier(tier: str) -> str:
    """Palette hex for a role tier: administrator red, engineer blue, on-call and read-only
    green, custom yellow. Accepts "on-call", "on_call", "Read only", ... ; ValueError if unknown."""
    key = re.sub(r"[\s_-]+", "", str(tier).lower())
    if key not in TIER_COLORS:
        raise ValueError(f"No console colour is defined for the tier {tier!r}.")
    return CONSOLE_COLORS[TIER_COLORS[key]]


def role_arn(account_id: str, path: str, name: str) -> str:
    """``arn:aws:iam::<account>:role<path><name>``, after validating each part."""
    _check_account_id(account_id)
    _check_role_path(path)
    _check_role_name(name)
    return f"arn:aws:iam::{account_id}:role{path}{name}"


def switch_role_name(role_path: str, role_name: str) -> str:
    """The console's roleName value: the path without its leading slash, then the name."""
    _check_role_path(role_path)
    _check_role_name(role_name)
    value = role_path[1:] + role_name
    if len(value) > SWITCH_ROLE_NAME_MAX_CHARS:
        raise ValueError(
            f"The role path and name together are {len(value)} characters; "
            f"the console's switch-role form takes at most {SWITCH_ROLE_NAME_MAX_CHARS}."
        )
    return value


def switch_role_url(*, account_id: str, role_path: str, role_name: str, display_name: str, color: str) -> str:
    """The console link that pre-fills Switch Role. Raises ValueError for anything the console
    would refuse or mangle; the host is always ``signin.aws.amazon.com`` over https."""
    values = (account_id, role_path, role_name, display_name, color)
    if all(type(value) is str for value in values):
        return _switch_role_url(*values)  # type: ignore[arg-type]
    return _switch_role_url.__wrapped__(*values)  # refused below, without being remembered


# A pure function of five short strings, asked for again on every load of a directory (thousands of
# links for a managed-services engineer): remember the latest answers. Refusals raise and are not kept.
@functools.lru_cache(maxsize=16_384)
def _switch_role_url(account_id: str, role_path: str, role_name: str, display_name: str, color: str) -> str:
    _check_account_id(account_id)
    name = switch_role_name(role_path, role_name)
    _check_display_name(display_name)
    hex_color = console_color(color)
    # What urlencode(..., quote_via=quote, safe="/") gives, without quoting the keys and the account
    # ID and colour (validated digits and hex) again: directories build thousands of these.
    return (f"{SWITCH_ROLE_ENDPOINT}?account={account_id}&roleName={_query_quote(name)}"
            f"&displayName={_query_quote(display_name)}&color={hex_color}")


# Characters quote(text, safe="/") keeps as they are. Display names are mostly these and spaces:
# replacing the spaces is then all quoting takes, which matters for directories of thousands of links.
_QUERY_PLAIN_OR_SPACE_RE = re.compile(r"[A-Za-z0-9_.~/ -]*")


def _query_quote(text: str) -> str:
    """``quote(text, safe="/")``."""
    if _QUERY_PLAIN_OR_SPACE_RE.fullmatch(text):
        return text.replace(" ", "%20")
    return quote(text, safe="/")


def display_name_for(client_name: str, account_name: str, tier_label: str) -> str:
    """``"<client> / <account> / <tier>"`` in at most 64 console characters.

    The tier is kept whole (up to 24 characters) because it says how much power the session has;
    the client and account names share the rest, each cut with "…" only as much as needed.
    Control and formatting characters (e.g. bidi overrides) are dropped, whitespace collapsed.
    """
    client, account, tier = (_clean_text(part) for part in (client_name, account_name, tier_label))
    tier = _clip(tier, 24)
    names = [part for part in (client, account) if part]
    if not names and not tier:
        raise ValueError("A display name needs a client, an account or a tier.")
    room = DISPLAY_NAME_MAX_CHARS - (_js_len(tier) + _js_len(_DISPLAY_SEPARATOR) if tier else 0)
    room -= _js_len(_DISPLAY_SEPARATOR) * (len(names) - 1)
    if len(names) == 2 and _js_len(names[0]) + _js_len(names[1]) > room:
        first, second = names
        half = room // 2
        if _js_len(first) <= half:
            second = _clip(second, room - _js_len(first))
        elif _js_len(second) <= room - half:
            first = _clip(first, room - _js_len(second))
        else:
            first, second = _clip(first, half), _clip(second, room - half)
        names = [first, second]
    elif len(names) == 1:
        names = [_clip(names[0], room)]
    return _DISPLAY_SEPARATOR.join([*names, tier] if tier else names)


def extend_switch_roles_config(links: Iterable[LinkExport], *, region: str | None = None) -> str:
    """Configuration text for the AWS Extend Switch Roles browser extension.

    One ``[profile <name>]`` section per link with ``aws_account_id``, ``role_name`` (path without
    its leading slash, then name, as the console takes it), ``color`` and, if given, ``region``.
    The extension shows the profile name and strips ``;``/``#`` comments, so names are sanitised.
    """
    if region is not None:
        _check_config_value("region", region)
    lines = ["; AWS Extend Switch Roles configuration exported from Switchyard.", ""]
    for profile, link in _profiles(links):
        lines += [
            f"[profile {profile}]",
            f"aws_account_id = {link.account_id}",
            f"role_name = {switch_role_name(link.role_path, link.role_name)}",
            f"color = {console_color(link.color)}",
        ]
        if region:
            lines.append(f"region = {region}")
        lines.append("")
    return "\n".join(lines)


def aws_cli_config(
    links: Iterable[LinkExport],
    *,
    source_profile: str,
    mfa_serial: str,
    session_name: str,
    region: str | None = None,
) -> str:
    """``~/.aws/config`` sections that assume each linked role from ``source_profile`` with MFA.

    ``session_name`` must be the IAM user name: member-role trust policies pin
    ``sts:RoleSessionName`` to ``${aws:username}``.
    """
    _check_config_value("source_profile", source_profile)
    _check_config_value("mfa_serial", mfa_serial)
    if not re.fullmatch(r"[\w+=,.@-]{2,64}", session_name, re.ASCII):
        raise ValueError("The session name must be 2-64 letters, digits or +=,.@-_ characters.")
    if region is not None:
        _check_config_value("region", region)
    lines = ["# AWS CLI profiles exported from Switchyard.", ""]
    for profile, link in _profiles(links, reserved={source_profile.lower()}):
        lines += [
            f"[profile {profile}]",
            f"role_arn = {role_arn(link.account_id, link.role_path, link.role_name)}",
            f"source_profile = {source_profile}",
            f"mfa_serial = {mfa_serial}",
            f"role_session_name = {session_name}",
        ]
        if region:
            lines.append(f"region = {region}")
        lines.append("")
    return "\n".join(lines)


def profile_name_for(text: str) -> str:
    """A profile name safe in INI headers and shells: lowercase ``[a-z0-9._-]``, at most 64."""
    name = _PROFILE_CHARS_RE.sub("-", unicodedata.normalize("NFKD", str(text)).lower()).strip("-._")
    return name[:PROFILE_NAME_MAX_CHARS].rstrip("-._") or "profile"


# --- helpers -----------------------------------------------------------------------------------


def _profiles(links: Iterable[LinkExport], reserved: set[str] | None = None) -> list[tuple[str, LinkExport]]:
    """Each link (validated) with a sanitised profile name unique in this export."""
    taken = set(reserved or ())
    result = []
    for link in links:
        switch_role_url(
            account_id=link.account_id,
            role_path=link.role_path,
            role_name=link.role_name,
            display_name=link.display_name,
            color=link.color,
        )
        base = profile_name_for(link.profile_name or link.display_name)
        name, counter = base, 1
        while name in taken:
            counter += 1
            suffix = f"-{counter}"
            name = base[: PROFILE_NAME_MAX_CHARS - len(suffix)].rstrip("-._") + suffix
        taken.add(name)
        result.append((name, link))
    return result


def _check_account_id(account_id: object) -> None:
    if not isinstance(account_id, str) or not ACCOUNT_ID_RE.match(account_id):
        raise ValueError("The account ID must be exactly 12 digits.")


def _check_role_name(name: object) -> None:
    if not isinstance(name, str) or not ROLE_NAME_RE.match(name):
        raise ValueError("The role name must be 1-64 letters, digits or +=,.@-_ characters.")


def _check_role_path(path: object) -> None:
    if not isinstance(path, str) or not ROLE_PATH_RE.match(path):
        raise ValueError('The role path must be "/" or "/segment/.../" using letters, digits or +=,.@-_.')


def _check_display_name(display_name: object) -> None:
    if not isinstance(display_name, str) or not display_name.strip():
        raise ValueError("Enter a display name.")
    # isprintable() is False for every character of those categories (and for spaces other than
    # " "): it answers the common case at C speed, the loop only looks at the rest.
    if not display_name.isprintable() and any(
        unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn") for char in display_name
    ):
        raise ValueError("The display name contains control or invisible characters.")
    if _js_len(display_name) > DISPLAY_NAME_MAX_CHARS:
        raise ValueError(f"The display name must be at most {DISPLAY_NAME_MAX_CHARS} characters.")


def _check_config_value(label: str, value: object) -> None:
    if not isinstance(value, str) or not _CONFIG_VALUE_RE.match(value):
        raise ValueError(f"The {label} may contain only letters, digits and +=,.@:/-_ characters.")


def _js_len(text: str) -> int:
    """Length as the console (JavaScript, UTF-16) counts it: astral characters count twice."""
    if text.isascii():
        return len(text)
    return sum(2 if ord(char) > 0xFFFF else 1 for char in text)


def _clean_text(text: object) -> str:
    text = "" if text is None else str(text)
    kept = "".join(
        " " if char.isspace() else char
        for char in text
        if char.isspace() or unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    return " ".join(kept.split())


def _clip(text: str, limit: int) -> str:
    if _js_len(text) <= limit:
        return text
    if limit <= 1:
        return _ELLIPSIS[:limit]
    cut = text
    while cut and _js_len(cut) + 1 > limit:
        cut = cut[:-1]
    return cut.rstrip() + _ELLIPSIS
