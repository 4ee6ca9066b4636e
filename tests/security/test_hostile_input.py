"""Hostile input, to every form and query parameter of the project: over-long text, non-ASCII,
control characters (NUL included), HTML and script, SQL-looking strings, JSON bombs in the custom
policy field, 13-digit and negative account ids, unknown ids.

Whatever arrives: no 500; a refused form leaves every table as it was; nothing reaches AWS (every
client factory fails the test if asked); what is echoed back is escaped (the raw markup payloads
never appear in a page); and nothing PostgreSQL refuses (NUL in text, a "\\u0000" escape in JSON)
ever reaches the database, although the tests run on SQLite, which would take it.

Hypothesis is bounded (max_examples per form, no deadline); every example runs in a savepoint
that is rolled back, so examples do not see each other's rows.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client as HttpClient
from django.urls import reverse
from hypothesis import HealthCheck, assume, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from onboarding.handback import AWS_REQUIREMENTS
from onboarding.models import AwsAccount
from switchroles.models import AccountRole
from tests.conftest import PASSWORD
from tests.security.support import (
    AwsForbidden,
    AwsUnreachable,
    World,
    all_routes,
    changed_tables,
    path_of,
    rolled_back_block,
    row_counts,
)

pytestmark = pytest.mark.django_db

# --- what hostile looks like -------------------------------------------------------------------------

# Distinctive markup: if one of these appears verbatim in a page, something was not escaped.
MARKUP = (
    '<script>alert("sy-1")</script>',
    '"><img src=x onerror=alert("sy-2")>',
    "</textarea><svg onload=alert('sy-3')>",
    "'><a href=javascript:alert(4) id=sy-4>x</a>",
)
CORPUS = (
    "", " ", "\x00", "a\x00b", "\r\n", "\t\x0b\x0c", "\x1b[31m", "\x7f\x85", "\u202eevil\u202c", "\ufeff", "\u200b",
    "é", "名前", "😀" * 8, "²", "١٢٣٤٥٦٧٨٩٠١٢", "１２３４５６７８９０１２",
    "' OR '1'='1", "1; DROP TABLE onboarding_client; --", '" OR 1=1 --', "%", "_", "\\", "%00", "%2e%2e%2f",
    "../../etc/passwd", "{{ 7|add:7 }}", "{% debug %}", "${jndi:ldap://x/a}", "javascript:alert(1)",
    "https://evil.example/", "//evil.example", "-1", "0", "-123456789012", "1234567890123", "12345678901",
    "9" * 30, "99999999999999999999999", str(2**63), str(-(2**63) - 1), "1e999", "NaN", "0x10", "1_000",
    "9999-12-31", "0001-01-01", "9999-12-31T23:59", "2024-02-30", "a" * 65, "a" * 1001, "x" * 100_000,
    *MARKUP,
)
HOSTILE_TEXT = st.one_of(
    st.sampled_from(CORPUS),
    st.text(max_size=300),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=20),
    st.builds(lambda before, markup, after: before + markup + after,
              st.text(max_size=20), st.sampled_from(MARKUP), st.text(max_size=20)),
    st.builds(lambda part, times: part * times, st.sampled_from(["a", "é", "<", "\x00", "名"]),
              st.integers(min_value=1_000, max_value=300_000)),
)
# A value, or several (a multiple-choice field), or none at all.
HOSTILE_VALUE = st.one_of(HOSTILE_TEXT, st.lists(HOSTILE_TEXT, min_size=2, max_size=4), st.just(None))


def _policy_with(value: Any) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
        "Condition": {"StringEquals": {"aws:username": value}}}]})


_VALID_POLICY = _policy_with("alice")
JSON_BOMBS = st.one_of(
    st.sampled_from([
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 5_000 + "1" + "}" * 5_000,
        _VALID_POLICY.replace('"alice"', "1e999"),
        _VALID_POLICY.replace('"alice"', "-1e999"),
        _VALID_POLICY.replace('"alice"', "9" * 4_000),
        _VALID_POLICY.replace('"alice"', "9" * 5_000),
        _VALID_POLICY.replace('"alice"', "NaN"),
        _VALID_POLICY.replace('"alice"', "Infinity"),
        _VALID_POLICY.replace('"alice"', '"\\u0000"'),
        _VALID_POLICY.replace('"alice"', '"\\ud800"'),
        _VALID_POLICY.replace('{"Version": "2012-10-17"', '{"Version": "2012-10-17", "Version": "2008-10-17"'),
        _VALID_POLICY.replace('"Effect": "Allow"', '"Effect": "Allow", "Effect": "Deny"'),
        '{"Version": "2012-10-17", "Id": "' + "A" * 1_000_000 + '"}',
        '"' + "A" * 1_000_000 + '"',
        _VALID_POLICY[:-3],
        "\x00" + _VALID_POLICY,
    ]),
    st.builds(lambda depth: "[" * depth + "]" * depth, st.integers(min_value=11, max_value=50_000)),
    st.builds(_policy_with, HOSTILE_TEXT),
    st.builds(lambda key: _VALID_POLICY.replace('"aws:username"', json.dumps(key)), HOSTILE_TEXT),
)

EXAMPLES = hypothesis_settings(
    max_examples=30, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)

# --- checks made on every answer -------------------------------------------------------------------

_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _flatten(values: Any) -> Iterator[Any]:
    if isinstance(values, list | tuple):
        for value in values:
            yield from _flatten(value)
    elif isinstance(values, dict):
        yield from _flatten(list(values.values()))
    else:
        yield values


@pytest.fixture
def postgres_refusals() -> Iterator[list[str]]:
    """Queries PostgreSQL would refuse (text with NUL; JSON with a \\u0000 escape): SQLite takes
    them, production would answer 500. Collected here so the tests fail on SQLite too."""
    refused: list[str] = []

    def guard(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        for value in _flatten(params):
            if isinstance(value, str) and ("\x00" in value or _JSON_NUL.search(value)):
                refused.append(f"{sql[:80]}… with {value[:60]!r}")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(guard):
        yield refused


def assert_escaped(response: HttpResponse, where: str) -> None:
    if "html" not in response.get("Content-Type", ""):
        return
    html = response.content.decode(errors="replace")
    for payload in MARKUP:
        assert payload not in html, f"{where}: unescaped {payload!r} in the page"


def assert_stays_here(response: HttpResponse, where: str) -> None:
    """A redirect never leaves the site."""
    if 300 <= response.status_code < 400:
        location = urlsplit(response["Location"])
        assert location.netloc in {"", "testserver"} and location.scheme in {"", "http"}, (
            f"{where}: redirected off-site to {response['Location']!r}")


def _no_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


# --- the forms ---------------------------------------------------------------------------------------


class Form:
    """A form of the project, who may send it, and what they would normally send."""

    def __init__(self, name: str, persona: str, baseline: Callable[[World], dict[str, Any]],
                 arguments: dict[str, str] | None = None, refuse_always: bool = False,
                 audited_refusal: bool = False, bombs: tuple[str, ...] = (),
                 accepted: Callable[[HttpResponse], bool] = lambda response: response.status_code == 302) -> None:
        self.name = name
        self.persona = persona
        self.baseline = baseline
        self.arguments = arguments or {}
        # The baseline holds one invalid value of its own, so every example must be refused before
        # AWS is asked (onboarding and hand-back ask AWS once their input is valid).
        self.refuse_always = refuse_always
        # Refusals that are audited by design (a failed sign-in): the audit log may grow.
        self.audited_refusal = audited_refusal
        self.bombs = bombs
        # How the answer to a valid form looks (a redirect to what was made, for most).
        self.accepted = accepted

    def path(self, world: World) -> str:
        kwargs = {arg: (world.people[row[1:]].pk if row.startswith("@") else world.pk(row))
                  for arg, row in self.arguments.items()}
        return reverse(self.name, kwargs=kwargs)


def _all_but_one_confirmation() -> list[str]:
    return [key for key, _ in AWS_REQUIREMENTS][:-1]


def _template_baseline(world: World) -> dict[str, Any]:
    return {
        "name": "Bucket lister", "tier": "custom", "role_name": "SwitchyardBuckets", "description": "Lists buckets",
        "managed_policy_arns": "", "custom_policy": _VALID_POLICY, "require_mfa": "on",
        "max_session_seconds": "7200", "console_color": "efda95", "is_active": "on", "acknowledge_warnings": "",
    }


FORMS = [
    Form("onboarding:client_new", "mgr", lambda w: {
        "client": "", "client_name": "Initech", "client_slug": "initech", "origin": AwsAccount.Origin.INVITED,
        "account_name": "production", "root_email": "", "account_id": "-12345678901",  # a negative account id
        "templates": [w.pk("engineer_template")], "reason": "New client",
    }, refuse_always=True),
    Form("onboarding:account_handback", "mgr", lambda w: {
        "confirmations": _all_but_one_confirmation(), "roles": "delete", "reason": "Contract ended",
    }, {"account_id": "acme_prod"}, refuse_always=True),
    Form("onboarding:client_handback", "mgr", lambda w: {
        "confirmations": _all_but_one_confirmation(), "roles": "keep", "reason": "Contract ended",
    }, {"client_id": "globex"}, refuse_always=True),
    Form("switchroles:grant_new", "mgr", lambda w: {
        "team": w.pk("team_b"), "person": "", "client": w.pk("acme"), "account": "",
        "templates": [w.pk("engineer_template")], "expires_at": "", "reason": "Cover for team A",
    }),
    Form("switchroles:grant_revoke", "mgr", lambda w: {"reason": "Left the project"}, {"grant_id": "grant_a"}),
    Form("switchroles:team_new", "mgr", lambda w: {"name": "Team C", "iam_group_name": "team-c"}),
    Form("switchroles:team_member_add", "mgr", lambda w: {"person": w.people["eng"].pk}, {"team_id": "team_b"}),
    Form("switchroles:person_new", "mgr", lambda w: {
        "username": "newbie", "first_name": "New", "last_name": "Person", "email": "newbie@example.com",
        "iam_username": "newbie", "capabilities": ["Engineer"], "teams": [w.pk("team_a")],
    }, accepted=lambda response: response.status_code == 200 and b"temporary-password" in response.content),
    Form("switchroles:person_edit", "mgr", lambda w: {
        "first_name": "Eli", "last_name": "Engineer", "email": "eli@example.com", "iam_username": "eli",
        "capabilities": ["Engineer"], "teams": [w.pk("team_a")],
    }, {"person_id": "@eng"}),
    Form("roletemplates:new", "mgr", _template_baseline, bombs=("custom_policy",)),
    Form("roletemplates:edit", "mgr", _template_baseline, {"template_id": "engineer_template"},
         bombs=("custom_policy",)),
    Form("audit:review_new", "mgr", lambda w: {
        "title": "Q4", "scope": "client", "client": w.pk("acme"), "tier": "", "reviewers": [w.people["mgr"].pk],
        "deadline": "2099-01-01T10:00",
    }),
    Form("audit:review_decide", "mgr", lambda w: {"decision": "confirm", "note": "Still needed", "return_query": ""},
         {"review_id": "review", "item_id": "item"}),
    Form("account_login", "anon", lambda w: {"login": "eli", "password": "not the password"}, audited_refusal=True),
    Form("account_reauthenticate", "eng", lambda w: {"password": "not the password"}, audited_refusal=True),
    Form("account_change_password", "eng", lambda w: {
        "oldpassword": PASSWORD, "password1": "a brand new passphrase 42", "password2": "a different one 42",
    }),
    Form("account_reset_password", "anon", lambda w: {"email": "nobody@example.com"}),
    Form("api_tokens:new", "eng", lambda w: {"name": "PSA hook", "scope": "read", "lifetime_days": "30"},
         accepted=lambda response: response.status_code == 200 and b'id="api-token"' in response.content),
]


def _submit(world: World, form: Form, field: str, value: Any, aws: AwsForbidden, refusals: list[str]) -> None:
    browser = world.client_for(form.persona)
    browser.raise_request_exception = False
    path = form.path(world)
    data = {**form.baseline(world), field: value}
    if form.refuse_always and field == "account_id" and isinstance(value, str) \
            and re.fullmatch(r"\s*[0-9]{12}\s*", value):
        assume(False)  # a well-formed account id is not hostile
    where = f"{form.name} {field}={value!r:.80}"
    refusals.clear()
    with rolled_back_block():
        before = row_counts()
        response = browser.post(path, _no_none(data))
        changed = changed_tables(before, row_counts())
        assert response.status_code < 500, f"{where}: {response.status_code}"
        assert not aws.calls, f"{where}: AWS was called"
        assert not refusals, f"{where}: PostgreSQL would refuse {refusals}"
        assert_escaped(response, where)
        assert_stays_here(response, where)
        accepted = form.accepted(response) and not form.refuse_always
        audit_only = {"portal_auditevent", "portal_auditchainhead"}
        if not accepted:
            allowed = audit_only if form.audited_refusal else set()
            assert set(changed) <= allowed, f"{where}: refused ({response.status_code}) but changed {changed}"
        elif response.status_code == 302:
            # Accepted as valid: whatever was stored is shown escaped where the form leads.
            shown = browser.get(response["Location"])
            assert shown.status_code < 500, f"{where}: the page after it answered {shown.status_code}"
            assert_escaped(shown, where + " (next page)")
        transaction.set_rollback(True)


@pytest.mark.parametrize("form", FORMS, ids=[form.name for form in FORMS])
def test_hostile_values_in_any_field_of_any_form(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str], form: Form
) -> None:
    fields = sorted(form.baseline(world))

    @EXAMPLES
    @given(data=st.data())
    def send(data: st.DataObject) -> None:
        # Given one field of the form holding something hostile (the rest as a person would fill it)
        field = data.draw(st.sampled_from(fields), label="field")
        value = data.draw(HOSTILE_VALUE, label="value")

        # When the person allowed to send the form sends it; then see _submit's checks
        _submit(world, form, field, value, aws_forbidden, postgres_refusals)

    send()


# The worst of the corpus, sent to every field of every form (hypothesis explores the rest).
WORST_IN_FORMS = ("\x00", "²", "-1", "9" * 30, "1234567890123", "x" * 100_000, "\u202e\x1b", MARKUP[0], MARKUP[2])


@pytest.mark.parametrize("form", FORMS, ids=[form.name for form in FORMS])
def test_the_worst_values_in_every_field_of_every_form(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str], form: Form
) -> None:
    for field in sorted(form.baseline(world)):
        for value in WORST_IN_FORMS:
            _submit(world, form, field, value, aws_forbidden, postgres_refusals)


@pytest.mark.parametrize("form", [f for f in FORMS if f.bombs], ids=[f.name for f in FORMS if f.bombs])
def test_json_bombs_in_the_custom_policy(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str], form: Form
) -> None:
    @EXAMPLES
    @given(bomb=JSON_BOMBS)
    def send(bomb: str) -> None:
        # Given a custom policy that is deep, huge, duplicated, non-finite or otherwise hostile
        # When a manager saves the template with it; then see _submit's checks
        _submit(world, form, "custom_policy", bomb, aws_forbidden, postgres_refusals)

    send()


def test_json_bombs_are_refused_under_the_policy_field(world: World, aws_forbidden: AwsForbidden) -> None:
    manager = world.client_for("mgr")
    bombs = ("[" * 100_000 + "]" * 100_000, _VALID_POLICY.replace('"alice"', "1e999"),
             _VALID_POLICY.replace('"alice"', '"\\u0000"'), '{"Version": "2012-10-17", "Id": "' + "A" * 10**6 + '"}',
             _VALID_POLICY.replace('"alice"', '"名前"'))
    for bomb in bombs:
        # When a manager saves a template with the bomb as its policy
        before = row_counts()
        response = manager.post(reverse("roletemplates:new"), _template_baseline(world) | {"custom_policy": bomb})

        # Then it is refused with a message under the custom policy field, and nothing is saved
        assert response.status_code == 400, bomb[:60]
        html = response.content.decode()
        assert 'id="id_custom_policy_errors"' in html, bomb[:60]
        assert not changed_tables(before, row_counts())


# --- query parameters --------------------------------------------------------------------------------

MATRIX_FILTERS = ["client", "account", "team", "person", "link", "tier", "as_of", "sort", "dir"]
EVENT_FILTERS = ["action", "actor", "target", "target_type", "target_id", "since", "until"]
# Every query parameter a page reads, and who reads the page.
QUERY_PARAMETERS: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "onboarding:client_new": ("mgr", {}, ["client"]),
    "switchroles:grant_new": ("mgr", {}, ["team", "person"]),
    "switchroles:grant_list": ("aud", {}, ["status", "page"]),
    "switchroles:people_list": ("mgr", {}, ["q", "page"]),
    "audit:index": ("aud", {}, [*MATRIX_FILTERS, "page"]),
    "audit:access_csv": ("aud", {}, MATRIX_FILTERS),
    "audit:events": ("aud", {}, [*EVENT_FILTERS, "page"]),
    "audit:events_csv": ("aud", {}, EVENT_FILTERS),
    "audit:link_history": ("aud", {"role_id": "acme_role"}, ["page"]),
    "audit:person_history": ("aud", {"person_id": "@eng"}, ["page"]),
    "audit:review_list": ("aud", {}, ["page"]),
    "audit:review_detail": ("aud", {"review_id": "review"}, ["show", "unused_days", "page"]),
    "billing:markup": ("adm", {"client_id": "acme"}, ["month"]),
    "account_login": ("anon", {}, ["next"]),
    "account_reauthenticate": ("eng", {}, ["next"]),
}
PAIRS = [(name, parameter) for name, (_, _, parameters) in QUERY_PARAMETERS.items() for parameter in parameters]
# The worst of the corpus, sent to every parameter (hypothesis adds the rest).
WORST = ("\x00", "²", "-1", str(2**63), "1234567890123", "9999-12-31", "0001-01-01", "2024-02-30", "' OR '1'='1",
         "x" * 10_000, "//evil.example", MARKUP[0], MARKUP[1])


def _query_path(world: World, name: str) -> str:
    _, arguments, _ = QUERY_PARAMETERS[name]
    kwargs = {arg: (world.people[row[1:]].pk if row.startswith("@") else world.pk(row))
              for arg, row in arguments.items()}
    return reverse(name, kwargs=kwargs)


def _get(world: World, name: str, query: dict[str, Any], aws: AwsForbidden, refusals: list[str]) -> None:
    persona = QUERY_PARAMETERS[name][0]
    browser = world.client_for(persona)
    browser.raise_request_exception = False
    where = f"{name}?{urlencode(query, doseq=True)[:100]}"
    refusals.clear()
    before = row_counts()
    response = browser.get(_query_path(world, name), query)
    body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
    assert response.status_code < 500, f"{where}: {response.status_code}"
    assert not changed_tables(before, row_counts()), where
    assert not aws.calls, where
    assert not refusals, f"{where}: PostgreSQL would refuse {refusals}"
    assert_stays_here(response, where)
    if "html" in response.get("Content-Type", ""):
        for payload in MARKUP:
            assert payload.encode() not in body, f"{where}: unescaped {payload!r}"


def test_the_worst_values_in_every_query_parameter(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str]
) -> None:
    for name, parameter in PAIRS:
        for value in WORST:
            _get(world, name, {parameter: value}, aws_forbidden, postgres_refusals)
        # and every parameter of the page at once, repeated
        _get(world, name, {p: ["-1", "\x00", MARKUP[0]] for p in QUERY_PARAMETERS[name][2]}, aws_forbidden,
             postgres_refusals)


@EXAMPLES
@given(data=st.data())
def test_hostile_values_in_any_query_parameter(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str], data: st.DataObject
) -> None:
    # Given a page and one of its query parameters holding something hostile
    name, parameter = data.draw(st.sampled_from(PAIRS), label="parameter")
    value = data.draw(st.one_of(HOSTILE_TEXT.filter(lambda v: len(v) < 20_000),
                                st.lists(HOSTILE_TEXT.filter(lambda v: len(v) < 1_000), min_size=2, max_size=3)),
                      label="value")

    # When the person who reads the page opens it; then nothing breaks, changes or leaks
    _get(world, name, {parameter: value}, aws_forbidden, postgres_refusals)


# --- ids in paths --------------------------------------------------------------------------------------

UNKNOWN_IDS = ("0", "987654321", "1234567890123", str(2**63), "9" * 30)


def test_unknown_and_out_of_range_ids_answer_404(world: World, aws_forbidden: AwsForbidden) -> None:
    # Given every URL of ours with an id in its path, asked by an admin (who may see every row)
    admin = world.client_for("adm")
    admin.raise_request_exception = False
    failures = []
    for route in all_routes():
        if route.is_admin or not route.kwargs or ":" not in route.name:
            continue
        if route.name.startswith("api:"):
            continue  # a session is no credential there: test_unknown_ids_in_the_api_answer_404 uses a token
        real = path_of(route, world)
        for unknown in (*UNKNOWN_IDS, "-1"):
            # When each id is replaced by one that does not exist (or is negative, or too big)
            path = "/".join(unknown if part.isdigit() else part for part in real.split("/"))
            if path == real:  # no id in it to replace (billing's months: tests/billing/test_pages.py)
                continue
            before = row_counts()
            get, post = admin.get(path), admin.post(path, {"reason": "x", "decision": "revoke"})

            # Then the answer is 404 (405 for the method a URL does not take), and nothing changed
            for method, response in (("GET", get), ("POST", post)):
                if response.status_code not in {404, 405}:
                    failures.append(f"{method} {path}: {response.status_code}")
            if changed_tables(before, row_counts()):
                failures.append(f"{path}: changed {changed_tables(before, row_counts())}")
    assert not aws_forbidden.calls
    assert not failures, "\n".join(failures)


def test_a_request_body_over_the_limit_is_refused_with_400(world: World, aws_forbidden: AwsForbidden) -> None:
    manager = world.client_for("mgr")
    manager.raise_request_exception = False
    before = row_counts()

    response = manager.post(reverse("switchroles:team_new"), {"name": "x" * 3_000_000, "iam_group_name": "big"})
    too_many = manager.post(reverse("switchroles:team_new"), {f"f{n}": "1" for n in range(1_500)})

    assert response.status_code == 400
    assert too_many.status_code == 400
    assert not changed_tables(before, row_counts())


# --- open redirects: "next" after signing in or re-authenticating ----------------------------------

OFF_SITE = ("https://evil.example/", "//evil.example/", "\\\\evil.example", "/\\evil.example", "https:evil.example",
            "javascript:alert(1)", " //evil.example", "/%2F%2Fevil.example", "http://testserver@evil.example/")


@pytest.mark.parametrize("target", OFF_SITE)
def test_signing_in_never_sends_anyone_off_site(world: World, target: str) -> None:
    # Given a person signing in with their password, and a "next" that points off-site
    browser = HttpClient()

    # When the password is right
    response = browser.post(reverse("account_login") + "?" + urlencode({"next": target}),
                            {"login": "eli", "password": PASSWORD, "next": target})

    # Then they are sent on to the authenticator step (or the home page), never off-site
    assert response.status_code == 302
    assert_stays_here(response, f"login next={target!r}")


@pytest.mark.parametrize("target", OFF_SITE)
def test_reauthenticating_never_sends_anyone_off_site(world: World, target: str) -> None:
    browser = world.client_for("mgr")

    response = browser.post(reverse("account_reauthenticate") + "?" + urlencode({"next": target}),
                            {"password": PASSWORD, "next": target})

    assert response.status_code == 302
    assert_stays_here(response, f"reauthenticate next={target!r}")


@pytest.mark.parametrize("query", ["https://evil.example/", "//evil.example", "\r\nLocation: https://evil.example",
                                   "show=pending&next=//evil.example", "#//evil.example", "?x=1/../../admin/"])
def test_a_review_decision_returns_only_to_the_review(world: World, query: str) -> None:
    manager = world.client_for("mgr")
    review_page = reverse("audit:review_detail", kwargs={"review_id": world.pk("review")})

    response = manager.post(reverse("audit:review_decide", kwargs={"review_id": world.pk("review"),
                                                                   "item_id": world.pk("item")}),
                            {"decision": "confirm", "return_query": query})

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert (location.scheme, location.netloc, location.path) == ("", "", review_page)
    assert "\n" not in response["Location"] and "\r" not in response["Location"]


# --- /go/<id>/ goes nowhere but the AWS console, whatever the stored fields hold ----------------------

SWITCH_ROLE = ("https", "signin.aws.amazon.com", "/switchrole")
REDIRECT_TRICKS = st.sampled_from([
    "https://evil.example/", "//evil.example", "@evil.example", "evil.example#", "\r\nLocation: https://evil.example",
    "%0d%0aSet-Cookie:%20x=y", "/../../", "?next=https://evil.example", "javascript:alert(1)", "\\\\evil.example",
    "/switchyard/acme/", "/", "", "a" * 600, "f2b0a9", "#f2b0a9", "red", "111111111111", "1111111111111",
    "-11111111111",
])
STORED = st.one_of(HOSTILE_TEXT.filter(lambda v: len(v) < 5_000), REDIRECT_TRICKS)


def _storable(model: Any, name: str, value: str) -> str:
    """What the database can hold: SQLite takes anything; PostgreSQL neither NUL nor more than the
    column's length."""
    if connection.vendor != "postgresql":
        return value
    return value.replace("\x00", "")[: model._meta.get_field(name).max_length]


@hypothesis_settings(max_examples=50, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@example(fields={"display_name": MARKUP[0]})  # valid for the console: sent, URL-encoded
@example(fields={"display_name": "x\r\nLocation: https://evil.example/"})
@example(fields={"role_path": "/@evil.example/", "color": "red"})
@example(fields={"account_id": "111111111111/@evil.example"})
@given(fields=st.fixed_dictionaries({}, optional={
    "account_id": STORED, "role_path": STORED, "role_name": STORED, "display_name": STORED, "color": STORED,
}))
def test_go_redirects_only_to_the_aws_switch_role_form(world: World, fields: dict[str, str]) -> None:
    # Given engineer A's link, its stored fields corrupted (as a bad migration or a hand edit might)
    role = world.rows["acme_role"]
    engineer = world.client_for("eng")
    engineer.raise_request_exception = False
    with rolled_back_block():
        account_id = fields.pop("account_id", None)
        if account_id is not None:
            AwsAccount.objects.filter(pk=role.account_id).update(account_id=_storable(AwsAccount, "account_id",
                                                                                        account_id))
        AccountRole.objects.filter(pk=role.pk).update(**{k: _storable(AccountRole, k, v) for k, v in fields.items()})

        # When the engineer follows it
        response = engineer.get(reverse("switchroles:go", kwargs={"role_id": role.pk}))
        transaction.set_rollback(True)

    # Then it is refused (4xx, no Location), or it sends the browser to the console's form, nowhere else
    assert response.status_code < 500
    if 400 <= response.status_code < 500:
        assert not response.has_header("Location")
        return
    assert response.status_code == 302
    location = response["Location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.netloc, parts.path) == SWITCH_ROLE, location
    assert not parts.fragment and "\r" not in location and "\n" not in location
    assert set(parse_qs(parts.query)) <= {"account", "roleName", "displayName", "color"}


# --- what is stored is shown escaped, on every page -------------------------------------------------


def test_stored_hostile_text_is_escaped_on_every_page(world: World, aws_unreachable: AwsUnreachable) -> None:
    # Given hostile text in every name, reason and note a page shows
    from onboarding.models import Client, OnboardingStep
    from portal.audit import audit_record
    from portal.models import AccessReview, AccessReviewItem
    from portal.people.models import User
    from switchroles.models import Grant, RoleDriftFinding, RolloutAccount, Team

    a, b, c, d = MARKUP
    Client.objects.filter(pk=world.pk("acme")).update(name=f"Acme {a}")
    AwsAccount.objects.filter(pk=world.pk("acme_prod")).update(name=f"Prod {b}", reason=c)
    AccountRole.objects.filter(pk=world.pk("acme_role")).update(display_name=f"{d}"[:64])
    Team.objects.filter(pk=world.pk("team_a")).update(name=f"Team {a}")
    Grant.objects.update(reason=b, revoke_reason=c)
    User.objects.filter(pk=world.people["eng"].pk).update(first_name=a, last_name=b)
    AccessReview.objects.update(title=c)
    AccessReviewItem.objects.update(note=d)
    OnboardingStep.objects.update(last_error_message=a, last_error_code=b, last_error_raw=c)
    RoleDriftFinding.objects.update(differences=[a, b], error_code=c, repair_error=d)
    RolloutAccount.objects.update(last_error_message=a, last_error_code=b, note=c)
    audit_record(action="test.hostile", actor=world.people["mgr"], target_label=a, details={"why": b, c: d})

    # When every visitor opens every page
    failures = []
    for persona in ("eng", "mgr", "aud", "adm"):
        browser = world.client_for(persona)
        browser.raise_request_exception = False
        for route in all_routes():
            path = path_of(route, world)
            response = browser.get(path)
            if response.status_code >= 500 and route.name != "healthz":  # 503: the broker is not running
                failures.append(f"{path} as {persona}: {response.status_code}")
                continue
            # Then no payload appears unescaped
            if "html" in response.get("Content-Type", "") and not response.streaming:
                html = response.content.decode(errors="replace")
                failures += [f"{path} as {persona}: {p!r}" for p in MARKUP if p in html]
    assert not failures, "\n".join(failures)


# --- exports: what is stored cannot become a spreadsheet formula ------------------------------------

FORMULAS = ("=HYPERLINK(\"https://evil.example\",\"x\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1")


def _csv_cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


def test_exports_never_hand_a_spreadsheet_a_formula(world: World, aws_unreachable: AwsUnreachable) -> None:
    # Given names, reasons and notes that a spreadsheet would run as formulas
    from onboarding.models import Client
    from portal.audit import audit_record
    from portal.models import AccessReviewItem
    from portal.people.models import User
    from switchroles.models import Grant, Team

    Client.objects.filter(pk=world.pk("acme")).update(name=FORMULAS[0])
    AwsAccount.objects.filter(pk=world.pk("acme_prod")).update(name=FORMULAS[1])
    AccountRole.objects.filter(pk=world.pk("acme_role")).update(display_name=FORMULAS[2])
    Team.objects.filter(pk=world.pk("team_a")).update(name=FORMULAS[3])
    Grant.objects.update(reason=FORMULAS[4])
    User.objects.filter(pk=world.people["eng"].pk).update(first_name=FORMULAS[5], username="=eli")
    AccessReviewItem.objects.update(note=FORMULAS[0])
    audit_record(action="test.formula", actor=world.people["mgr"], target_label=FORMULAS[0])
    auditor = world.client_for("aud")

    # When an auditor downloads every export
    texts = []
    for name, kwargs in (("audit:access_csv", {}), ("audit:events_csv", {}),
                         ("audit:review_csv", {"review_id": world.pk("review")})):
        response = auditor.get(reverse(name, kwargs=kwargs))
        assert response.status_code == 200
        texts.append(b"".join(response.streaming_content).decode())  # type: ignore[attr-defined]
    pack = auditor.get(reverse("audit:evidence_pack", kwargs={"client_id": world.pk("acme")}))
    with zipfile.ZipFile(io.BytesIO(b"".join(pack.streaming_content))) as archive:  # type: ignore[attr-defined]
        texts += [archive.read(name).decode() for name in archive.namelist() if name.endswith(".csv")]

    # Then the text is all there, but no cell starts like a formula
    cells = [cell for text in texts for cell in _csv_cells(text)]
    assert any(FORMULAS[0] in cell for cell in cells)
    formulas = [cell for cell in cells if cell[:1] in {"=", "+", "-", "@", "\t", "\r"}]
    assert not formulas, formulas[:10]


# --- the JSON API ---------------------------------------------------------------------------------------
#
# The same sweep for the API, by token: any JSON value in any field of any write, hostile query
# parameters, ids and whole bodies. Whatever arrives: no 500, always JSON, a refusal changes nothing,
# nothing reaches AWS, nothing PostgreSQL would refuse reaches the database.

def _api(world: World, persona: str = "mgr") -> HttpClient:
    client = HttpClient(headers={"Authorization": f"Bearer {world.api_tokens[persona]}"})
    client.raise_request_exception = False
    return client


class ApiWrite:
    def __init__(self, name: str, baseline: Callable[[World], dict[str, Any]], arguments: dict[str, str] | None = None,
                 refuse_always: bool = False) -> None:
        self.name = name
        self.baseline = baseline
        self.arguments = arguments or {}
        self.refuse_always = refuse_always  # the baseline holds one invalid value: AWS must never be asked

    def path(self, world: World) -> str:
        return reverse(self.name, kwargs={arg: world.pk(row) for arg, row in self.arguments.items()})


API_WRITES = [
    ApiWrite("api:onboardings", lambda w: {
        "client_name": "Initech", "client_slug": "initech", "origin": "invite", "account_name": "production",
        "aws_account_id": "-12345678901", "tiers": ["engineer"], "reason": "New client",  # a negative account id
    }, refuse_always=True),
    ApiWrite("api:grants", lambda w: {"team": w.pk("team_b"), "client": w.pk("acme"), "tiers": ["engineer"],
                                      "reason": "Cover for team A"}),
    ApiWrite("api:grant_revoke", lambda w: {"reason": "Left the project"}, {"grant_id": "grant_a"}),
    ApiWrite("api:people", lambda w: {"username": "newbie", "first_name": "New", "last_name": "Person",
                                      "email": "newbie@example.com", "iam_username": "newbie",
                                      "capabilities": ["Engineer"], "teams": [w.pk("team_a")]}),
    # The manager aims the leaver action at themself, so every value passes the form and the service's
    # checks and is refused there.
    ApiWrite("api:person_deactivate", lambda w: {"reason": "Last day 30 November"}, {"person_id": "manager"},
             refuse_always=True),
    # The manager reaches no account, so has nothing to be elevated to: every value is refused.
    ApiWrite("api:elevations", lambda w: {"account": w.pk("acme_prod"), "tier": "administrator",
                                          "duration_minutes": 30, "reason": "INC-2"}, refuse_always=True),
    ApiWrite("api:elevation_decline", lambda w: {"reason": "Not during the freeze"}, {"elevation_id": "elevation"}),
]
HOSTILE_JSON = st.recursive(
    st.one_of(HOSTILE_TEXT, st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=3)),
    max_leaves=8,
)
WORST_JSON = (*WORST_IN_FORMS, 2**63, -1, 1.5, True, None, [], {}, ["\x00"], {"id": 1}, [[["x"]]], [2**63])


def _api_send(world: World, write: ApiWrite, field: str, value: Any, aws: AwsForbidden, refusals: list[str]) -> None:
    where = f"{write.name} {field}={value!r:.80}"
    refusals.clear()
    with rolled_back_block():
        before = row_counts()
        response = _api(world).post(write.path(world), json.dumps({**write.baseline(world), field: value}),
                                    content_type="application/json")
        changed = changed_tables(before, row_counts())
        assert response.status_code < 500, f"{where}: {response.status_code}"
        assert response["Content-Type"] == "application/json", where
        assert not aws.calls, f"{where}: AWS was called"
        assert not refusals, f"{where}: PostgreSQL would refuse {refusals}"
        if response.status_code == 400:
            errors = response.json()["errors"]
            assert errors and all(isinstance(m, list) and m for m in errors.values()), where
        accepted = response.status_code in {200, 201, 202} and not write.refuse_always
        if not accepted:
            assert response.status_code == 400, f"{where}: {response.status_code}"
            assert not changed, f"{where}: refused but changed {changed}"
        transaction.set_rollback(True)


@pytest.mark.parametrize("write", API_WRITES, ids=[write.name for write in API_WRITES])
def test_hostile_json_in_any_field_of_any_api_write(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str], write: ApiWrite
) -> None:
    fields = sorted(write.baseline(world))

    @EXAMPLES
    @given(data=st.data())
    def send(data: st.DataObject) -> None:
        # Given one field holding any JSON value, hostile text included (the rest as a script would send it)
        field = data.draw(st.sampled_from(fields), label="field")
        value = data.draw(HOSTILE_JSON, label="value")
        if write.refuse_always and field == "aws_account_id" and isinstance(value, str | int) \
                and re.fullmatch(r"\s*[0-9]{12}\s*", str(value)):
            assume(False)  # a well-formed account id is not hostile

        # When the manager's read-write token sends it; then see _api_send's checks
        _api_send(world, write, field, value, aws_forbidden, postgres_refusals)

    send()


@pytest.mark.parametrize("write", API_WRITES, ids=[write.name for write in API_WRITES])
def test_the_worst_json_in_every_field_of_every_api_write(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str], write: ApiWrite
) -> None:
    for field in sorted(write.baseline(world)):
        for value in WORST_JSON:
            if write.refuse_always and field == "aws_account_id" and isinstance(value, int) \
                    and re.fullmatch(r"[0-9]{12}", str(value)):
                continue
            _api_send(world, write, field, value, aws_forbidden, postgres_refusals)


WHOLE_BODIES = (
    "", "null", "[]", "[1, 2]", '"text"', "1e999", "NaN", "{", '{"reason": NaN}', '{"reason": Infinity}',
    "[" * 100_000 + "]" * 100_000, '{"a":' * 5_000 + "1" + "}" * 5_000, '{"reason": "\\ud800"}',
    '{"reason": "x"' + ', "reason": "y"' * 3 + "}", "\x00", "\ufeff{}", '{"reason": "' + "x" * 3_000_000 + '"}',
)


ONE_REASON_WRITES = frozenset({"api:grant_revoke", "api:elevation_decline"})  # a duplicated "reason" is valid


@pytest.mark.parametrize("write", API_WRITES, ids=[write.name for write in API_WRITES])
def test_hostile_whole_bodies_are_refused_with_400(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str], write: ApiWrite
) -> None:
    for body in WHOLE_BODIES:
        where = f"{write.name} {body[:40]!r}"
        before = row_counts()
        response = _api(world).post(write.path(world), body, content_type="application/json")
        assert response.status_code == 400 or (response.status_code == 200 and write.name in ONE_REASON_WRITES
                                                and body.startswith('{"reason": "x"')), where
        assert response["Content-Type"] == "application/json", where
        assert response.status_code != 400 or "__all__" in response.json()["errors"] or \
            set(response.json()["errors"]) <= set(write.baseline(world)), where
        if response.status_code == 400:
            assert not changed_tables(before, row_counts()), where
    # and a body that is not JSON at all is 415
    form_post = _api(world).post(API_WRITES[1].path(world), {"reason": "x"})
    assert form_post.status_code == 415 and "detail" in form_post.json()
    assert not aws_forbidden.calls
    assert not postgres_refusals


API_QUERY = [*MATRIX_FILTERS, "page"]


def _api_get(world: World, query: dict[str, Any], aws: AwsForbidden, refusals: list[str]) -> None:
    where = f"api:access?{urlencode(query, doseq=True)[:100]}"
    refusals.clear()
    before = row_counts()
    response = _api(world, "aud").get(reverse("api:access"), query)
    assert response.status_code in {200, 400, 404}, f"{where}: {response.status_code}"
    assert response["Content-Type"] == "application/json", where
    assert not changed_tables(before, row_counts()), where
    assert not aws.calls and not refusals, where


def test_the_worst_values_in_every_api_query_parameter(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str]
) -> None:
    for parameter in API_QUERY:
        for value in WORST:
            _api_get(world, {parameter: value}, aws_forbidden, postgres_refusals)
    _api_get(world, {p: ["-1", "\x00", MARKUP[0]] for p in API_QUERY}, aws_forbidden, postgres_refusals)


@EXAMPLES
@given(data=st.data())
def test_hostile_values_in_any_api_query_parameter(
    world: World, aws_forbidden: AwsForbidden, postgres_refusals: list[str], data: st.DataObject
) -> None:
    parameter = data.draw(st.sampled_from(API_QUERY), label="parameter")
    value = data.draw(st.one_of(HOSTILE_TEXT.filter(lambda v: len(v) < 20_000),
                                st.lists(HOSTILE_TEXT.filter(lambda v: len(v) < 1_000), min_size=2, max_size=3)),
                      label="value")
    _api_get(world, {parameter: value}, aws_forbidden, postgres_refusals)


def test_unknown_ids_in_the_api_answer_404(world: World, aws_forbidden: AwsForbidden) -> None:
    # Given every API route with an id in its path, called with the admin's token (who may see every row)
    admin = _api(world, "adm")
    failures = []
    routes = [route for route in all_routes() if route.name.startswith("api:") and route.kwargs]
    assert routes
    for route in routes:
        real = path_of(route, world)
        for unknown in (*UNKNOWN_IDS, "-1"):
            # When each id is replaced by one that does not exist (or is negative, or too big)
            path = "/".join(unknown if part.isdigit() else part for part in real.split("/"))
            before = row_counts()
            answers = (("GET", admin.get(path)),
                       ("POST", admin.post(path, {"reason": "x"}, content_type="application/json")))

            # Then the answer is 404 (405 for the method a route does not take), in JSON, and nothing changed
            for method, response in answers:
                if response.status_code not in {404, 405} or response["Content-Type"] != "application/json":
                    failures.append(f"{method} {path}: {response.status_code} {response['Content-Type']}")
            if changed_tables(before, row_counts()):
                failures.append(f"{path}: changed {changed_tables(before, row_counts())}")
    assert not aws_forbidden.calls
    assert not failures, "\n".join(failures)


@EXAMPLES
@given(value=st.one_of(HOSTILE_TEXT.filter(lambda v: len(v) < 10_000), st.just("Bearer sy_" + "a" * 12 + "_")))
def test_hostile_authorization_headers_answer_401_in_json(world: World, value: str) -> None:
    client = HttpClient(headers={"Authorization": value})
    client.raise_request_exception = False
    for header in (value, f"Bearer {value}"):
        client = HttpClient(headers={"Authorization": header})
        client.raise_request_exception = False

        response = client.get(reverse("api:me"))

        assert response.status_code == 401, header[:60]
        assert "detail" in response.json()
