"""Separation of duties: auditors hold no switch-role links, nobody confirms a grant they made,
auditors with the Reviewer capability review, and conflicts that already exist are listed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.models import AccessReviewItem
from portal.reviews import access_review_decide, access_review_open
from switchroles import services
from switchroles.enforcement import intended_principals
from switchroles.models import Grant, Team, TeamMembership
from switchroles.selectors import links_for_person

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


def test_adding_an_auditor_to_a_team_is_refused_under_the_field(
    manager: Any, auditor: Any, team: Team, signed_in: SignedIn
) -> None:
    # given a manager on a team's page
    browser = manager_browser(manager, signed_in)

    # when they add an auditor to the team
    response = browser.post(reverse("switchroles:team_member_add", args=[team.pk]), {"person": auditor.pk})

    # then the page says why under the person field, and the auditor is not a member
    assert response.status_code == 200
    assert "auditors hold no switch-role links" in response.context["member_form"].errors["person"][0]
    assert 'id="id_person_errors"' in response.content.decode()
    assert not TeamMembership.objects.filter(person=auditor).exists()


def test_the_team_service_refuses_an_auditor_too(manager: Any, auditor: Any, team: Team) -> None:
    with pytest.raises(ValidationError) as refused:
        services.team_member_add(team=team, person=auditor, added_by=manager)

    assert "person" in refused.value.message_dict
    assert not TeamMembership.objects.filter(person=auditor).exists()


def test_granting_an_auditor_personally_is_refused_under_the_field(
    estate: Estate, manager: Any, auditor: Any, signed_in: SignedIn
) -> None:
    # given a client with roles
    acme = estate.client_with_roles("Acme Retail")

    # when a manager grants the auditor personally
    response = manager_browser(manager, signed_in).post(reverse("switchroles:grant_new"), {
        "person": auditor.pk, "client": acme.pk, "templates": [tier("engineer").pk], "reason": "help out",
    })

    # then the grant form says why under the person field, and no grant exists
    assert response.status_code == 200
    assert "An auditor cannot be granted access" in response.context["form"].errors["person"][0]
    assert not Grant.objects.exists()


def test_giving_a_team_member_the_auditor_capability_is_refused_under_the_field(
    manager: Any, engineer: Any, team: Team, signed_in: SignedIn
) -> None:
    # given an engineer in a team
    services.team_member_add(team=team, person=engineer, added_by=manager)

    # when a manager ticks Auditor for them and keeps the team
    response = manager_browser(manager, signed_in).post(reverse("switchroles:person_edit", args=[engineer.pk]), {
        "email": engineer.email, "iam_username": engineer.iam_username, "capabilities": ["Engineer", "Auditor"],
        "teams": [team.pk],
    })

    # then the capabilities field says why, and they are no auditor
    assert response.status_code == 200
    assert "auditors hold no switch-role links" in response.context["form"].errors["capabilities"][0]
    assert not engineer.groups.filter(name="Auditor").exists()


def test_a_new_auditor_in_a_team_is_refused_under_the_teams_field(
    manager: Any, team: Team, signed_in: SignedIn
) -> None:
    response = manager_browser(manager, signed_in).post(reverse("switchroles:person_new"), {
        "username": "audrey", "email": "audrey@example.com", "iam_username": "audrey",
        "capabilities": ["Auditor"], "teams": [team.pk],
    })

    assert response.status_code == 200
    assert "An auditor cannot be in a team" in response.context["form"].errors["teams"][0]
    assert not TeamMembership.objects.exists()


def test_the_rule_can_be_turned_off(manager: Any, auditor: Any, team: Team, settings: Any) -> None:
    settings.SWITCHYARD_SOD_AUDITORS_HOLD_NO_LINKS = False

    services.team_member_add(team=team, person=auditor, added_by=manager)

    assert TeamMembership.objects.filter(person=auditor, team=team).exists()


def test_an_existing_conflict_gives_no_link_nor_aws_access_and_is_listed(
    estate: Estate, manager: Any, auditor: Any, team: Team, signed_in: SignedIn
) -> None:
    # given an auditor put in a team and granted personally before the rule (rows made directly)
    acme = estate.client_with_roles("Acme Retail")
    TeamMembership.objects.create(team=team, person=auditor, added_at=timezone.now(), added_by=manager)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="ops")
    personal = Grant.objects.create(person=auditor, client=acme, reason="old", granted_by=manager,
                                    granted_at=timezone.now())
    personal.templates.set([tier("administrator")])

    # then the directory gives the auditor nothing, nor does the main-account enforcement
    assert not links_for_person(person=auditor).exists()
    principals = {p.key: p for p in intended_principals()}
    assert auditor.iam_username not in principals[("group", team.pk)].members
    assert not principals[("user", auditor.pk)].role_refs

    # and the conflicts page lists both, for managers and auditors alike
    for reader in (manager, auditor):
        page = signed_in(reader).get(reverse("switchroles:duty_conflicts"))
        assert page.status_code == 200
        text = page.content.decode()
        table_teams = text.split('id="auditors-in-teams"')[1].split("</table>")[0]
        table_grants = text.split('id="auditors-with-grants"')[1].split("</table>")[0]
        assert auditor.username in table_teams and "Platform" in table_teams
        assert f"#{personal.pk}" in table_grants


def test_the_conflicts_page_lists_a_grant_confirmed_by_its_granter(
    estate: Estate, manager: Any, engineer: Any, signed_in: SignedIn, settings: Any
) -> None:
    # given a review decided while the self-review rule was off
    settings.SWITCHYARD_SOD_NO_SELF_REVIEW = False
    acme = estate.client_with_roles("Acme Retail")
    grant = services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("engineer")],
                                  reason="ops")
    review = access_review_open(opened_by=manager, title="Q4", scope="everything", reviewers=[manager],
                                deadline=timezone.now() + timedelta(days=3))
    access_review_decide(item_id=review.items.get().pk, review=review, reviewer=manager, decision="confirm")

    # then it is listed, whatever the setting says now
    settings.SWITCHYARD_SOD_NO_SELF_REVIEW = True
    text = signed_in(manager).get(reverse("switchroles:duty_conflicts")).content.decode()
    assert f"#{grant.pk}" in text.split('id="self-confirmed"')[1].split("</table>")[0]


def test_nobody_confirms_a_grant_they_made_but_another_reviewer_can(
    estate: Estate, manager: Any, make_person: Any, engineer: Any, signed_in: SignedIn
) -> None:
    # given a grant made by a manager who is also a reviewer, with a second reviewer
    other = make_person("rita", "Manager")
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("engineer")],
                          reason="ops")
    review = access_review_open(opened_by=manager, title="Q4", scope="everything", reviewers=[manager, other],
                                deadline=timezone.now() + timedelta(days=3))
    item = review.items.get()

    # when the granter opens the review, then the confirm button is replaced by the reason
    page = signed_in(manager).get(reverse("audit:review_detail", args=[review.pk])).content.decode()
    assert f'id="decision-{item.pk}_errors"' in page
    assert 'value="confirm"' not in page

    # when the granter confirms anyway, then it is refused on the decision, and nothing is decided
    with pytest.raises(ValidationError) as refused:
        access_review_decide(item_id=item.pk, review=review, reviewer=manager, decision="confirm")
    assert "another reviewer must confirm it" in refused.value.message_dict["decision"][0]
    response = signed_in(manager).post(reverse("audit:review_decide", args=[review.pk, item.pk]),
                                       {"decision": "confirm"}, follow=True)
    assert "another reviewer must confirm it" in response.content.decode()
    item.refresh_from_db()
    assert item.is_pending

    # and the other reviewer confirms it
    access_review_decide(item_id=item.pk, review=review, reviewer=other, decision="confirm")
    item.refresh_from_db()
    assert (item.decision, item.decided_by) == (AccessReviewItem.Decision.CONFIRM, other)


def test_an_auditor_with_the_reviewer_capability_reviews(
    estate: Estate, manager: Any, auditor: Any, engineer: Any, signed_in: SignedIn
) -> None:
    # given an auditor given the Reviewer capability (by the data migration's group)
    auditor.groups.add(Group.objects.get(name="Reviewer"))
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("engineer")],
                          reason="ops")

    # when a manager opens a review with them as the reviewer, and they confirm through the page
    review = access_review_open(opened_by=manager, title="Q4", scope="everything", reviewers=[auditor],
                                deadline=timezone.now() + timedelta(days=3))
    item = review.items.get()
    response = signed_in(auditor).post(reverse("audit:review_decide", args=[review.pk, item.pk]),
                                       {"decision": "confirm"})

    # then the item is confirmed by the auditor, and audited
    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.decision, item.decided_by) == (AccessReviewItem.Decision.CONFIRM, auditor)
    assert AuditEvent.objects.filter(action="access_review.item_confirmed", actor=auditor).exists()


def test_a_plain_auditors_review_page_explains_why_it_is_empty(auditor: Any, signed_in: SignedIn) -> None:
    page = signed_in(auditor).get(reverse("audit:review_list")).content.decode()

    assert 'id="why-no-reviews"' in page
    assert "Reviewer" in page and "capability" in page


def test_a_plain_auditor_still_cannot_decide(estate: Estate, manager: Any, auditor: Any, engineer: Any,
                                             signed_in: SignedIn) -> None:
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("engineer")],
                          reason="ops")
    review = access_review_open(opened_by=manager, title="Q4", scope="everything", reviewers=[manager],
                                deadline=timezone.now() + timedelta(days=3))

    response = signed_in(auditor).post(reverse("audit:review_decide", args=[review.pk, review.items.get().pk]),
                                       {"decision": "confirm"})

    assert response.status_code == 403
    assert review.items.get().is_pending
