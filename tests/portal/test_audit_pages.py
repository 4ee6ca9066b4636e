"""The histories of a link and a person, the event browser and its export, the evidence pack, and
the audit chain's state on the auditors' page."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from portal.audit import audit_record
from portal.audit.models import AuditChainCheck
from portal.chain_checks import audit_chain_check_record
from portal.people.models import User
from switchroles.models import LinkUse
from tests.conftest import MakePerson
from tests.factories import add_member, make_account, make_client, make_grant, make_role, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def estate(make_person: MakePerson) -> dict:
    boss, eli = make_person("boss", "Manager"), make_person("eli", "Engineer")
    earlier = timezone.now() - timedelta(days=10)
    acme = make_client("Acme")
    role = make_role(make_account(acme), "engineer", activated_at=earlier)
    other = make_role(make_account(make_client("Beta")), "engineer", activated_at=earlier)
    ops = make_team("Ops")
    add_member(ops, eli, at=earlier)
    current = make_grant(by=boss, team=ops, client=acme, tiers=("engineer",), at=earlier, reason="run the pager")
    revoked = make_grant(by=boss, person=eli, client=acme, tiers=("engineer",), at=earlier,
                         revoked_at=earlier + timedelta(days=1), reason="temporary fix")
    make_grant(by=boss, person=eli, client=acme, tiers=("administrator",), at=earlier, reason="not this link")
    LinkUse.objects.create(person=eli, account_role=role, grant=current, used_at=timezone.now() - timedelta(hours=2),
                           client_ip="192.0.2.10")
    LinkUse.objects.create(person=eli, account_role=other, grant=None, used_at=timezone.now() - timedelta(hours=1))
    audit_record(action="auth.signed_in", actor=eli, target=eli, client_ip="192.0.2.10")
    audit_record(action="grant.created", actor=boss, target=current, details={"reason": "run the pager"})
    return {"boss": boss, "eli": eli, "acme": acme, "role": role, "current": current, "revoked": revoked}


def text(client: HttpClient, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def test_a_links_history_shows_its_grants_revocations_and_uses(estate: dict, auditor: User, signed_in) -> None:
    page = text(signed_in(auditor), f"/audit/links/{estate['role'].pk}/")

    assert f'id="grant-{estate["current"].pk}"' in page and "run the pager" in page
    assert f'id="grant-{estate["revoked"].pk}"' in page and "revoked" in page and "temporary fix" in page
    assert "not this link" not in page  # an administrator grant does not cover the engineer role
    assert "192.0.2.10" in page  # the use, with its address
    assert page.count("<tr><td><time") == 1  # one use of this link (the other was of Beta's)


def test_a_persons_history_shows_grants_memberships_uses_and_sign_ins(estate: dict, auditor: User,
                                                                     signed_in) -> None:
    page = text(signed_in(auditor), f"/audit/people/{estate['eli'].pk}/")

    assert "Ops" in page and "still a member" in page
    assert f"#{estate['revoked'].pk}" in page and f"#{estate['current'].pk}" in page
    assert "auth.signed_in" in page
    assert page.count("<tr><td><time") == 2  # both uses


def test_unknown_ids_are_404(auditor: User, signed_in) -> None:
    client = signed_in(auditor)
    assert client.get("/audit/links/999999/").status_code == 404
    assert client.get("/audit/people/999999/").status_code == 404
    assert client.get("/audit/clients/999999/evidence.zip").status_code == 404
    assert client.get("/audit/reviews/999999/").status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("action=grant.", {"grant.created"}),
        ("actor=eli", {"auth.signed_in"}),
        ("target=Ops", {"grant.created"}),
        ("action=auth.&actor=boss", set()),
    ],
)
def test_the_event_browser_filters(estate: dict, auditor: User, signed_in, query: str, expected: set) -> None:
    client = signed_in(auditor)
    response = client.get(f"/audit/events.csv?{query}")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[arg-type]

    assert {r["action"] for r in rows} == expected
    page = text(client, f"/audit/events/?{query}")
    assert all(f"<code>{action}</code>" in page for action in expected)


def test_the_event_browser_filters_by_date_range(estate: dict, auditor: User, signed_in) -> None:
    client = signed_in(auditor)
    today = timezone.now().date()
    yesterday = today - timedelta(days=1)

    def actions(query: str) -> list[str]:
        response = client.get(f"/audit/events.csv?{query}")
        return [r["action"] for r in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))]  # type: ignore[arg-type]

    assert actions(f"since={today}&until={today}") == ["auth.signed_in", "grant.created"]
    assert actions(f"until={yesterday}") == []
    assert client.get(f"/audit/events.csv?since={today}&until={yesterday}").status_code == 400


def test_the_events_page_is_paginated(auditor: User, signed_in) -> None:
    for number in range(120):
        audit_record(action="test.bulk", details={"n": number})

    first = text(signed_in(auditor), "/audit/events/?action=test.")
    third = text(signed_in(auditor), "/audit/events/?action=test.&page=3")

    assert "Page 1 of 3" in first and first.count("<code>test.bulk</code>") == 50
    assert third.count("<code>test.bulk</code>") == 20


def test_the_evidence_pack_holds_matrix_grants_uses_and_the_chain(estate: dict, auditor: User, signed_in) -> None:
    audit_chain_check_record()

    response = signed_in(auditor).get(f"/audit/clients/{estate['acme'].pk}/evidence.zip")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))  # type: ignore[arg-type]
    assert set(archive.namelist()) == {"access-matrix.csv", "grant-history.csv", "link-uses.csv",
                                       "root-credentials.csv", "audit-chain.json", "manifest.json"}

    def rows(name: str) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(archive.read(name).decode())))

    assert [(r["person"], r["grant_id"]) for r in rows("access-matrix.csv")] == [("eli", str(estate["current"].pk))]
    assert {r["grant_id"] for r in rows("grant-history.csv")} == {
        str(g.pk) for g in estate["acme"].grants.all()}  # revoked ones included
    assert [r["client"] for r in rows("link-uses.csv")] == ["Acme"]
    chain = json.loads(archive.read("audit-chain.json"))
    assert chain["intact"] is True and chain["last_scheduled_check"]["intact"] is True
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["files"]["access-matrix.csv"] == hashlib.sha256(archive.read("access-matrix.csv")).hexdigest()


def test_a_broken_chain_is_shown_on_the_auditors_page(auditor: User, signed_in) -> None:
    AuditChainCheck.objects.create(intact=False, events_checked=12, first_bad_sequence=7,
                                   problem="event #7 (grant.created) was altered or forged")

    page = text(signed_in(auditor), "/audit/")

    assert "The audit chain is broken" in page and "#7" in page


def test_the_chain_check_is_on_the_beat_schedule() -> None:
    from portal.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "portal.tasks.audit_verify_chain_task" in tasks
