"""Leavers and movers (moto as the main account): what will go is shown first, one manager action
removes it all, AWS is read back, everything is audited; a change of teams shows gained and lost
access before saving; the admin no longer edits what decides access."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from portal import aws as switchroles_aws
from portal.aws import Boto3ClientFactory
from portal.models import AuditEvent, User
from switchroles import leavers, services
from switchroles.models import Departure, Grant, TeamMembership

from .conftest import Estate, iam_user_create, reauthenticated, tier

SignedIn = Callable[[Any], HttpClient]


def iam() -> Any:
    return boto3.client("iam", region_name="us-east-1")


@pytest.fixture
def leaver_world(estate: Estate, manager: Any, engineer: Any, aws: Boto3ClientFactory,
                 django_capture_on_commit_callbacks: Any) -> dict[str, Any]:
    """An engineer with an IAM user (tagged by Switchyard), in team Platform (granted engineer on
    Acme) and holding a personal administrator grant on Acme, enforced in moto."""
    iam_user_create(engineer)
    iam().tag_user(UserName=engineer.iam_username, Tags=[{"Key": switchroles_aws.PERSON_TAG_KEY, "Value": "eli"},
                                                          {"Key": "cost-centre", "Value": "ops"}])
    acme = estate.client_with_roles("Acme Retail")
    with django_capture_on_commit_callbacks(execute=True):
        team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
        services.team_member_add(team=team, person=engineer, added_by=manager)
        services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="ops")
        personal = services.grant_create(granted_by=manager, person=engineer, client=acme,
                                         templates=[tier("administrator")], reason="on call lead")
    return {"team": team, "personal": personal, "acme": acme}


def switchyard_state(user_name: str) -> dict[str, Any]:
    groups = [g["GroupName"] for g in iam().list_groups_for_user(UserName=user_name)["Groups"]]
    policies = [p["PolicyArn"] for p in iam().list_attached_user_policies(UserName=user_name)["AttachedPolicies"]
                if ":policy/switchyard/" in p["PolicyArn"]]
    tags = [t["Key"] for t in iam().list_user_tags(UserName=user_name)["Tags"]]
    return {"groups": groups, "policies": policies, "tags": tags}


def test_the_leaver_page_shows_everything_that_will_go_before_confirming(
    leaver_world: dict[str, Any], manager: Any, engineer: Any, signed_in: SignedIn
) -> None:
    # given the engineer really holds the access in AWS
    before = switchyard_state(engineer.iam_username)
    assert before["groups"] == ["platform-engineers"] and before["policies"]

    # when a manager opens the leaver page
    page = reauthenticated(signed_in(manager), manager).get(reverse("switchroles:person_leave", args=[engineer.pk]))

    # then it lists the team, the personal grant, the links, and what goes in AWS; nothing changed yet
    text = page.content.decode().split('id="will-go"')[1]
    assert "team Platform (IAM group platform-engineers)" in text
    assert f"grant #{leaver_world['personal'].pk}: Administrator on client Acme Retail" in text
    assert "SwitchyardAdministrator" in text and "SwitchyardEngineer" in text
    assert "IAM user eli out of group platform-engineers" in text
    assert switchroles_aws.PERSON_TAG_KEY in text
    assert 'id="outside-reach"' in text
    engineer.refresh_from_db()
    assert engineer.is_active and not Departure.objects.exists()


def test_the_leaver_asks_for_reauthentication(manager: Any, engineer: Any, signed_in: SignedIn) -> None:
    response = signed_in(manager).get(reverse("switchroles:person_leave", args=[engineer.pk]))

    assert response.status_code == 302 and "/reauthenticate/" in response["Location"]


def test_one_leaver_action_removes_everything_verifies_aws_and_audits_it_once(
    leaver_world: dict[str, Any], manager: Any, engineer: Any, signed_in: SignedIn,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given the engineer signed in somewhere
    their_browser = signed_in(engineer)
    assert their_browser.get(reverse("switchroles:directory")).status_code == 200

    # when a manager confirms they leave, with a reason
    with django_capture_on_commit_callbacks(execute=True):
        response = reauthenticated(signed_in(manager), manager).post(
            reverse("switchroles:person_leave", args=[engineer.pk]), {"reason": "Last day 30 November"})

    # then they are deactivated, out of the team, their grant revoked, and signed out
    departure = Departure.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "switchroles:departure_detail", args=[departure.pk])
    engineer.refresh_from_db()
    assert not engineer.is_active
    assert not TeamMembership.objects.filter(person=engineer, removed_at__isnull=True).exists()
    assert Grant.objects.get(pk=leaver_world["personal"].pk).revoked_at is not None
    assert their_browser.get(reverse("switchroles:directory"))["Location"].startswith("/accounts/login/")
    # and AWS, read back, carries nothing of Switchyard's (the user and its other tags stay)
    assert switchyard_state(engineer.iam_username) == {"groups": [], "policies": [], "tags": ["cost-centre"]}
    assert departure.aws_state == Departure.AwsState.VERIFIED
    assert departure.aws_read_back == {"user_name": "eli", "exists": True, "groups": [], "policies": [], "tags": []}
    # (the enforcement sync, scheduled by the same leaver, may have taken the group and policies first)
    assert departure.aws_removed["tags"] == [switchroles_aws.PERSON_TAG_KEY]
    # and one leaver event lists what was removed
    left = AuditEvent.objects.get(action="person.left")
    assert left.details["removed"]["teams"] == ["team Platform (IAM group platform-engineers)"]
    assert left.details["removed"]["grants"] == [f"grant #{leaver_world['personal'].pk}: Administrator on client "
                                                 "Acme Retail"]
    assert left.details["deactivated"] is True and left.details["reason"] == "Last day 30 November"
    assert AuditEvent.objects.filter(action="person.left_aws_verified", target_id=str(engineer.pk)).count() == 1
    # and the departure page shows the read-back
    shown = signed_in(manager).get(reverse("switchroles:departure_detail", args=[departure.pk])).content.decode()
    assert "Removed from AWS (read back)" in shown and "platform-engineers" in shown


def test_a_refused_aws_call_ends_in_a_plain_message_not_a_retry_loop(
    manager: Any, engineer: Any, aws: Boto3ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given AWS refuses to change the IAM user
    from botocore.exceptions import ClientError

    def refused(**_: Any) -> Any:
        # (what the seam raises for that AWS answer)
        raise switchroles_aws.translate(
            ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "RemoveUserFromGroup"))

    monkeypatch.setattr(switchroles_aws, "remove_user_from_switchyard", refused)
    departure = leavers.person_leave(person=engineer, left_by=manager, reason="left")

    # when the clean-up runs
    leavers.leaver_aws_cleanup(departure_id=departure.pk, clients=aws)

    # then it is recorded as failed, in plain words with the AWS code and what to do
    departure.refresh_from_db()
    assert departure.aws_state == Departure.AwsState.FAILED
    assert "AccessDenied" in departure.aws_error and "by hand" in departure.aws_error
    assert AuditEvent.objects.filter(action="person.left_aws_failed").count() == 1

    # and once fixed, a manager asks again: it goes back to a worker, audited
    monkeypatch.setattr(switchroles_aws, "remove_user_from_switchyard", lambda **_: switchroles_aws.UserSwitchyardState(
        "eli", False, (), (), ()))
    leavers.departure_aws_retry(departure=departure, requested_by=manager)
    leavers.leaver_aws_cleanup(departure_id=departure.pk, clients=aws)
    departure.refresh_from_db()
    assert departure.aws_state == Departure.AwsState.VERIFIED
    assert AuditEvent.objects.filter(action="person.left_aws_retry_requested", actor=manager).count() == 1


def test_nobody_leaves_twice_and_a_manager_cannot_remove_themself(manager: Any, engineer: Any) -> None:
    from django.core.exceptions import ValidationError

    leavers.person_leave(person=engineer, left_by=manager, reason="left")
    with pytest.raises(ValidationError, match="already left"):
        leavers.person_leave(person=engineer, left_by=manager, reason="again")
    with pytest.raises(ValidationError, match="yourself"):
        leavers.person_leave(person=manager, left_by=manager, reason="bye")
    assert Departure.objects.count() == 1


def test_a_registered_step_runs_with_every_leaver(manager: Any, engineer: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # given another part of Switchyard registers what ends for it (e.g. API tokens)
    monkeypatch.setattr(leavers, "_registered_steps", {})
    ran: list[int] = []
    leavers.leaver_step_register(leavers.LeaverStep(
        key="api_tokens", label="API tokens", preview=lambda person: ["token ci-bot"],
        run=lambda *, person, **_: ran.append(person.pk) or ["token ci-bot"]))

    # then the preview lists it and the leaver runs it, and the event names it
    preview = leavers.leaver_preview(person=engineer)
    assert ("api_tokens", ["token ci-bot"]) in [(step.key, lines) for step, lines in preview.steps]
    leavers.person_leave(person=engineer, left_by=manager, reason="left")
    assert ran == [engineer.pk]
    assert AuditEvent.objects.get(action="person.left").details["removed"]["api_tokens"] == ["token ci-bot"]


def test_a_change_of_teams_shows_gained_and_lost_access_and_saves_only_once_confirmed(
    estate: Estate, manager: Any, engineer: Any, signed_in: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the engineer in Platform (engineer on Acme); Data is granted on-call on Globex
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)
    acme, globex = estate.client_with_roles("Acme Retail"), estate.client_with_roles("Globex")
    platform = services.team_create(name="Platform", iam_group_name="platform", created_by=manager)
    data = services.team_create(name="Data", iam_group_name="data", created_by=manager)
    services.team_member_add(team=platform, person=engineer, added_by=manager)
    services.grant_create(granted_by=manager, team=platform, client=acme, templates=[tier("engineer")], reason="x")
    services.grant_create(granted_by=manager, team=data, client=globex, templates=[tier("oncall")], reason="x")
    browser = reauthenticated(signed_in(manager), manager)
    form = {"email": engineer.email, "iam_username": engineer.iam_username, "capabilities": ["Engineer"],
            "teams": [data.pk]}

    # when a manager moves them from Platform to Data
    preview = browser.post(reverse("switchroles:person_edit", args=[engineer.pk]), form)

    # then the page shows what they gain and lose, and nothing is saved yet
    text = preview.content.decode()
    gained = text.split('id="links-gained"')[1].split("</ul>")[0]
    lost = text.split('id="links-lost"')[1].split("</ul>")[0]
    assert "globex" in gained and "SwitchyardOnCall" in gained and "acme" not in gained
    assert "acme-retail" in lost and "SwitchyardEngineer" in lost
    assert TeamMembership.objects.filter(person=engineer, team=platform, removed_at__isnull=True).exists()

    # when they confirm
    saved = browser.post(reverse("switchroles:person_edit", args=[engineer.pk]), {**form, "confirm_move": "yes"})

    # then the move is saved and audited with what changed
    assert saved.status_code == 302
    assert set(TeamMembership.objects.filter(person=engineer, removed_at__isnull=True)
               .values_list("team__name", flat=True)) == {"Data"}
    moved = AuditEvent.objects.get(action="person.moved")
    assert moved.details["teams_joined"] == ["Data"] and moved.details["teams_left"] == ["Platform"]
    assert moved.details["links_gained_count"] == 1 and moved.details["links_lost_count"] == 1


def test_the_admin_no_longer_edits_what_decides_access_and_audits_its_edits(
    make_person: Any, engineer: Any, signed_in: SignedIn
) -> None:
    # given a superuser in the Django admin
    root = make_person("root", is_staff=True, is_superuser=True)
    browser = reauthenticated(signed_in(root), root)
    url = reverse("admin:portal_user_change", args=[engineer.pk])

    # when they change the IAM user name, groups and active flag along with the e-mail address
    page = browser.get(url).content.decode()
    assert 'name="iam_username"' not in page and 'name="groups"' not in page and 'name="is_active"' not in page
    response = browser.post(url, {
        "username": engineer.username, "email": "eli.new@example.com", "iam_username": "someone-else",
        "is_active": "", "groups": [], "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00",
        "first_name": "", "last_name": "",
    })

    # then only the e-mail changed, and the change is audited
    assert response.status_code == 302, response.content.decode()[:2000]
    engineer.refresh_from_db()
    assert (engineer.email, engineer.iam_username, engineer.is_active) == ("eli.new@example.com", "eli", True)
    assert engineer.groups.filter(name="Engineer").exists()
    event = AuditEvent.objects.get(action="person.admin_changed")
    assert "email" in event.details["fields"] and event.actor == root
    assert User.objects.get(pk=engineer.pk).iam_username == "eli"


def test_a_leavers_api_tokens_are_shown_then_revoked_and_answer_401(
    manager: Any, engineer: Any, signed_in: SignedIn, aws: Boto3ClientFactory
) -> None:
    # given an engineer with a read-write API token that works
    from portal.api.tokens import api_token_create

    created = api_token_create(owner=engineer, name="PSA hook", scope="read-write", lifetime_days=30)
    api = HttpClient()
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {created.secret}"}).status_code == 200

    # when a manager opens the leaver page, then confirms
    browser = reauthenticated(signed_in(manager), manager)
    preview = browser.get(reverse("switchroles:person_leave", args=[engineer.pk])).content.decode()
    departure = leavers.person_leave(person=engineer, left_by=manager, reason="left the company")

    # then the page listed the token, it is revoked (audited, named in the leaver event) and answers 401
    assert "PSA hook" in preview
    created.token.refresh_from_db()
    assert created.token.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1
    left = AuditEvent.objects.get(action="person.left")
    assert "PSA hook" in str(left.details) and departure.person_id == engineer.pk
    assert api.get("/api/v1/me", headers={"Authorization": f"Bearer {created.secret}"}).status_code == 401


def test_the_leaver_page_says_what_aws_would_still_allow_outside_switchyard(
    manager: Any, engineer: Any, signed_in: SignedIn
) -> None:
    # given an effective-access check that found the engineer's IAM user reaching a role with no grant
    from django.utils import timezone

    from switchroles.models import AccessCheck, AccessFinding

    browser = reauthenticated(signed_in(manager), manager)
    page = reverse("switchroles:person_leave", args=[engineer.pk])
    assert "has not been checked yet" in browser.get(page).content.decode()
    now = timezone.now()
    check = AccessCheck.objects.create(checked_at=now)
    AccessFinding.objects.create(
        kind=AccessFinding.Kind.UNGRANTED, principal_type="user", principal_name=engineer.iam_username,
        principal_arn=f"arn:aws:iam::123456789012:user/{engineer.iam_username}", person=engineer,
        role_arn="arn:aws:iam::210987654321:role/OrganizationAccountAccessRole", policy="AdministratorAccess",
        statement="#1", detail="reachable without a grant", opened_at=now, last_seen_at=now, last_check=check)

    # when a manager opens the leaver page
    shown = browser.get(page).content.decode()

    # then it names the role AWS would still let the IAM user assume, and the policy that allows it
    assert "role/OrganizationAccountAccessRole" in shown and "AdministratorAccess" in shown
    assert "not connected" not in shown
