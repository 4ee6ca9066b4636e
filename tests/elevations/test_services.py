"""Elevation requests: who may decide, what approval makes, and how it ends."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from elevations import services
from elevations.models import ApprovalPolicy, ElevationRequest
from portal.audit.models import AuditEvent
from switchroles.models import Grant
from switchroles.selectors import links_for_person
from switchroles.services import grant_expiries_record
from tests.elevations.conftest import Estate

pytestmark = pytest.mark.django_db


def _ask(estate: Estate, minutes: int = 30) -> ElevationRequest:
    return services.elevation_request(requester=estate.engineer, account=estate.prod, template=estate.administrator,
                                      duration=minutes, reason="INC-42 database down")


def _policy(estate: Estate, approvers: str) -> None:
    services.approval_policy_set(client=estate.acme, approvers=approvers, updated_by=estate.manager)


def test_approval_gives_the_engineer_the_link_and_schedules_the_enforcement_sync(
    estate: Estate, syncs: list[str]
) -> None:
    # Given a pending request for Administrator on Acme's production account, approved by the client
    _policy(estate, ApprovalPolicy.Approvers.CONTACT)
    elevation = _ask(estate, minutes=45)
    assert not links_for_person(person=estate.engineer).filter(pk=estate.admin_role.pk).exists()

    # When the client contact approves
    services.elevation_decide(request=elevation, decider=estate.contact, approve=True, reason="")

    # Then the engineer's directory shows the Administrator link, through a personal grant ending in 45 min
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.ACTIVE
    assert links_for_person(person=estate.engineer).filter(pk=estate.admin_role.pk).exists()
    grant = elevation.grant
    assert grant is not None and grant.person == estate.engineer and grant.account == estate.prod
    assert list(grant.templates.all()) == [estate.administrator]
    assert grant.expires_at is not None
    assert timedelta(minutes=44) < grant.expires_at - timezone.now() <= timedelta(minutes=45)
    # and the main-account policies are rewritten after commit, and the audit log says who approved
    assert f"grant {grant.pk} created" in syncs
    assert AuditEvent.objects.filter(action="elevation.approved", actor=estate.contact).exists()


def test_nobody_approves_their_own_request(estate: Estate) -> None:
    # Given a manager who asks for an elevation (managers approve on this client)
    elevation = services.elevation_request(requester=estate.manager, account=estate.prod,
                                           template=estate.administrator, duration=10, reason="checking")

    # When they try to approve it themselves
    with pytest.raises(ValidationError, match="cannot decide"):
        services.elevation_decide(request=elevation, decider=estate.manager, approve=True, reason="")

    # Then it is still pending and no grant exists
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.PENDING and elevation.grant is None


def test_a_contact_cannot_decide_when_managers_approve_and_a_contact_of_another_client_never(estate: Estate) -> None:
    elevation = _ask(estate)
    with pytest.raises(ValidationError):
        services.elevation_decide(request=elevation, decider=estate.contact, approve=True, reason="")
    _policy(estate, ApprovalPolicy.Approvers.CONTACT)
    second = services.elevation_request(requester=estate.other_manager, account=estate.prod,
                                        template=estate.administrator, duration=5, reason="x")
    with pytest.raises(ValidationError):
        services.elevation_decide(request=second, decider=estate.globex_contact, approve=True, reason="")
    assert not Grant.objects.filter(person__in=[estate.engineer, estate.other_manager]).exists()


def test_an_approval_after_the_request_expired_is_refused(estate: Estate) -> None:
    # Given a request whose time to be answered ran out
    elevation = _ask(estate)
    ElevationRequest.objects.filter(pk=elevation.pk).update(answer_by=timezone.now() - timedelta(seconds=1))

    # When a manager approves it
    with pytest.raises(ValidationError, match="expired"):
        services.elevation_decide(request=elevation, decider=estate.manager, approve=True, reason="")

    # Then no grant is made; the schedule then records it as unanswered, kept in the history
    assert not Grant.objects.filter(person=estate.engineer, account=estate.prod).exists()
    assert services.elevations_expire_due() == [elevation.pk]
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.UNANSWERED


def test_a_second_approval_of_an_approved_request_makes_no_second_grant(estate: Estate) -> None:
    _policy(estate, ApprovalPolicy.Approvers.BOTH_FIRST)
    elevation = _ask(estate)
    services.elevation_decide(request=elevation, decider=estate.manager, approve=True, reason="")
    with pytest.raises(ValidationError, match="already"):
        services.elevation_decide(request=elevation, decider=estate.contact, approve=True, reason="")
    assert Grant.objects.filter(person=estate.engineer, account=estate.prod).count() == 1


def test_both_all_needs_a_manager_and_a_contact(estate: Estate) -> None:
    _policy(estate, ApprovalPolicy.Approvers.BOTH_ALL)
    elevation = _ask(estate)
    services.elevation_decide(request=elevation, decider=estate.manager, approve=True, reason="")
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.PENDING
    services.elevation_decide(request=elevation, decider=estate.contact, approve=True, reason="ok")
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.ACTIVE and elevation.grant is not None


def test_a_decline_needs_a_reason_and_stays_in_the_history(estate: Estate) -> None:
    elevation = _ask(estate)
    with pytest.raises(ValidationError):
        services.elevation_decide(request=elevation, decider=estate.manager, approve=False, reason=" ")
    services.elevation_decide(request=elevation, decider=estate.manager, approve=False, reason="use on-call")
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.DECLINED
    assert ElevationRequest.objects.filter(pk=elevation.pk).exists()


def test_expiry_ends_the_elevation(estate: Estate, syncs: list[str]) -> None:
    # Given an approved elevation
    elevation = _ask(estate, minutes=5)
    services.elevation_decide(request=elevation, decider=estate.manager, approve=True, reason="")
    elevation.refresh_from_db()
    later = timezone.now() + timedelta(minutes=6)

    # When its time has passed and the schedules run
    recorded = grant_expiries_record(at=later)
    changed = services.elevations_expire_due(at=later)

    # Then the link is gone, the expiry is recorded once, AWS follows, and the request says so
    assert recorded == [elevation.grant_id]
    assert changed == [elevation.pk]
    assert not links_for_person(person=estate.engineer, at=later).filter(pk=estate.admin_role.pk).exists()
    assert "1 grant(s) expired" in syncs
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.EXPIRED


def test_the_requester_can_end_it_early(estate: Estate) -> None:
    elevation = _ask(estate)
    services.elevation_decide(request=elevation, decider=estate.manager, approve=True, reason="")
    services.elevation_end(request=elevation, ended_by=estate.engineer)
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.ENDED
    assert elevation.grant is not None and elevation.grant.revoked_by == estate.engineer
    assert not links_for_person(person=estate.engineer).filter(pk=estate.admin_role.pk).exists()


def test_emergency_self_approval_needs_a_reason_and_is_flagged(estate: Estate) -> None:
    elevation = services.elevation_request(requester=estate.manager, account=estate.prod,
                                           template=estate.administrator, duration=15, reason="outage")
    with pytest.raises(ValidationError):
        services.elevation_emergency_approve(request=elevation, manager=estate.manager, reason="")
    services.elevation_emergency_approve(request=elevation, manager=estate.manager, reason="prod down, nobody up")
    elevation.refresh_from_db()
    assert elevation.emergency and elevation.state == ElevationRequest.State.ACTIVE
    notified = AuditEvent.objects.get(action="elevation.approvers_notified", details__event="emergency")
    assert notified.details["recipients"] == ["carla"]


def test_an_engineer_cannot_use_the_emergency_path(estate: Estate) -> None:
    elevation = _ask(estate)
    with pytest.raises(ValidationError):
        services.elevation_emergency_approve(request=elevation, manager=estate.engineer, reason="please")


@pytest.mark.parametrize(("minutes", "ok"), [(0, False), (1, True), (240, True), (241, False)])
def test_duration_from_one_minute_to_the_maximum(estate: Estate, minutes: int, ok: bool) -> None:
    if ok:
        assert _ask(estate, minutes=minutes).duration_minutes == minutes
    else:
        with pytest.raises(ValidationError, match="1 to 240"):
            _ask(estate, minutes=minutes)


def test_a_tier_already_held_cannot_be_requested(estate: Estate) -> None:
    with pytest.raises(ValidationError, match="already hold"):
        services.elevation_request(requester=estate.engineer, account=estate.prod,
                                   template=estate.engineer_role.template, duration=5, reason="x")


def test_requests_are_announced_through_one_notify_function(estate: Estate) -> None:
    _policy(estate, ApprovalPolicy.Approvers.BOTH_FIRST)
    _ask(estate)
    event = AuditEvent.objects.get(action="elevation.approvers_notified")
    assert event.details == {"event": "requested", "recipients": ["carla", "max", "morgan"]}


@pytest.mark.django_db(transaction=True)
def test_two_approvals_racing_create_one_grant(estate: Estate) -> None:
    # Given a request either a manager or the contact may approve (first answer wins)
    # (On SQLite the database lock serialises them; on PostgreSQL the request row's lock does.)
    _policy(estate, ApprovalPolicy.Approvers.BOTH_FIRST)
    elevation = _ask(estate)
    results: list[str] = []
    barrier = threading.Barrier(2)

    def approve(decider: object) -> None:
        try:
            barrier.wait(timeout=10)
            services.elevation_decide(request=elevation, decider=decider, approve=True, reason="")  # type: ignore[arg-type]
            results.append("approved")
        except ValidationError as error:
            results.append(f"refused: {error.messages[0]}")
        except Exception as error:  # noqa: BLE001 (SQLite: "database is locked" is also a refusal)
            results.append(f"error: {error}")
        finally:
            connection.close()

    # When the manager and the contact approve at the same moment
    threads = [threading.Thread(target=approve, args=(person,)) for person in (estate.manager, estate.contact)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then exactly one grant exists, and one of the two was told it is already approved
    assert Grant.objects.filter(person=estate.engineer, account=estate.prod).count() == 1
    assert sorted(r.split(":")[0] for r in results)[0] == "approved"
    assert results.count("approved") == 1


def test_only_engineers_and_managers_ask(estate: Estate) -> None:
    for person in (estate.contact,):
        with pytest.raises(ValidationError, match="Only engineers and managers"):
            services.elevation_request(requester=person, account=estate.prod, template=estate.administrator,
                                       duration=5, reason="x")
    assert not ElevationRequest.objects.exists()


def test_the_schedule_closes_due_requests_every_minute(estate: Estate) -> None:
    # Given a request whose time to be answered has run out
    from elevations.tasks import elevations_expire
    from portal.celery import app

    elevation = _ask(estate)
    ElevationRequest.objects.filter(pk=elevation.pk).update(answer_by=timezone.now() - timedelta(seconds=1))

    # When beat's entry runs (every minute)
    entry = app.conf.beat_schedule["elevations-expire"]
    assert entry["task"] == "elevations.tasks.elevations_expire" and entry["schedule"] == 60.0
    closed = elevations_expire.delay().get()

    # Then the request is unanswered, once
    assert closed == 1 and elevations_expire.delay().get() == 0
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.UNANSWERED


def test_contacts_cannot_be_made_approvers_of_a_client_without_contacts(estate: Estate) -> None:
    from onboarding.models import Client

    initech = Client.objects.create(name="Initech", slug="initech")
    with pytest.raises(ValidationError, match="Invite a client contact first"):
        services.approval_policy_set(client=initech, approvers=ApprovalPolicy.Approvers.CONTACT,
                                     updated_by=estate.manager)
    assert not ApprovalPolicy.objects.filter(client=initech).exists()


def test_auditors_read_every_request_and_cannot_end_one(estate: Estate, make_person: Any) -> None:
    from elevations.selectors import elevation_of

    auditor = make_person("ada", "Auditor")
    elevation = _ask(estate)
    assert elevation_of(person=auditor, request_id=elevation.pk) == elevation
    with pytest.raises(ValidationError):
        services.elevation_end(request=elevation, ended_by=auditor)
    with pytest.raises(ValidationError):
        services.elevation_decide(request=elevation, decider=auditor, approve=True, reason="")


def test_an_emergency_grant_is_flagged_in_the_access_review(estate: Estate, make_person: Any) -> None:
    # Given a manager's self-approved break-glass grant and an ordinary approved one
    from datetime import timedelta

    from django.utils import timezone

    from portal import reviews

    emergency = services.elevation_request(requester=estate.manager, account=estate.prod,
                                           template=estate.administrator, duration=15, reason="outage")
    services.elevation_emergency_approve(request=emergency, manager=estate.manager, reason="prod down, nobody up")
    ordinary = services.elevation_request(requester=estate.engineer, account=estate.prod,
                                          template=estate.administrator, duration=15, reason="INC-9")
    services.elevation_decide(request=ordinary, decider=estate.other_manager, approve=True, reason="ok")

    # When an access review of Acme is opened
    reviewer = make_person("rita", "Auditor", "Reviewer")
    review = reviews.access_review_open(opened_by=estate.other_manager, title="Acme Q4", scope="client",
                                        client=estate.acme, reviewers=[reviewer],
                                        deadline=timezone.now() + timedelta(days=7))

    # Then only the emergency grant's item is flagged
    flagged = {item.grant_id: item.emergency for item in reviews.review_items(review=review)}
    emergency.refresh_from_db()
    ordinary.refresh_from_db()
    assert flagged[emergency.grant_id] is True and flagged[ordinary.grant_id] is False
