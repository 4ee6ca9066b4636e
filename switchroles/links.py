"""Switch-role links and their exports (browser extension, AWS CLI).

A link grants nothing: it pre-fills the console's Switch Role form. AWS decides access (see
``portal.aws``). These builders refuse what the console would refuse, and always point at
``https://signin.aws.amazon.com`` whatever the inputs, because a link is shown and clicked as trusted.

Pure Python: no Django, no boto3.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

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
    # What the display name is made of, so an export can shorten it its own way (AESR adds the
    # account ID to the name it sends), and what the CLI needs beyond the role.
    client_name: str = ""
    account_name: str = ""
    tier_label: str = ""
    region: str = ""
    max_session_seconds: int | None = None


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
    _check_account_id(account_id)
    name = switch_role_name(role_path, role_name)
    _check_display_name(display_name)
    query = urlencode({"account": account_id, "roleName": name, "displayName": display_name,
                       "color": console_color(color)}, quote_via=quote, safe="/")
    return f"{SWITCH_ROLE_ENDPOINT}?{query}"


def _problem(check: Callable[..., object], *args: object) -> str:
    try:
        check(*args)
    except ValueError as exc:
        return str(exc)
    return ""


class LinkChecker:
    """Checks many links' fields as :func:`switch_role_url` would, for directories of thousands of
    links: per link only what is its own (account ID, display name); each role path and name, and
    each colour, once, since a directory repeats a few of them on every account."""

    def __init__(self) -> None:
        self._roles: dict[tuple[str, str], str] = {}
        self._colors: dict[str, tuple[str, str]] = {}

    def check(self, account_id: str, role_path: str, role_name: str, display_name: str,
              color: str) -> tuple[str, str]:
        """(why these fields would not make a console link, or ""; the palette hex, "" with a problem)."""
        role = self._roles.get((role_path, role_name))
        if role is None:
            role = self._roles[(role_path, role_name)] = _problem(switch_role_name, role_path, role_name)
        palette = self._colors.get(color)
        if palette is None:
            problem = _problem(console_color, color)
            palette = self._colors[color] = (problem, "" if problem else console_color(color))
        # The account ID and display name are each link's own: a directory of thousands checks them
        # thousands of times, so the fields that pass (nearly all) are told apart by the checks'
        # C-speed tests alone (a regular expression; printable, not blank, short enough) and only
        # the others are checked in full, for their message.
        if isinstance(account_id, str) and ACCOUNT_ID_RE.match(account_id):
            account = ""
        else:
            account = _problem(_check_account_id, account_id)
        if (isinstance(display_name, str) and display_name.isprintable() and display_name.strip()
                and _js_len(display_name) <= DISPLAY_NAME_MAX_CHARS):
            display = ""
        else:
            display = _problem(_check_display_name, display_name)
        problem = account or role or display or palette[0]
        return problem, "" if problem else palette[1]


def display_name_for(client_name: str, account_name: str, tier_label: str, *,
                     max_chars: int = DISPLAY_NAME_MAX_CHARS) -> str:
    """``"<client> / <account> / <tier>"`` in at most ``max_chars`` (64) console characters.

    The tier is kept whole (up to 24 characters) because it says how much power the session has;
    the client and account names share the rest, each cut with "…" only as much as needed.
    Control and formatting characters (e.g. bidi overrides) are dropped, whitespace collapsed.
    """
    client, account, tier = (_clean_text(part) for part in (client_name, account_name, tier_label))
    tier = _clip(tier, 24)
    names = [part for part in (client, account) if part]
    if not names and not tier:
        raise ValueError("A display name needs a client, an account or a tier.")
    room = max_chars - (_js_len(tier) + _js_len(_DISPLAY_SEPARATOR) if tier else 0)
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


# --- AWS Extend Switch Roles (AESR) ------------------------------------------------------------------

# AESR sends "<profile name>  |  <account ID>" as the console's display name and cuts it to 64
# characters from the right: names up to 64 - 17 characters arrive whole, tier included.
AESR_ACCOUNT_SUFFIX = "  |  "
AESR_PROFILE_NAME_MAX_CHARS = DISPLAY_NAME_MAX_CHARS - len(AESR_ACCOUNT_SUFFIX) - 12
# AESR keeps its configuration in the browser's sync storage as LZ-String (compressToUTF16) text in
# at most 8 items of 2,700 characters; anything longer is refused ("Configuration is too large to
# save."), and the engineer must switch AESR to local storage or import less.
AESR_SYNC_MAX_CHARS = 2_700 * 8
# AESR drops everything after ";" or "#" on a line (comments) and cuts a value at its first "="
# (``text.split("=", 2)``): a role name or path with one of these cannot be said to it.
AESR_UNREADABLE_CHARS = frozenset("=;#")
_AESR_NAME_REPLACEMENTS = str.maketrans({";": ",", "#": "No."})


@dataclass(frozen=True)
class AesrExport:
    """The AESR configuration text, the links it had to leave out (with why), and whether it fits
    AESR's sync storage (``compressed_chars`` against :data:`AESR_SYNC_MAX_CHARS`)."""

    text: str
    profiles: int
    left_out: tuple[tuple[str, str], ...]
    compressed_chars: int

    @property
    def fits_sync_storage(self) -> bool:
        return self.compressed_chars <= AESR_SYNC_MAX_CHARS


def aesr_profile_name(link: LinkExport, *, number: int = 1) -> str:
    """The name AESR lists and sends: the directory's display name, shortened from the client and
    account names (never the tier) so that with AESR's "  |  <account ID>" it stays within 64.
    ``number`` > 1 adds " (<number>)" before the tier, for names that would repeat."""
    suffix = f" ({number})" if number > 1 else ""
    room = AESR_PROFILE_NAME_MAX_CHARS - len(suffix)

    def readable(text: str) -> str:  # before shortening: "#" becomes "No.", which is longer
        return text.translate(_AESR_NAME_REPLACEMENTS)

    if link.client_name or link.account_name or link.tier_label:
        name = display_name_for(readable(link.client_name), readable(link.account_name), readable(link.tier_label),
                                max_chars=room)
    else:
        name = _clip(_clean_text(readable(link.display_name)), room)
    if suffix:
        head, separator, tier = name.rpartition(_DISPLAY_SEPARATOR)
        name = f"{head}{suffix}{separator}{tier}" if separator and link.tier_label else name + suffix
    return name


def aesr_config(
    links: Iterable[LinkExport],
    *,
    base_account_id: str | None = None,
    base_profile_name: str | None = None,
    region: str | None = None,
) -> AesrExport:
    """Configuration for the AWS Extend Switch Roles browser extension, as its own parser reads it.

    One ``[profile <display name>]`` per link with ``aws_account_id``, ``role_name`` (the path without
    its leading slash, then the name), ``color``, and ``region`` (the link's own, else ``region``).
    With ``base_account_id`` the profiles are targets of a base profile for that account
    (``source_profile``), so AESR lists them only while the browser is signed in to it.
    Links whose role AESR cannot read (``=``, ``;`` or ``#`` in it) are left out and named in a comment.
    """
    if region:
        _check_config_value("region", region)
    base = None
    if base_account_id is not None:
        _check_account_id(base_account_id)
        base = (base_profile_name or base_account_id).strip()
        _check_config_value("base profile name", base)
    lines = ["; AWS Extend Switch Roles configuration exported from Switchyard.",
             "; Paste it in the extension's Configuration page and save.", ""]
    taken = {base.lower()} if base else set()
    body: list[str] = []
    left_out: list[tuple[str, str]] = []
    count = 0
    for link in links:
        switch_role_url(account_id=link.account_id, role_path=link.role_path, role_name=link.role_name,
                        display_name=link.display_name, color=link.color)
        role = switch_role_name(link.role_path, link.role_name)
        if AESR_UNREADABLE_CHARS & set(role):
            left_out.append((link.display_name, f'its role name "{role}" has a character AESR cannot read (= ; #)'))
            continue
        name = _unique_aesr_name(link, taken)
        body += [f"[profile {name}]", f"aws_account_id = {link.account_id}", f"role_name = {role}",
                 f"color = {console_color(link.color)}"]
        link_region = link.region or region
        if link_region:
            _check_config_value("region", link_region)
            body.append(f"region = {link_region}")
        if base:
            body.append(f"source_profile = {base}")
        body.append("")
        count += 1
    if base and count:  # alone, the base profile would be listed as a role to switch to
        lines += ["; Your main account: the roles below are listed while you are signed in to it.",
                  f"[{base}]", f"aws_account_id = {base_account_id}", ""]
    for display_name, why in left_out:
        lines.append(f"; Left out: {_clean_text(display_name)}: {why}. Use the directory's link instead.")
    if left_out:
        lines.append("")
    text = "\n".join(lines + body)
    return AesrExport(text=text, profiles=count, left_out=tuple(left_out), compressed_chars=lz_utf16_length(text))


def _unique_aesr_name(link: LinkExport, taken: set[str]) -> str:
    number = 1
    name = aesr_profile_name(link)
    while name.lower() in taken:
        number += 1
        name = aesr_profile_name(link, number=number)
    taken.add(name.lower())
    return name


def extend_switch_roles_config(links: Iterable[LinkExport], *, region: str | None = None) -> str:
    """The AESR configuration text alone (every profile a single); see :func:`aesr_config`."""
    return aesr_config(links, region=region).text


def lz_utf16_length(text: str) -> int:
    """The length of ``LZString.compressToUTF16(text)`` (lz-string 1.x, which AESR stores), computed
    without building it: 15 bits per output character, one for the end mark, plus a trailing space."""
    units = text.encode("utf-16-le", "surrogatepass")
    dictionary: dict[str, int] = {}
    to_create: set[str] = set()
    w = ""
    enlarge_in, dict_size, num_bits, bits = 2, 3, 2, 0
    for index in range(0, len(units), 2):
        c = chr(units[index] | units[index + 1] << 8)
        if c not in dictionary:
            dictionary[c] = dict_size
            dict_size += 1
            to_create.add(c)
        wc = w + c
        if wc in dictionary:
            w = wc
            continue
        bits, enlarge_in, num_bits = _lz_emit(w, to_create, bits, enlarge_in, num_bits)
        dictionary[wc] = dict_size
        dict_size += 1
        w = c
    if w:
        bits, enlarge_in, num_bits = _lz_emit(w, to_create, bits, enlarge_in, num_bits)
    bits += num_bits  # the end-of-stream mark
    return bits // 15 + 1 + 1


def _lz_emit(w: str, to_create: set[str], bits: int, enlarge_in: int, num_bits: int) -> tuple[int, int, int]:
    if w in to_create:
        bits += num_bits + (8 if ord(w[0]) < 256 else 16)
        enlarge_in -= 1
        if enlarge_in == 0:
            enlarge_in, num_bits = 2 ** num_bits, num_bits + 1
        to_create.discard(w)
    else:
        bits += num_bits
    enlarge_in -= 1
    if enlarge_in == 0:
        enlarge_in, num_bits = 2 ** num_bits, num_bits + 1
    return bits, enlarge_in, num_bits


# --- ~/.aws/config ---------------------------------------------------------------------------------

DEFAULT_PROFILE_PREFIX = "sy-"
_PREFIX_RE = re.compile(r"\A[a-z0-9._-]{0,16}\Z")


def aws_cli_config(
    links: Iterable[LinkExport],
    *,
    source_profile: str,
    mfa_serial: str | None,
    session_name: str,
    region: str | None = None,
    prefix: str = "",
    main_account_id: str | None = None,
    mfa_note: str = "",
) -> str:
    """``~/.aws/config`` sections that assume each linked role from ``source_profile`` with MFA.

    Appended to an existing config it adds no section that is there already unless the config has
    a profile with the ``prefix``: every name starts with it, the source profile included.
    With ``main_account_id`` the source profile is defined too (``[profile <source>]`` with the
    region) and explained: its credentials are the engineer's IAM user access key, which they add
    with ``aws configure --profile <source>`` or ``aws-vault add <source>``.
    ``duration_seconds`` is the role's maximum session; ``mfa_serial`` is the person's MFA device
    (``None``: left out, with ``mfa_note`` saying why). ``session_name`` must be the IAM user name:
    member-role trust policies pin ``sts:RoleSessionName`` to ``${aws:username}``.
    The keys are the ones botocore, Granted and aws-vault all read.
    """
    if not _PREFIX_RE.match(prefix):
        raise ValueError("The prefix may have at most 16 lowercase letters, digits or . _ - characters.")
    _check_config_value("source_profile", source_profile)
    if mfa_serial is not None:
        _check_config_value("mfa_serial", mfa_serial)
    if not re.fullmatch(r"[\w+=,.@-]{2,64}", session_name, re.ASCII):
        raise ValueError("The session name must be 2-64 letters, digits or +=,.@-_ characters.")
    if region is not None:
        _check_config_value("region", region)
    lines = ["# AWS CLI profiles exported from Switchyard. Append them to ~/.aws/config.", ""]
    if main_account_id is not None:
        _check_account_id(main_account_id)
        lines += [
            f"# [profile {source_profile}] is your IAM user in the main account ({main_account_id}): every",
            "# profile below assumes its role from it, with your MFA code. Give it your access key once:",
            f"#   aws configure --profile {source_profile}      (or: aws-vault add {source_profile})",
            f"[profile {source_profile}]",
            *([f"region = {region}"] if region else []),
            "",
        ]
    if mfa_serial is None and mfa_note:
        lines += [f"# {line}" for line in _clean_text(mfa_note).split(". ") if line] + [""]
    reserved = {source_profile.lower()}
    for profile, link in _profiles(links, reserved=reserved, prefix=prefix):
        lines += [
            f"[profile {profile}]",
            f"role_arn = {role_arn(link.account_id, link.role_path, link.role_name)}",
            f"source_profile = {source_profile}",
        ]
        if mfa_serial is not None:
            lines.append(f"mfa_serial = {mfa_serial}")
        lines.append(f"role_session_name = {session_name}")
        if link.max_session_seconds:
            lines.append(f"duration_seconds = {int(link.max_session_seconds)}")
        link_region = link.region or region
        if link_region:
            _check_config_value("region", link_region)
            lines.append(f"region = {link_region}")
        lines.append("")
    return "\n".join(lines)


def profile_name_for(text: str) -> str:
    """A profile name safe in INI headers and shells: lowercase ``[a-z0-9._-]``, at most 64."""
    name = _PROFILE_CHARS_RE.sub("-", unicodedata.normalize("NFKD", str(text)).lower()).strip("-._")
    return name[:PROFILE_NAME_MAX_CHARS].rstrip("-._") or "profile"


# --- helpers -----------------------------------------------------------------------------------


def _profiles(links: Iterable[LinkExport], reserved: set[str] | None = None,
              prefix: str = "") -> list[tuple[str, LinkExport]]:
    """Each link (validated) with a sanitised profile name, starting with ``prefix``, unique in this export."""
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
        base = prefix + profile_name_for(link.profile_name or link.display_name)
        base = base[:PROFILE_NAME_MAX_CHARS].rstrip("-._")
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
    # UTF-16 code units, counted at C speed (a lone surrogate is one unit, as in JavaScript).
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


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
