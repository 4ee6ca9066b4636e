"""Both exports parse with configparser and list exactly the links of the person's directory."""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from switchroles import services
from switchroles.selectors import links_for_person

from .conftest import Estate, tier

SignedIn = Callable[[Any], HttpClient]


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


@pytest.fixture
def engineer_with_links(estate: Estate, manager: Any, make_person: Any) -> Any:
    """Engineer with 6 links: Acme (2 accounts x Engineer + On-call) and one Globex account (the same two),
    plus a role he may not use in each client."""
    person = make_person("eli", "Engineer", iam_username="eli.engineer")
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    globex = estate.client_with_roles("Globex Logistics", accounts=2)
    services.grant_create(granted_by=manager, person=person, client=acme, templates=[tier("engineer"),
                          tier("oncall")], reason="x")
    services.grant_create(granted_by=manager, person=person, account=globex.accounts.order_by("pk")[0],
                          templates=[tier("oncall"), tier("engineer")], reason="y")
    return person


def directory_links(browser: HttpClient) -> set[str]:
    """(account id, roleName) of every link on the directory page, read from its switch-role URLs."""
    page = browser.get(reverse("switchroles:directory")).content.decode()
    urls = set(re.findall(r'data-copy="(https://signin\.aws\.amazon\.com/switchrole\?[^"]+)"', page))
    found = set()
    for url in urls:
        query = dict(part.split("=", 1) for part in url.split("?", 1)[1].replace("&amp;", "&").split("&"))
        found.add(f"{query['account']}:{query['roleName']}")
    return found


def parse(text: str) -> configparser.ConfigParser:
    parsed = configparser.ConfigParser(interpolation=None)
    parsed.read_string(text)
    return parsed


def test_the_extend_switch_roles_export_lists_exactly_the_directory(
    engineer_with_links: Any, signed_in: SignedIn
) -> None:
    # given the engineer's directory
    browser = signed_in(engineer_with_links)
    expected = directory_links(browser)
    assert len(expected) == links_for_person(person=engineer_with_links).count() == 6
    # when he downloads the browser extension's configuration
    response = browser.get(reverse("switchroles:export_extend_switch_roles"))
    # then it is a text download that parses, one profile per link of the directory
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Content-Type"].startswith("text/plain")
    parsed = parse(response.content.decode())
    sections = [parsed[name] for name in parsed.sections()]
    assert all(name.startswith("profile ") for name in parsed.sections())
    assert {f"{s['aws_account_id']}:{s['role_name']}" for s in sections} == expected
    assert len(sections) == len(expected)
    assert {s["color"] for s in sections} <= {"83d4e8", "b7ca9d"}


def test_the_aws_cli_export_lists_exactly_the_directory_with_mfa_and_session_name(
    engineer_with_links: Any, signed_in: SignedIn, settings: Any
) -> None:
    # given the engineer's directory
    browser = signed_in(engineer_with_links)
    expected = directory_links(browser)
    # when he downloads ~/.aws/config profiles
    parsed = parse(browser.get(reverse("switchroles:export_aws_config")).content.decode())
    sections = [parsed[name] for name in parsed.sections()]
    # then each link is one profile assuming its role from the main account with his MFA device
    arns = {s["role_arn"] for s in sections}
    assert {f"{arn.split(':')[4]}:{arn.split(':role/', 1)[1]}" for arn in arns} == expected
    assert len(sections) == len(expected)
    for section in sections:
        assert section["source_profile"] == "switchyard-main"
        assert section["mfa_serial"] == f"arn:aws:iam::{settings.SWITCHYARD_MAIN_ACCOUNT_ID}:mfa/eli.engineer"
        assert section["role_session_name"] == "eli.engineer"
    assert len({name for name in parsed.sections()}) == len(sections)


def test_the_cli_export_needs_an_iam_user_name(estate: Estate, manager: Any, make_person: Any,
                                              signed_in: SignedIn) -> None:
    # given a person without an IAM user name
    person = make_person("nina", "Engineer")
    person.iam_username = ""
    person.save(update_fields=["iam_username"])
    # when she asks for CLI profiles, then she is told what is missing instead
    response = signed_in(person).get(reverse("switchroles:export_aws_config"))
    assert response.status_code == 409
    assert b"IAM user name" in response.content


def test_a_person_without_links_exports_no_profiles(make_person: Any, signed_in: SignedIn) -> None:
    browser = signed_in(make_person("nina", "Engineer"))
    for name in ("switchroles:export_extend_switch_roles", "switchroles:export_aws_config"):
        assert parse(browser.get(reverse(name)).content.decode()).sections() == []
