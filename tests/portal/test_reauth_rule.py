"""One re-authentication rule (portal.web.reauth): nobody is asked again within five minutes of a full
sign-in; after that an action asks for the password; a dangerous one needs password and code."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from portal.people.models import User
from switchroles import services
from switchroles.models import TeamMembership

pytestmark = pytest.mark.django_db

SignedIn = Callable[[Any], HttpClient]


def with_records(client: HttpClient, user: User, *records: tuple[str, float, bool]) -> HttpClient:
    """The session as allauth leaves it: (method, seconds ago, re-authentication?) per record."""
    session = client.session
    session["account_authentication_methods_user"] = str(user.pk)
    session["account_authentication_methods"] = [
        {"method": method, "at": time.time() - ago, "reauthenticated": again, "username": user.username}
        for method, ago, again in records
    ]
    session.save()
    return client


@pytest.fixture
def team(manager: User, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)
    return services.team_create(name="Platform", iam_group_name="platform", created_by=manager)


def test_right_after_a_full_sign_in_nothing_is_asked_again(manager: User, engineer: User, team: Any,
                                                           signed_in: SignedIn) -> None:
    # given a manager who signed in a minute ago with password and code
    browser = with_records(signed_in(manager), manager, ("password", 60, False), ("mfa", 55, False))
    # when they open a form and add a team member (a dangerous action), then neither asks again
    assert browser.get(reverse("switchroles:team_new")).status_code == 200
    response = browser.post(reverse("switchroles:team_member_add", args=[team.pk]), {"person": engineer.pk})
    assert response.status_code == 302 and response["Location"] == reverse("switchroles:team_detail", args=[team.pk])
    assert TeamMembership.objects.filter(team=team, person=engineer).exists()


def test_later_an_action_asks_for_the_password(manager: User, signed_in: SignedIn) -> None:
    # given a sign-in ten minutes ago
    browser = with_records(signed_in(manager), manager, ("password", 600, False), ("mfa", 595, False))
    # when they open the new-team form, then they are asked for their password first
    response = browser.get(reverse("switchroles:team_new"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_reauthenticate"))


def test_a_dangerous_action_needs_the_authenticator_code_as_well(manager: User, engineer: User, team: Any,
                                                                signed_in: SignedIn) -> None:
    # given a manager who re-entered only their password a moment ago (signed in long before)
    browser = with_records(signed_in(manager), manager, ("password", 3600, False), ("mfa", 3590, False),
                           ("password", 10, True))
    # when they add a team member, then they are asked for a code from their authenticator, and nothing changed
    response = browser.post(reverse("switchroles:team_member_add", args=[team.pk]), {"person": engineer.pk})
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_reauthenticate"))
    assert not TeamMembership.objects.filter(team=team, person=engineer).exists()
    # while an ordinary action goes through on the password alone
    assert browser.get(reverse("switchroles:team_new")).status_code == 200
