"""Switch-role URLs, display names, console colours and the extension / CLI exports."""

from __future__ import annotations

import configparser
import re
import unicodedata
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from switchroles.links import (
    CONSOLE_COLORS,
    LinkChecker,
    LinkExport,
    aesr_profile_name,
    aws_cli_config,
    color_for_tier,
    display_name_for,
    extend_switch_roles_config,
    profile_name_for,
    role_arn,
    switch_role_url,
)

ACME_ENGINEER = {
    "account_id": "123456789012",
    "role_path": "/switchyard/acme/",
    "role_name": "Engineer",
    "display_name": "Acme / acme-prod / Engineer",
    "color": CONSOLE_COLORS["blue"],
}


def link(**changes: str) -> LinkExport:
    values = {"profile_name": "acme-prod-engineer", **ACME_ENGINEER, **changes}
    return LinkExport(**values)


def test_switch_role_url_for_a_known_role_is_exact() -> None:
    url = switch_role_url(**ACME_ENGINEER)

    assert url == (
        "https://signin.aws.amazon.com/switchrole?account=123456789012"
        "&roleName=switchyard/acme/Engineer&displayName=Acme%20/%20acme-prod%20/%20Engineer&color=83d4e8"
    )


def test_a_role_at_the_root_path_has_just_its_name() -> None:
    url = switch_role_url(**{**ACME_ENGINEER, "role_path": "/", "display_name": "Ops"})

    assert "&roleName=Engineer&" in url


def test_role_name_characters_that_mean_something_in_a_query_are_encoded() -> None:
    url = switch_role_url(**{**ACME_ENGINEER, "role_name": "ops+admin=x,y@acme"})

    assert "&roleName=switchyard/acme/ops%2Badmin%3Dx%2Cy%40acme&" in url
    assert parse_qs(urlsplit(url).query)["roleName"] == ["switchyard/acme/ops+admin=x,y@acme"]


def test_colour_may_be_given_by_palette_name_or_hex_in_any_case() -> None:
    by_name = switch_role_url(**{**ACME_ENGINEER, "color": "red"})
    by_hex = switch_role_url(**{**ACME_ENGINEER, "color": "#F2B0A9"})

    assert by_name == by_hex
    assert by_name.endswith("&color=f2b0a9")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", "12345678901"),
        ("account_id", "1234567890123"),
        ("account_id", "12345678901a"),
        ("account_id", "١٢٣٤٥٦٧٨٩٠١٢"),  # Arabic-Indic digits pass str.isdigit(), not AWS
        ("account_id", "123456789012\n"),
        ("account_id", " 123456789012"),
        ("account_id", "evil.com/123"),
        ("role_name", ""),
        ("role_name", "Engineer/../Admin"),
        ("role_name", "Engineer&account=999999999999"),
        ("role_name", "A" * 65),
        ("role_path", "switchyard/acme/"),
        ("role_path", "/switchyard/acme"),
        ("role_path", "//evil.com/"),
        ("role_path", "/" + "a" * 56 + "/"),  # path + name: 65 characters
        ("display_name", ""),
        ("display_name", "   "),
        ("display_name", "x" * 65),
        ("display_name", "\U0001f680" * 33),  # 33 rockets are 66 JavaScript characters
        ("display_name", "Prod\nAdmin"),
        ("display_name", "Prod \u202eAdmin"),  # right-to-left override could disguise the tier
        ("color", "ff0000"),
        ("color", "purple"),
        ("color", ""),
    ],
)
def test_switch_role_url_refuses_what_the_console_would_refuse(field: str, value: str) -> None:
    with pytest.raises(ValueError):
        switch_role_url(**{**ACME_ENGINEER, field: value})


def test_a_role_path_and_name_of_exactly_64_characters_are_accepted() -> None:
    url = switch_role_url(**{**ACME_ENGINEER, "role_path": "/" + "a" * 55 + "/"})

    assert len(parse_qs(urlsplit(url).query)["roleName"][0]) == 64


def test_a_display_name_of_exactly_64_characters_is_accepted() -> None:
    url = switch_role_url(**{**ACME_ENGINEER, "display_name": "é" * 64})

    assert parse_qs(urlsplit(url).query)["displayName"] == ["é" * 64]


def texts_or(valid: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.text(), st.text(alphabet="/:?#@&=%+.\\ \t\n\u202e0123456789abc"), valid)


@settings(max_examples=400, deadline=None)
@given(
    account_id=texts_or(st.from_regex(r"\A[0-9]{12}\Z")),
    role_path=texts_or(st.sampled_from(["/", "/switchyard/acme/", "/a/b/"])),
    role_name=texts_or(st.from_regex(r"\A[A-Za-z0-9+=,.@_-]{1,20}\Z")),
    display_name=texts_or(st.text(min_size=1, max_size=64)),
    color=texts_or(st.sampled_from([*CONSOLE_COLORS, *CONSOLE_COLORS.values()])),
)
def test_any_input_either_is_refused_or_yields_a_signin_url_that_round_trips(
    account_id: str, role_path: str, role_name: str, display_name: str, color: str
) -> None:
    try:
        url = switch_role_url(
            account_id=account_id,
            role_path=role_path,
            role_name=role_name,
            display_name=display_name,
            color=color,
        )
    except ValueError:
        return

    parts = urlsplit(url)
    assert parts.scheme == "https"
    assert parts.netloc == "signin.aws.amazon.com"
    assert parts.path == "/switchrole"
    assert parts.fragment == ""
    assert parse_qs(parts.query, keep_blank_values=True, strict_parsing=True) == {
        "account": [account_id],
        "roleName": [role_path[1:] + role_name],
        "displayName": [display_name],
        "color": [CONSOLE_COLORS.get(color.strip().lower(), color.strip().lower().removeprefix("#"))],
    }


# One checker for every example, as a directory uses one for all its rows: what it remembers of one
# link's role path, name and colour must never leak into another link's answer.
SHARED_CHECKER = LinkChecker()


@settings(max_examples=400, deadline=None)
@given(
    account_id=texts_or(st.from_regex(r"\A[0-9]{12}\Z")),
    role_path=st.sampled_from(["/", "/switchyard/acme/", "/a/b/", "switchyard/", "/" + "a" * 56 + "/"]),
    role_name=st.sampled_from(["Engineer", "A" * 8, "Engineer&x=1", ""]),
    display_name=texts_or(st.text(min_size=1, max_size=64)),
    color=st.sampled_from([*CONSOLE_COLORS, *CONSOLE_COLORS.values(), "ff0000", "", " Blue "]),
)
def test_the_directory_checker_answers_what_the_console_link_builder_would(
    account_id: str, role_path: str, role_name: str, display_name: str, color: str
) -> None:
    fields = {"account_id": account_id, "role_path": role_path, "role_name": role_name,
              "display_name": display_name, "color": color}
    try:
        url = switch_role_url(**fields)
    except ValueError as exc:
        assert SHARED_CHECKER.check(**fields) == (str(exc), "")
    else:
        assert SHARED_CHECKER.check(**fields) == ("", parse_qs(urlsplit(url).query)["color"][0])


def test_display_name_joins_client_account_and_tier() -> None:
    assert display_name_for("Acme", "acme-prod", "Engineer") == "Acme / acme-prod / Engineer"


def test_a_long_display_name_keeps_the_tier_and_cuts_the_names() -> None:
    name = display_name_for(
        "Acme Industrial Holdings International", "acme-industrial-production-eu-west-1", "Administrator"
    )

    assert len(name) <= 64
    assert name.endswith(" / Administrator")
    assert name.startswith("Acme Industrial")
    assert name.count("…") == 2


def test_a_short_client_name_leaves_room_for_a_long_account_name() -> None:
    name = display_name_for("Acme", "a" * 80, "Engineer")

    assert name == "Acme / " + "a" * 45 + "… / Engineer"
    assert len(name) == 64


def test_display_name_drops_invisible_and_control_characters() -> None:
    assert display_name_for("Ac\u202eme\n", " prod\t\tEU ", "Read-only") == "Acme / prod EU / Read-only"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(), st.text())
def test_display_name_for_any_text_is_accepted_by_the_console(client: str, account: str, tier: str) -> None:
    try:
        name = display_name_for(client, account, tier)
    except ValueError:
        assert not any(char.isprintable() and not char.isspace() for char in client + account + tier)
        return

    url = switch_role_url(**{**ACME_ENGINEER, "display_name": name})
    assert parse_qs(urlsplit(url).query)["displayName"] == [name]


def test_palette_is_the_five_console_colours_as_lowercase_hex() -> None:
    assert set(CONSOLE_COLORS) == {"red", "orange", "yellow", "green", "blue"}
    assert all(re.fullmatch(r"[0-9a-f]{6}", value) for value in CONSOLE_COLORS.values())
    assert len(set(CONSOLE_COLORS.values())) == 5


def test_tier_colours_follow_the_design() -> None:
    assert color_for_tier("administrator") == CONSOLE_COLORS["red"]
    assert color_for_tier("Engineer") == CONSOLE_COLORS["blue"]
    assert color_for_tier("on-call") == color_for_tier("on_call") == CONSOLE_COLORS["green"]
    assert color_for_tier("read-only") == color_for_tier("Read only") == CONSOLE_COLORS["green"]
    assert color_for_tier("custom") in set(CONSOLE_COLORS.values()) - {
        CONSOLE_COLORS["red"],
        CONSOLE_COLORS["blue"],
        CONSOLE_COLORS["green"],
    }


def test_an_unknown_tier_has_no_colour() -> None:
    with pytest.raises(ValueError):
        color_for_tier("superuser")


def test_role_arn_includes_the_path() -> None:
    assert role_arn("123456789012", "/switchyard/acme/", "Engineer") == (
        "arn:aws:iam::123456789012:role/switchyard/acme/Engineer"
    )
    assert role_arn("123456789012", "/", "Engineer") == "arn:aws:iam::123456789012:role/Engineer"
    with pytest.raises(ValueError):
        role_arn("123456789012", "/switchyard/acme/", "Engineer*")


LINKS = [
    link(),
    link(profile_name="Acme Prod / Administrator", role_name="Administrator", color="red"),
    link(profile_name="acme-prod-engineer", account_id="210987654321"),  # same name: made unique
    link(profile_name="Globex; [Read-only] #1 é", role_path="/switchyard/globex/", role_name="ReadOnly"),
    link(profile_name="", display_name="Initech / prod / On-call", role_path="/", role_name="OnCall"),
]


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return parser


AESR_LINKS = [
    link(),
    link(display_name="Acme / acme-prod / Administrator", role_name="Administrator", color="red"),
    link(account_id="210987654321"),  # the same display name in another account: made unique
    link(display_name="Globex; [Read-only] #1 é", role_path="/switchyard/globex/", role_name="ReadOnly"),
    link(profile_name="", display_name="Initech / prod / On-call", role_path="/", role_name="OnCall"),
]


def test_extension_config_lists_exactly_the_given_links() -> None:
    # when the links are exported for AWS Extend Switch Roles
    text = extend_switch_roles_config(AESR_LINKS)

    # then configparser reads one profile section per link, named by its display name (unique,
    # without the characters the extension takes for comments)
    parser = parse(text)
    assert parser.sections() == [
        "profile Acme / acme-prod / Engineer",
        "profile Acme / acme-prod / Administrator",
        "profile Acme / acme-prod / Engineer (2)",
        "profile Globex, [Read-only] No.1 é",
        "profile Initech / prod / On-call",
    ]
    assert [dict(parser[section]) for section in parser.sections()] == [
        {"aws_account_id": "123456789012", "role_name": "switchyard/acme/Engineer", "color": "83d4e8"},
        {"aws_account_id": "123456789012", "role_name": "switchyard/acme/Administrator", "color": "f2b0a9"},
        {"aws_account_id": "210987654321", "role_name": "switchyard/acme/Engineer", "color": "83d4e8"},
        {"aws_account_id": "123456789012", "role_name": "switchyard/globex/ReadOnly", "color": "83d4e8"},
        {"aws_account_id": "123456789012", "role_name": "OnCall", "color": "83d4e8"},
    ]


def test_aesr_names_keep_the_tier_within_what_the_extension_sends() -> None:
    # given a link whose client and account names are long
    long_link = link(client_name="Vandelay Industries International Holdings",
                     account_name="production-eu-west-1-payments-platform", tier_label="Administrator")
    # then its AESR name is cut in the client and account names, and with "  |  <account ID>" fits 64
    name = aesr_profile_name(long_link)
    assert name.endswith(" / Administrator") and "…" in name
    assert len(name + "  |  " + long_link.account_id) <= 64


def test_extension_config_survives_the_extensions_own_comment_rules() -> None:
    # The extension drops everything after ";" or "#" on any line, so only comment lines have them.
    text = extend_switch_roles_config(AESR_LINKS, region="eu-west-1")

    body = [line for line in text.splitlines() if line and not line.startswith(";")]
    assert all(";" not in line and "#" not in line for line in body)
    assert all(parse(text)[section]["region"] == "eu-west-1" for section in parse(text).sections())


def test_cli_config_assumes_each_role_with_mfa_and_the_users_session_name() -> None:
    text = aws_cli_config(
        LINKS[:2],
        source_profile="switchyard",
        mfa_serial="arn:aws:iam::999999999999:mfa/eli",
        session_name="eli",
    )

    parser = parse(text)
    assert parser.sections() == ["profile acme-prod-engineer", "profile acme-prod-administrator"]
    assert dict(parser["profile acme-prod-administrator"]) == {
        "role_arn": "arn:aws:iam::123456789012:role/switchyard/acme/Administrator",
        "source_profile": "switchyard",
        "mfa_serial": "arn:aws:iam::999999999999:mfa/eli",
        "role_session_name": "eli",
    }


def test_cli_profiles_never_shadow_the_source_profile() -> None:
    text = aws_cli_config(
        [link(profile_name="switchyard")],
        source_profile="switchyard",
        mfa_serial="arn:aws:iam::999999999999:mfa/eli",
        session_name="eli",
    )

    assert parse(text).sections() == ["profile switchyard-2"]


@pytest.mark.parametrize(
    "changes",
    [
        {"source_profile": "main\n[profile evil]"},
        {"mfa_serial": "arn:aws:iam::999999999999:mfa/eli%(x)s"},
        {"session_name": "e"},
        {"session_name": "eli smith"},
        {"region": "eu-west-1; rm"},
    ],
)
def test_cli_config_refuses_values_that_would_break_the_file(changes: dict[str, str]) -> None:
    arguments = {
        "source_profile": "switchyard",
        "mfa_serial": "arn:aws:iam::999999999999:mfa/eli",
        "session_name": "eli",
        **changes,
    }

    with pytest.raises(ValueError):
        aws_cli_config(LINKS, **arguments)


def test_exports_refuse_an_invalid_link() -> None:
    with pytest.raises(ValueError):
        extend_switch_roles_config([link(account_id="12345")])


def test_exports_of_no_links_are_still_valid_config() -> None:
    assert parse(extend_switch_roles_config([])).sections() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=80), st.text(max_size=80), st.text(max_size=30)), max_size=8))
# Found by Hypothesis: a "#" (written "No.") near the cut made the name longer than AESR's limit.
@example([("0", "00000000000000000#", "000000000000000000#")])
def test_any_names_parse_and_stay_unique(names: list[tuple[str, str, str]]) -> None:
    def shown(text: str) -> bool:  # something a display name keeps (not only spaces and control characters)
        return not all(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") or c.isspace() for c in text)

    links = [link(client_name=client, account_name=account, tier_label=tier) for client, account, tier in names
             if shown(client + account + tier)]

    text = extend_switch_roles_config(links)
    sections = parse(text).sections()
    cli = parse(aws_cli_config(links, source_profile="sy-main", mfa_serial=None, session_name="eli",
                               prefix="sy-")).sections()

    assert len(sections) == len({section.lower() for section in sections}) == len(links)
    assert all(";" not in section and "#" not in section and len(section) <= len("profile ") + 47
               for section in sections)
    assert len(cli) == len(links) and all(re.fullmatch(r"profile sy-[a-z0-9._-]{1,61}", section) for section in cli)


def test_profile_name_for_is_readable() -> None:
    assert profile_name_for("Acme Prod / Administrator") == "acme-prod-administrator"
    assert profile_name_for("???") == "profile"


@pytest.mark.parametrize("value", [None, 123456789012, ["/switchyard/"], b"/switchyard/"])
def test_values_that_are_not_text_are_refused_like_any_other(value: object) -> None:
    # (answers are remembered for text only: these must still be refused, not crash the cache)
    for field in ACME_ENGINEER:
        with pytest.raises(ValueError):
            switch_role_url(**{**ACME_ENGINEER, field: value})  # type: ignore[arg-type]


def test_a_refused_link_stays_refused_and_a_valid_one_is_the_same_each_time() -> None:
    bad = {**ACME_ENGINEER, "display_name": "Prod\nAdmin"}
    for _ in range(2):
        with pytest.raises(ValueError):
            switch_role_url(**bad)
    assert switch_role_url(**ACME_ENGINEER) == switch_role_url(**dict(ACME_ENGINEER))
