from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from portal.audit import audit_record, audit_verify_chain
from portal.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def _three_events() -> list[AuditEvent]:
    return [audit_record(action=f"test.event{i}", details={"n": i}) for i in range(1, 4)]


def _raw(sql: str, params: list[object]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_an_untouched_chain_verifies() -> None:
    # given
    _three_events()
    # when
    report = audit_verify_chain()
    # then
    assert report.intact
    assert report.events_checked == 3
    call_command("audit_verify")  # exits 0


def test_an_edited_row_is_named() -> None:
    events = _three_events()
    _raw("UPDATE portal_auditevent SET action = %s WHERE id = %s", ["test.tampered", events[1].pk])

    report = audit_verify_chain()

    assert not report.intact
    assert report.first_bad_sequence == 2
    with pytest.raises(CommandError, match="#2"):
        call_command("audit_verify")


def test_a_deleted_row_is_named() -> None:
    events = _three_events()
    _raw("DELETE FROM portal_auditevent WHERE id = %s", [events[1].pk])

    report = audit_verify_chain()

    assert not report.intact
    assert report.first_bad_sequence == 3
    assert "#2 is missing" in report.problem


def test_a_deleted_last_row_is_noticed() -> None:
    events = _three_events()
    _raw("DELETE FROM portal_auditevent WHERE id = %s", [events[2].pk])

    report = audit_verify_chain()

    assert not report.intact
    assert report.first_bad_sequence == 3


def test_an_inserted_row_is_named() -> None:
    events = _three_events()
    # An attacker shifts the last event along and forges one in its place, copying a real digest.
    _raw("UPDATE portal_auditevent SET sequence = 4 WHERE id = %s", [events[2].pk])
    _raw(
        "INSERT INTO portal_auditevent (sequence, occurred_at, actor_label, action, target_type, target_id,"
        " target_label, details, previous_digest, digest) VALUES (3, %s, 'mallory', 'grant.created', '', '',"
        " '', '{}', %s, %s)",
        [events[2].occurred_at, events[1].digest, events[2].digest],
    )

    report = audit_verify_chain()

    assert not report.intact
    assert report.first_bad_sequence == 3


def test_the_orm_refuses_to_change_or_delete_events() -> None:
    event = _three_events()[0]

    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.all().delete()
    assert audit_verify_chain().intact
