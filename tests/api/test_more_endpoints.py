"""The API's leaver action, findings, checks and elevations: the same services as their pages."""

from __future__ import annotations

import pytest

from portal.models import AuditEvent, User
from switchroles.models import Departure, TeamMembership
from tests.api.conftest import as_persona
from tests.security.support import World

pytestmark = pytest.mark.django_db


# --- the leaver action ------------------------------------------------------------------------------


def test_a_manager_deactivates_a_person_through_the_leaver_action(world: World) -> None:
    # Given engineer B, a member of team B
    leaver = world.people["eng_b"]

    # When the manager deactivates them with a reason
    response = as_persona(world, "mgr").post(f"/api/v1/people/{leaver.pk}/deactivate",
                                             {"reason": "Last day 30 November"})

    # Then they have left as by the Leave page: inactive, out of their team, a departure with AWS pending
    assert response.status_code == 200, response.content
    departure = Departure.objects.get(person=leaver)
    assert response.json() == {"id": leaver.pk, "username": leaver.username, "is_active": False,
                               "departure": {"id": departure.pk, "aws_state": departure.aws_state}}
    assert not User.objects.get(pk=leaver.pk).is_active
    assert not TeamMembership.objects.filter(person=leaver, removed_at__isnull=True).exists()
    assert AuditEvent.objects.filter(action="person.left", target_id=str(leaver.pk)).exists()


def test_deactivating_refuses_a_blank_reason_oneself_and_a_second_time_and_hides_superusers(world: World) -> None:
    manager = as_persona(world, "mgr")
    leaver = world.people["eng_b"]

    # A blank reason: the form's message
    assert manager.post(f"/api/v1/people/{leaver.pk}/deactivate", {"reason": " "}).json() == {
        "errors": {"reason": ["This field is required."]}}
    # Oneself: the service's message
    me = world.people["mgr"]
    assert manager.post(f"/api/v1/people/{me.pk}/deactivate", {"reason": "bye"}).json() == {
        "errors": {"reason": ["You cannot make yourself leave: ask another manager."]}}
    # A superuser is not someone a manager may edit: 404
    assert manager.post(f"/api/v1/people/{world.people['adm'].pk}/deactivate",
                        {"reason": "bye"}).status_code == 404
    assert manager.post("/api/v1/people/999999/deactivate", {"reason": "bye"}).status_code == 404
    # A second time: the service says they already left
    assert manager.post(f"/api/v1/people/{leaver.pk}/deactivate", {"reason": "bye"}).status_code == 200
    assert manager.post(f"/api/v1/people/{leaver.pk}/deactivate", {"reason": "again"}).json() == {
        "errors": {"reason": [f"{leaver.username} has already left."]}}
    assert User.objects.get(pk=me.pk).is_active


# --- findings ---------------------------------------------------------------------------------------


def test_findings_list_open_drift_and_effective_access_findings_but_not_resolved_ones(world: World) -> None:
    from django.utils import timezone

    from switchroles.models import AccessFinding

    # Given the world's drift finding on Acme's role, one open effective-access finding and one resolved
    now = timezone.now()
    common = {"principal_type": "user", "principal_arn": "arn:aws:iam::111111111111:user/x",
              "opened_at": now, "last_seen_at": now}
    AccessFinding.objects.create(kind=AccessFinding.Kind.UNGRANTED, principal_name="mallory",
                                 account=world.rows["acme_prod"], role_arn="arn:aws:iam::1:role/r",
                                 detail="Reachable without a grant.", **common)
    AccessFinding.objects.create(kind=AccessFinding.Kind.DOOR, principal_name="fixed", resolved_at=now, **common)

    # When the auditor reads the findings
    body = as_persona(world, "aud").get("/api/v1/findings").json()

    # Then both open findings are listed, one page, and the resolved one is not
    assert body["count"] == 2 and body["pages"] == 1 and body["next"] is None
    drift_row, access_row = body["results"]
    role = world.rows["acme_role"]
    assert drift_row == {"source": "drift", "kind": "different", "account": world.pk("acme_prod"),
                         "role_arn": role.arn, "principal": role.role_name, "detail": "The trust policy differs.",
                         "opened_at": drift_row["opened_at"]}
    assert {k: access_row[k] for k in ("source", "kind", "account", "principal", "detail")} == {
        "source": "effective_access", "kind": "ungranted", "account": world.pk("acme_prod"),
        "principal": "mallory", "detail": "Reachable without a grant."}
    # and a page past the end is 404, a bad page 400, an engineer 403
    assert as_persona(world, "aud").get("/api/v1/findings", {"page": "2"}).status_code == 404
    assert as_persona(world, "aud").get("/api/v1/findings", {"page": "x"}).status_code == 400
    assert as_persona(world, "eng").get("/api/v1/findings").status_code == 403


# --- elevations -------------------------------------------------------------------------------------


def test_an_engineer_asks_for_an_elevation_and_a_manager_approves_it(world: World) -> None:
    from elevations.models import ElevationRequest

    # Given engineer A, who reaches Acme's production account as an engineer, with no open request
    ElevationRequest.objects.filter(pk=world.pk("elevation")).update(state=ElevationRequest.State.ENDED)
    engineer = as_persona(world, "eng")

    # When they ask for Administrator on it for 30 minutes
    response = engineer.post("/api/v1/elevations", {"account": world.pk("acme_prod"), "tier": "administrator",
                                                    "duration_minutes": 30, "reason": "INC-7"})

    # Then a pending request is made, which they may not decide themselves
    assert response.status_code == 201, response.content
    body = response.json()
    assert {k: body[k] for k in ("state", "account", "tier", "duration_minutes", "reason", "can_decide")} == {
        "state": "pending", "account": world.pk("acme_prod"), "tier": "administrator", "duration_minutes": 30,
        "reason": "INC-7", "can_decide": False}
    assert engineer.post(f"/api/v1/elevations/{body['id']}/approve", {}).status_code == 403
    # and the manager sees it among those they may decide, and approves it
    listed = {e["id"]: e for e in as_persona(world, "mgr").get("/api/v1/elevations").json()}
    assert listed[body["id"]]["can_decide"] is True
    approved = as_persona(world, "mgr").post(f"/api/v1/elevations/{body['id']}/approve", {})
    assert approved.status_code == 200, approved.content
    assert approved.json()["state"] == "active" and approved.json()["grant"] is not None
    # a second answer is the service's refusal
    assert as_persona(world, "mgr").post(f"/api/v1/elevations/{body['id']}/decline", {"reason": "no"}).json() == {
        "errors": {"__all__": ["This request is already approved, in force."]}}


def test_elevation_requests_are_refused_with_the_forms_and_services_messages(world: World) -> None:
    engineer = as_persona(world, "eng")
    base = {"account": world.pk("acme_prod"), "tier": "administrator", "duration_minutes": 30, "reason": "INC-7"}

    # An open request for the same tier already exists (the world's): the service says so
    assert engineer.post("/api/v1/elevations", base).json() == {
        "errors": {"tier": ["You already have a request for this tier on this account."]}}
    # An account they do not reach, an unknown tier, no reason, a duration out of range
    errors = engineer.post("/api/v1/elevations", {**base, "account": world.pk("globex_prod")}).json()["errors"]
    assert errors == {"tier": ["This account has no such role to elevate to."]}
    assert "tier" in engineer.post("/api/v1/elevations", {**base, "tier": "nope"}).json()["errors"]
    assert engineer.post("/api/v1/elevations", {**base, "reason": ""}).json()["errors"] == {
        "reason": ["This field is required."]}
    assert "duration_minutes" in engineer.post("/api/v1/elevations", {**base, "duration_minutes": 0}).json()["errors"]
    # A decline needs a reason; a request the caller may not see is 404; an engineer sees only their own
    assert as_persona(world, "mgr").post(f"/api/v1/elevations/{world.pk('elevation')}/decline", {}).json() == {
        "errors": {"reason": ["Say why you decline."]}}
    assert as_persona(world, "mgr").post("/api/v1/elevations/999999/approve", {}).status_code == 404
    assert as_persona(world, "eng_b").get("/api/v1/elevations").json() == []
    assert [e["id"] for e in engineer.get("/api/v1/elevations").json()] == [world.pk("elevation")]


# --- adopting a member of the Organization ----------------------------------------------------------


def test_an_onboarding_with_origin_adopt_adopts_a_member_of_the_organization(
    monkeypatch: pytest.MonkeyPatch, settings: object, manager: User, make_token: object,
) -> None:
    from onboarding.models import AwsAccount
    from portal import aws
    from tests.api.conftest import ApiClient
    from tests.onboarding.conftest import mocked_organization

    for org in mocked_organization(monkeypatch, settings, managed_policies=True):
        # Given a member of the Organization that Switchyard does not manage
        member_id = aws.start_account_creation(clients=org, email="legacy@legacy.example", account_name="legacy",
                                               tags={}).account_id
        automation = ApiClient(make_token(manager))  # type: ignore[operator]
        body = {"client_name": "Legacy Co", "origin": "adopt", "account_name": "legacy",
                "aws_account_id": member_id, "tiers": ["engineer"], "reason": "Adopting Legacy"}

        # When the manager's token asks to adopt it
        response = automation.post("/api/v1/onboardings", body)

        # Then it is an adopted account in a batch of one, like the Adopt page makes
        assert response.status_code == 202, response.content
        account = AwsAccount.objects.get(pk=response.json()["account"]["id"])
        assert account.origin == AwsAccount.Origin.ADOPTED and account.batch is not None
        assert response.json()["account"]["origin"] == "adopted"
        assert AuditEvent.objects.filter(action="onboarding.batch.requested").exists()

        # and a second adoption of the same account is the service's refusal, nothing written
        again = automation.post("/api/v1/onboardings", {**body, "client_name": "Other Co"})
        assert again.status_code == 400 and list(again.json()["errors"]) == ["aws_account_id"]
        assert AwsAccount.objects.filter(account_id=member_id).count() == 1


# --- client contacts --------------------------------------------------------------------------------


def test_a_client_contact_reads_their_own_client_only(world: World, make_token: object) -> None:
    from tests.api.conftest import ApiClient

    # Given Acme's client contact with a read token
    contact = ApiClient(make_token(world.people["contact"], "read"))  # type: ignore[operator]

    # When they read the clients, their client, and Globex
    listed = contact.get("/api/v1/clients")
    own = contact.get(f"/api/v1/clients/{world.pk('acme')}")
    other = contact.get(f"/api/v1/clients/{world.pk('globex')}")

    # Then they see Acme with its accounts, and Globex does not exist for them
    assert listed.status_code == 200 and [c["id"] for c in listed.json()] == [world.pk("acme")]
    assert own.status_code == 200 and world.pk("acme_prod") in [a["id"] for a in own.json()["accounts"]]
    assert other.status_code == 404
    # and everything else the MSP's readers may read stays refused
    assert contact.get("/api/v1/access").status_code == 403
    assert contact.get(f"/api/v1/accounts/{world.pk('acme_prod')}").status_code == 403


# --- checks now -------------------------------------------------------------------------------------


def test_a_check_now_is_running_until_both_checks_are_recorded_then_done_with_the_findings(
    world: World, django_capture_on_commit_callbacks: object, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from switchroles import tasks
    from switchroles.models import AccessCheck, DriftCheck

    queued: list[str] = []
    monkeypatch.setattr(tasks.effective_access_check, "delay", lambda *a, **k: queued.append("access"))
    monkeypatch.setattr(tasks.drift_check, "apply_async", lambda *a, **k: queued.append("drift"))
    manager = as_persona(world, "mgr")

    # When the manager asks for a check now
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = manager.post("/api/v1/checks", {})

    # Then both checks are queued and audited, and the request is running (no check recorded since)
    assert response.status_code == 202, response.content
    check_id = response.json()["id"]
    assert sorted(queued) == ["access", "drift"]
    assert {"drift.check_requested", "access.check_requested"} <= set(
        AuditEvent.objects.filter(actor=world.people["mgr"]).values_list("action", flat=True))
    running = as_persona(world, "aud").get(f"/api/v1/checks/{check_id}").json()
    assert running["status"] == "running" and running["findings"] == []

    # When the workers record a drift check and an access check after it
    later = timezone.now() + timedelta(seconds=1)
    drift_row = DriftCheck.objects.create(checked_at=later, principals_checked=1, roles_checked=1)
    AccessCheck.objects.create(checked_at=later)

    # Then it is done, naming the rows, with the open findings (the world's drift finding is in the
    # latest role check, which is now the new one: no findings there)
    done = as_persona(world, "aud").get(f"/api/v1/checks/{check_id}").json()
    assert done["status"] == "done" and done["drift_check"] == drift_row.pk and done["errors"] == []
    assert done["findings"] == as_persona(world, "aud").get("/api/v1/findings").json()["results"]

    # and a check that could not finish makes it failed, saying why
    AccessCheck.objects.filter(checked_at=later).update(error="AWS refused: AccessDenied")
    failed = as_persona(world, "aud").get(f"/api/v1/checks/{check_id}").json()
    assert failed["status"] == "failed" and failed["errors"] == ["AWS refused: AccessDenied"]
    # an id that is not a check request is 404
    assert as_persona(world, "aud").get("/api/v1/checks/999999").status_code == 404
