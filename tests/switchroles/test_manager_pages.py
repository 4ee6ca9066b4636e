"""Managers grant, revoke, build teams and add people (re-authenticating first); auditors read;
engineers see none of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.people.models import User
from switchroles import services
from switchroles.models import DriftCheck, DriftFinding, Grant, Team

from .conftest import Estate, reauthenticated, tier

SignedIn = Callable[[Any], HttpClient]


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


@pytest.fixture
def team(manager: Any) -> Team:
    return services.team_create(name="Platform", iam_group_name="platform", created_by=manager)


def manager_browser(manager: Any, signed_in: SignedIn) -> HttpClient:
    return reauthenticated(signed_in(manager), manager)


def test_granting_asks_the_manager_to_reauthenticate_first(manager: Any, signed_in: SignedIn) -> None:
    # given a manager whose sign-in is not fresh
    browser = signed_in(manager)
    # when they open the grant form or post it, then they are sent to re-authenticate and nothing is saved
    for response in (browser.get(reverse("switchroles:grant_new")), browser.post(reverse("switchroles:grant_new"))):
        assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))
    assert not Grant.objects.exists()


def test_a_manager_grants_a_team_access_through_the_form(
    estate: Estate, manager: Any, team: Team, signed_in: SignedIn
) -> None:
    # given a client
    acme = estate.client_with_roles("Acme Retail")
    # when a freshly re-authenticated manager submits the form
    response = manager_browser(manager, signed_in).post(reverse("switchroles:grant_new"), {
        "team": team.pk, "client": acme.pk, "templates": [tier("engineer").pk, tier("oncall").pk],
        "reason": "runs Acme", "expires_at": (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M"),
    }, REMOTE_ADDR="198.51.100.4")
    # then the grant exists, is audited with the manager's address, and they see it
    grant = Grant.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("switchroles:grant_detail",
                                                                            args=[grant.pk])
    assert (grant.team, grant.client, grant.granted_by) == (team, acme, manager)
    assert grant.expires_at is not None
    assert AuditEvent.objects.get(action="grant.created").client_ip == "198.51.100.4"


def test_an_invalid_grant_form_shows_each_problem_next_to_its_field(
    estate: Estate, manager: Any, team: Team, make_person: Any, signed_in: SignedIn
) -> None:
    # given a client and an account
    acme = estate.client_with_roles("Acme Retail")
    # when the form names both a team and a person, both a client and an account, no tier, no
    # reason and a past expiry
    response = manager_browser(manager, signed_in).post(reverse("switchroles:grant_new"), {
        "team": team.pk, "person": make_person("sam", "Engineer").pk, "client": acme.pk,
        "account": acme.accounts.get().pk, "reason": "",
        "expires_at": (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
    })
    # then the form comes back with every error at its field and nothing is saved
    assert response.status_code == 200
    form = response.context["form"]
    assert set(form.errors) == {"team", "client", "templates", "reason", "expires_at"}
    assert b'id="id_expires_at_errors"' in response.content
    assert not Grant.objects.exists()


def test_a_manager_revokes_a_grant_with_a_reason(
    estate: Estate, manager: Any, team: Team, signed_in: SignedIn
) -> None:
    # given a grant
    grant = services.grant_create(granted_by=manager, team=team, client=estate.client_with_roles("Acme"),
                                  templates=[tier("engineer")], reason="x")
    browser = manager_browser(manager, signed_in)
    # when the manager revokes it without a reason, then it is refused at the field
    refused = browser.post(reverse("switchroles:grant_revoke", args=[grant.pk]), {"reason": ""})
    assert refused.status_code == 200 and "reason" in refused.context["form"].errors
    # when with a reason, then it is revoked by them, and revoking again changes nothing
    browser.post(reverse("switchroles:grant_revoke", args=[grant.pk]), {"reason": "client left"})
    browser.post(reverse("switchroles:grant_revoke", args=[grant.pk]), {"reason": "again"})
    grant.refresh_from_db()
    assert (grant.revoked_by, grant.revoke_reason) == (manager, "client left")
    assert AuditEvent.objects.filter(action="grant.revoked").count() == 1


@pytest.mark.parametrize("who", ["auditor", "engineer"])
def test_auditors_and_engineers_cannot_grant_revoke_or_manage_teams(
    estate: Estate, manager: Any, team: Team, signed_in: SignedIn, who: str, request: pytest.FixtureRequest
) -> None:
    # given a grant, and an auditor or engineer freshly re-authenticated
    person = request.getfixturevalue(who)
    grant = services.grant_create(granted_by=manager, team=team, client=estate.client_with_roles("Acme"),
                                  templates=[tier("engineer")], reason="x")
    browser = reauthenticated(signed_in(person), person)
    # when they try every write, then each is forbidden and nothing changes
    writes = [
        (reverse("switchroles:grant_new"), {"team": team.pk}),
        (reverse("switchroles:grant_revoke", args=[grant.pk]), {"reason": "x"}),
        (reverse("switchroles:team_new"), {"name": "X", "iam_group_name": "x"}),
        (reverse("switchroles:team_member_add", args=[team.pk]), {"person": person.pk}),
        (reverse("switchroles:team_member_remove", args=[team.pk, person.pk]), {}),
        (reverse("switchroles:enforcement_check"), {}),
        (reverse("switchroles:person_new"), {"username": "x"}),
    ]
    for url, data in writes:
        assert browser.post(url, data).status_code == 403, url
    grant.refresh_from_db()
    assert grant.revoked_at is None and Team.objects.count() == 1 and not team.memberships.exists()


def test_auditors_read_grants_teams_and_enforcement(
    estate: Estate, manager: Any, team: Team, auditor: Any, signed_in: SignedIn
) -> None:
    grant = services.grant_create(granted_by=manager, team=team, client=estate.client_with_roles("Acme"),
                                  templates=[tier("engineer")], reason="runs Acme")
    browser = signed_in(auditor)
    for url in (reverse("switchroles:grant_list"), reverse("switchroles:grant_detail", args=[grant.pk]),
                reverse("switchroles:team_list"), reverse("switchroles:team_detail", args=[team.pk]),
                reverse("switchroles:enforcement")):
        response = browser.get(url)
        assert response.status_code == 200, url
        assert b"/revoke/" not in response.content and b"Check AWS now" not in response.content
        assert b"/members/add/" not in response.content and b"Grant access" not in response.content


def test_engineers_do_not_see_grants(engineer: Any, signed_in: SignedIn) -> None:
    assert signed_in(engineer).get(reverse("switchroles:grant_list")).status_code == 403


def test_the_grant_list_filters_by_status(estate: Estate, manager: Any, team: Team, signed_in: SignedIn) -> None:
    # given one grant in force and one revoked
    acme, globex = estate.client_with_roles("Acme"), estate.client_with_roles("Globex")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    revoked = services.grant_create(granted_by=manager, team=team, client=globex, templates=[tier("engineer")],
                                    reason="y")
    services.grant_revoke(grant=revoked, revoked_by=manager, reason="z")
    browser = signed_in(manager)
    # then each tab shows its own
    in_force = browser.get(reverse("switchroles:grant_list")).content.decode()
    revoked_page = browser.get(reverse("switchroles:grant_list") + "?status=revoked").content.decode()
    assert "Acme" in in_force and "Globex" not in in_force
    assert "Globex" in revoked_page and "Acme" not in revoked_page


def test_a_manager_adds_and_removes_team_members(
    manager: Any, engineer: Any, team: Team, signed_in: SignedIn
) -> None:
    browser = manager_browser(manager, signed_in)
    browser.post(reverse("switchroles:team_member_add", args=[team.pk]), {"person": engineer.pk})
    assert team.memberships.filter(person=engineer, removed_at__isnull=True).exists()
    browser.post(reverse("switchroles:team_member_remove", args=[team.pk, engineer.pk]))
    assert not team.memberships.filter(removed_at__isnull=True).exists()
    assert team.memberships.filter(person=engineer, removed_at__isnull=False).exists()


def test_a_manager_creates_a_team(manager: Any, signed_in: SignedIn) -> None:
    browser = manager_browser(manager, signed_in)
    refused = browser.post(reverse("switchroles:team_new"), {"name": "SRE", "iam_group_name": "has space"})
    assert refused.status_code == 200 and "iam_group_name" in refused.context["form"].errors
    browser.post(reverse("switchroles:team_new"), {"name": "SRE", "iam_group_name": "sre"})
    assert Team.objects.filter(name="SRE", iam_group_name="sre").exists()
    assert AuditEvent.objects.filter(action="team.created").exists()


def test_a_manager_adds_a_person_and_sees_the_temporary_password_once(
    manager: Any, team: Team, signed_in: SignedIn
) -> None:
    # when a manager adds a person
    browser = manager_browser(manager, signed_in)
    response = browser.post(reverse("switchroles:person_new"), {
        "username": "nina", "first_name": "Nina", "last_name": "Ng", "email": "nina@example.com",
        "iam_username": "nina.ng", "capabilities": ["Engineer"], "teams": [team.pk],
    })
    # then the response shows a password that signs her in, not to be cached
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    password = response.context["password"]
    nina = User.objects.get(username="nina")
    assert nina.check_password(password) and password in response.content.decode()
    assert nina.is_engineer and team.memberships.filter(person=nina).exists()
    # and it is shown nowhere else
    assert password not in browser.get(reverse("switchroles:people_list")).content.decode()
    assert not AuditEvent.objects.filter(details__icontains=password).exists()


def test_a_new_person_must_enrol_mfa_at_first_sign_in(manager: Any) -> None:
    # given a person added by a manager
    person, password = services.person_create(
        created_by=manager, username="nina", first_name="", last_name="", email="nina@example.com",
        iam_username="nina", capabilities=["Engineer"], teams=[],
    )
    # when she signs in with the temporary password
    browser = HttpClient()
    browser.post(reverse("account_login"), {"login": "nina", "password": password})
    # then every page sends her to enrol an authenticator
    response = browser.get(reverse("switchroles:directory"))
    assert response.status_code == 302 and response["Location"] == reverse("mfa_activate_totp")


def test_the_person_form_refuses_duplicates_next_to_the_field(
    manager: Any, engineer: Any, signed_in: SignedIn
) -> None:
    response = manager_browser(manager, signed_in).post(reverse("switchroles:person_new"), {
        "username": engineer.username, "email": engineer.email, "iam_username": engineer.iam_username,
    })
    assert set(response.context["form"].errors) >= {"username", "email", "iam_username"}
    assert User.objects.filter(username=engineer.username).count() == 1


def test_managers_cannot_edit_superusers(manager: Any, make_person: Any, signed_in: SignedIn) -> None:
    root = make_person("root", is_superuser=True)
    assert manager_browser(manager, signed_in).get(reverse("switchroles:person_edit", args=[root.pk])).status_code \
        == 404


def test_the_enforcement_page_shows_the_difference(
    manager: Any, team: Team, signed_in: SignedIn
) -> None:
    # given a drift check that found an extra role ARN on the team's group
    check = DriftCheck.objects.create(checked_at=timezone.now(), principals_checked=1, drifted=1)
    DriftFinding.objects.create(check_run=check, principal_type="group", principal_name="platform", team=team,
                                missing_arns=["arn:aws:iam::111111111111:role/switchyard/acme/SwitchyardEngineer"],
                                extra_arns=["arn:aws:iam::111111111111:role/switchyard/acme/SwitchyardAdministrator"],
                                extra_members=["intruder"])
    # when a manager opens the enforcement page, then both sides of the difference are named
    page = signed_in(manager).get(reverse("switchroles:enforcement")).content.decode()
    assert "Allowed by AWS, not granted in the portal (1)" in page
    assert "role/switchyard/acme/SwitchyardAdministrator" in page
    assert "Granted in the portal, not allowed by AWS (1)" in page
    assert "intruder" in page


@pytest.mark.parametrize("name", ["josé", "ｆｕｌｌwidth", "Øystein", "naïve.ops"])
def test_every_form_that_takes_an_iam_name_refuses_one_aws_would_refuse(
    name: str, manager: Any, engineer: Any, signed_in: SignedIn
) -> None:
    # given a manager on the people and team forms
    browser = manager_browser(manager, signed_in)

    # when they type an IAM user or group name with a letter IAM does not accept
    new_person = browser.post(reverse("switchroles:person_new"), {
        "username": "jose", "email": "jose@example.com", "iam_username": name, "capabilities": ["Engineer"],
    })
    edited = browser.post(reverse("switchroles:person_edit", args=[engineer.pk]), {
        "email": engineer.email, "iam_username": name, "capabilities": ["Engineer"],
    })
    new_team = browser.post(reverse("switchroles:team_new"), {"name": "Ops", "iam_group_name": name})

    # then each form says so under the field, and nothing is saved
    for response, field in ((new_person, "iam_username"), (edited, "iam_username"), (new_team, "iam_group_name")):
        assert response.status_code == 200
        assert "no accents" in response.context["form"].errors[field][0]
        assert "no accents" in response.content.decode()
    assert not User.objects.filter(username="jose").exists()
    engineer.refresh_from_db()
    assert engineer.iam_username != name
    assert not Team.objects.filter(name="Ops").exists()
