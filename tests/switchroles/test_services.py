"""Grants and team memberships: validation, idempotency, audit events, and the enforcement schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from portal.audit import audit_verify_chain
from portal.audit.models import AuditEvent
from switchroles import services
from switchroles.models import Grant, Team, TeamMembership
from switchroles.selectors import links_for_person

from .conftest import Estate, tier


@pytest.fixture
def team(manager: Any) -> Team:
    return services.team_create(name="Platform", iam_group_name="platform", created_by=manager)


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reasons: list[str] = []
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: reasons.append(reason))
    return reasons


def test_a_grant_is_saved_with_its_tiers_audited_and_enforcement_scheduled(
    estate: Estate, manager: Any, team: Team, scheduled: list[str]
) -> None:
    # given a client with roles
    acme = estate.client_with_roles("Acme")
    # when a manager grants the team two tiers
    grant = services.grant_create(granted_by=manager, team=team, client=acme,
                                  templates=[tier("engineer"), tier("oncall")], reason="runs Acme")
    # then the grant holds both tiers, one event records it, and enforcement is scheduled
    assert {t.tier for t in grant.templates.all()} == {"engineer", "oncall"}
    event = AuditEvent.objects.get(action="grant.created")
    assert event.actor == manager and event.target_id == str(grant.pk)
    assert event.details["tiers"] == ["Engineer", "On-call support"]
    assert scheduled == [f"grant {grant.pk} created"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"team": None, "person": None}, "team"),
        ({"client": None, "account": None}, "client"),
        ({"templates": []}, "templates"),
        ({"reason": "  "}, "reason"),
        ({"expires_at": "past"}, "expires_at"),
    ],
)
def test_an_invalid_grant_saves_nothing(
    estate: Estate, manager: Any, team: Team, scheduled: list[str], kwargs: dict[str, Any], field: str
) -> None:
    # given a valid grant's arguments with one of them wrong
    acme = estate.client_with_roles("Acme")
    arguments: dict[str, Any] = {"granted_by": manager, "team": team, "client": acme,
                                 "templates": [tier("engineer")], "reason": "x"}
    arguments.update(kwargs)
    if arguments.get("expires_at") == "past":
        arguments["expires_at"] = timezone.now() - timedelta(minutes=1)
    # when it is created, then it is refused on that field and nothing is saved or scheduled
    with pytest.raises(ValidationError) as refused:
        services.grant_create(**arguments)
    assert field in refused.value.message_dict
    assert not Grant.objects.exists()
    assert not AuditEvent.objects.filter(action="grant.created").exists()
    assert scheduled == []


def test_revoking_twice_changes_nothing_the_second_time(
    estate: Estate, manager: Any, team: Team, scheduled: list[str]
) -> None:
    # given a grant
    acme = estate.client_with_roles("Acme")
    grant = services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")],
                                  reason="x")
    # when it is revoked twice
    first = services.grant_revoke(grant=grant, revoked_by=manager, reason="left the client")
    second = services.grant_revoke(grant=grant, revoked_by=manager, reason="again")
    # then the first revocation stands, with one event
    assert first.revoked_at is not None and second.revoked_at == first.revoked_at
    assert second.revoke_reason == "left the client"
    assert AuditEvent.objects.filter(action="grant.revoked").count() == 1
    assert scheduled == [f"grant {grant.pk} created", f"grant {grant.pk} revoked"]
    assert audit_verify_chain().intact


def test_grants_are_never_deleted(estate: Estate, manager: Any, team: Team) -> None:
    # given a grant
    acme = estate.client_with_roles("Acme")
    grant = services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")],
                                  reason="x")
    # when it is revoked, then the row is still there
    services.grant_revoke(grant=grant, revoked_by=manager, reason="done")
    assert Grant.objects.filter(pk=grant.pk, revoked_at__isnull=False).exists()


def test_team_members_join_and_leave_with_their_history_kept(
    estate: Estate, manager: Any, engineer: Any, team: Team, scheduled: list[str]
) -> None:
    # given a team granted Engineer on a client
    acme = estate.client_with_roles("Acme")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    # when the engineer joins (twice: the second is a no-op)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    # then they see the team's link
    assert links_for_person(person=engineer).count() == 1
    # when they leave (twice: the second is a no-op)
    removed = services.team_member_remove(team=team, person=engineer, removed_by=manager)
    again = services.team_member_remove(team=team, person=engineer, removed_by=manager)
    # then the link is gone at once, the membership row is kept with its end, and one event each way
    assert links_for_person(person=engineer).count() == 0
    assert removed is not None and removed.removed_at is not None and again is None
    assert TeamMembership.objects.filter(team=team, person=engineer).count() == 1
    assert AuditEvent.objects.filter(action="team.member_added").count() == 1
    assert AuditEvent.objects.filter(action="team.member_removed").count() == 1
    assert len([r for r in scheduled if "team" in r]) == 2


def test_a_person_is_created_with_a_temporary_password_and_teams(manager: Any, team: Team) -> None:
    # when a manager adds a person
    person, password = services.person_create(
        created_by=manager, username="nina", first_name="Nina", last_name="Ng", email="nina@example.com",
        iam_username="nina.ng", capabilities=["Engineer"], teams=[team],
    )
    # then they can sign in with the temporary password, are an engineer in the team
    assert person.check_password(password) and len(password) >= 20
    assert person.is_engineer and not person.is_manager
    assert team.memberships.filter(person=person, removed_at__isnull=True).exists()
    # and the audit event does not contain the password
    event = AuditEvent.objects.get(action="person.created")
    assert password not in str(event.details)


def test_changing_a_persons_iam_user_name_is_audited_and_enforced(
    manager: Any, engineer: Any, team: Team, scheduled: list[str]
) -> None:
    # when a manager changes the engineer's IAM user name and teams
    services.person_update(person=engineer, updated_by=manager, first_name="Eli", last_name="", email=engineer.email,
                           iam_username="eli.new", capabilities=["Engineer"], teams=[team])
    # then the change is audited and enforcement follows
    event = AuditEvent.objects.get(action="person.updated")
    assert event.details["iam_username"] == {"from": "eli", "to": "eli.new"}
    assert any("IAM user name" in reason for reason in scheduled)
    assert team.memberships.filter(person=engineer, removed_at__isnull=True).exists()
