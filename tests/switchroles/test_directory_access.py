"""Access: a person sees, clicks and exports only their own links, whatever ids they guess;
revoked, expired and left-team access vanishes at once."""

from __future__ import annotations

import configparser
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from switchroles import services
from switchroles.models import AccountRole, Favourite, LinkUse
from switchroles.selectors import links_for_person

from .conftest import Estate, tier

SignedIn = Callable[[Any], HttpClient]


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests are about the portal; enforcement in AWS is tested against moto elsewhere.
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


@pytest.fixture
def two_people(estate: Estate, manager: Any, make_person: Any) -> dict[str, Any]:
    """Eli (team Platform: Acme Engineer) and Sam (personal: Globex On-call), and Initech nobody's."""
    eli = make_person("eli", "Engineer")
    sam = make_person("sam", "Engineer")
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    globex = estate.client_with_roles("Globex Logistics")
    estate.client_with_roles("Initech")
    team = services.team_create(name="Platform", iam_group_name="platform", created_by=manager)
    services.team_member_add(team=team, person=eli, added_by=manager)
    team_grant = services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")],
                                       reason="runs Acme")
    personal = services.grant_create(granted_by=manager, person=sam, client=globex, templates=[tier("oncall")],
                                     reason="on call for Globex")
    return {"eli": eli, "sam": sam, "team": team, "team_grant": team_grant, "personal": personal,
            "acme": acme, "globex": globex}


def without_csrf(content: bytes) -> bytes:
    content = re.sub(rb'"X-CSRFToken": "[^"]*"', b"", content)
    return re.sub(rb'name="csrfmiddlewaretoken" value="[^"]*"', b"", content)


def role_ids(person: Any) -> set[int]:
    return set(links_for_person(person=person).values_list("pk", flat=True))


def test_each_person_sees_exactly_their_links(two_people: dict[str, Any], signed_in: SignedIn) -> None:
    # given Eli's and Sam's grants
    eli, sam = two_people["eli"], two_people["sam"]
    # when Eli opens the directory
    page = signed_in(eli).get(reverse("switchroles:directory")).content.decode()
    # then it links to his two Acme Engineer roles and nothing of Sam's or Initech's
    for role in AccountRole.objects.all():
        go = reverse("switchroles:go", args=[role.pk])
        assert (go in page) == (role.pk in role_ids(eli)), role
    assert len(role_ids(eli)) == 2 and len(role_ids(sam)) == 1
    assert "Globex" not in page and "Initech" not in page


def test_every_link_id_not_granted_answers_404_whether_or_not_it_exists(
    two_people: dict[str, Any], signed_in: SignedIn
) -> None:
    # given Eli, and every role id in the database plus ids that do not exist
    eli = two_people["eli"]
    browser = signed_in(eli)
    mine = role_ids(eli)
    guesses = set(AccountRole.objects.values_list("pk", flat=True)) - mine
    guesses |= {max(guesses | mine) + 1, 999_999, 0}
    for role_id in sorted(guesses):
        # when he guesses the id on each per-link URL, then each answers 404 and records nothing
        assert browser.get(reverse("switchroles:go", args=[role_id])).status_code == 404
        assert browser.get(reverse("switchroles:why", args=[role_id])).status_code == 404
        assert browser.post(reverse("switchroles:favourite", args=[role_id])).status_code == 404
    assert not LinkUse.objects.exists()
    assert not Favourite.objects.exists()


def test_the_refused_link_page_does_not_say_whether_the_role_exists(
    two_people: dict[str, Any], signed_in: SignedIn
) -> None:
    # given a role Eli may not use and an id that does not exist
    eli = two_people["eli"]
    other = AccountRole.objects.exclude(pk__in=role_ids(eli)).first()
    assert other is not None
    browser = signed_in(eli)
    # when he opens both, then the answers are the same page
    existing = browser.get(reverse("switchroles:go", args=[other.pk]))
    missing = browser.get(reverse("switchroles:go", args=[999_999]))
    assert existing.status_code == missing.status_code == 404
    assert without_csrf(existing.content) == without_csrf(missing.content)
    assert other.display_name.encode() not in existing.content


def test_exports_hold_only_the_persons_own_links(two_people: dict[str, Any], signed_in: SignedIn, aws: Any) -> None:
    # given Eli and Sam
    for person in (two_people["eli"], two_people["sam"]):
        browser = signed_in(person)
        # when each downloads both exports
        for name in ("switchroles:export_extend_switch_roles", "switchroles:export_aws_config"):
            text = browser.get(reverse(name)).content.decode()
            parsed = configparser.ConfigParser(interpolation=None)
            parsed.read_string(text)
            # then the account ids in them are exactly those of their own links
            accounts = {
                section.get("aws_account_id") or section["role_arn"].split(":")[4]
                for name_, section in parsed.items() if "role_name" in section or "role_arn" in section
            }
            expected = {role.account.account_id for role in links_for_person(person=person)}
            assert accounts == expected


def test_a_revoked_grant_vanishes_at_once(two_people: dict[str, Any], manager: Any, signed_in: SignedIn) -> None:
    # given Eli can use an Acme link
    eli = two_people["eli"]
    role_id = next(iter(role_ids(eli)))
    browser = signed_in(eli)
    assert browser.get(reverse("switchroles:go", args=[role_id])).status_code == 302
    # when the team's grant is revoked
    services.grant_revoke(grant=two_people["team_grant"], revoked_by=manager, reason="contract ended")
    # then the very next request refuses it and the directory no longer lists it
    assert browser.get(reverse("switchroles:go", args=[role_id])).status_code == 404
    directory = browser.get(reverse("switchroles:directory")).content.decode()
    assert reverse("switchroles:go", args=[role_id]) not in directory
    assert role_ids(eli) == set()


def test_an_expired_grant_vanishes_at_once(
    estate: Estate, manager: Any, engineer: Any, signed_in: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a personal grant that expires in an hour
    acme = estate.client_with_roles("Acme")
    expires = timezone.now() + timedelta(hours=1)
    services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("engineer")],
                          reason="incident", expires_at=expires)
    role_id = next(iter(role_ids(engineer)))
    # then it counts until its expiry, and not from that moment on
    assert links_for_person(person=engineer, at=expires - timedelta(seconds=1)).count() == 1
    assert links_for_person(person=engineer, at=expires).count() == 0
    # when the clock passes the expiry, the directory and the click-through refuse it
    later = expires + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    browser = signed_in(engineer)
    assert browser.get(reverse("switchroles:go", args=[role_id])).status_code == 404
    assert b"You have no switch-role links yet" in browser.get(reverse("switchroles:directory")).content


def test_leaving_the_team_removes_the_teams_links_at_once(
    two_people: dict[str, Any], manager: Any, signed_in: SignedIn
) -> None:
    # given Eli uses the team's links
    eli = two_people["eli"]
    role_id = next(iter(role_ids(eli)))
    # when he leaves the team
    services.team_member_remove(team=two_people["team"], person=eli, removed_by=manager)
    # then the links are refused at once
    assert signed_in(eli).get(reverse("switchroles:go", args=[role_id])).status_code == 404


def test_roles_that_are_not_active_are_not_links(
    two_people: dict[str, Any], signed_in: SignedIn
) -> None:
    # given one of Eli's roles is handed back
    eli = two_people["eli"]
    role = AccountRole.objects.get(pk=min(role_ids(eli)))
    role.state = AccountRole.State.REMOVED
    role.save(update_fields=["state"])
    # then it is neither listed nor usable
    assert role.pk not in role_ids(eli)
    assert signed_in(eli).get(reverse("switchroles:go", args=[role.pk])).status_code == 404


def test_signed_out_people_are_sent_to_sign_in(two_people: dict[str, Any]) -> None:
    # given no session, when any directory URL is opened, then it asks to sign in and records nothing
    role_id = AccountRole.objects.first().pk  # type: ignore[union-attr]
    for url in (reverse("switchroles:directory"), reverse("switchroles:go", args=[role_id]),
                reverse("switchroles:export_aws_config"), reverse("switchroles:why", args=[role_id])):
        response = HttpClient().get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not LinkUse.objects.exists()
