"""/audit/ and /audit/access.csv: the export is the matrix shown, for the same filters."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from portal.people.models import User
from switchroles.models import Grant
from tests.conftest import MakePerson
from tests.factories import add_member, make_account, make_client, make_grant, make_role, make_team

pytestmark = pytest.mark.django_db

ROW = re.compile(r'<tr data-person="([^"]*)" data-link-id="(\d+)" data-grant-id="(\d+)">')


@pytest.fixture
def estate(make_person: MakePerson) -> dict[str, object]:
    """Acme: 22 people in Ops with engineer + on-call on two accounts (88 rows, two pages), one
    personal administrator grant; Beta: another team's grant that the Acme filter must drop."""
    boss = make_person("boss", "Manager")
    acme, beta = make_client("Acme"), make_client("Beta")
    earlier = timezone.now() - timedelta(days=3)
    for account in (make_account(acme, "Production"), make_account(acme, "Staging")):
        for tier in ("administrator", "engineer", "oncall"):
            make_role(account, tier, activated_at=earlier)
    make_role(make_account(beta), "engineer", activated_at=earlier)
    ops, other = make_team("Ops"), make_team("Other")
    for number in range(22):
        add_member(ops, User.objects.create(username=f"eng{number:02d}"), at=earlier)
    add_member(other, User.objects.create(username="zed"), at=earlier)
    make_grant(by=boss, team=ops, client=acme, tiers=("engineer", "oncall"), at=earlier)
    make_grant(by=boss, person=boss, client=acme, tiers=("administrator",), at=earlier)
    make_grant(by=boss, team=other, client=beta, tiers=("engineer",), at=earlier)
    return {"acme": acme, "beta": beta, "ops": ops}


def shown(client: HttpClient, query: str) -> list[tuple[str, str, str]]:
    """Every row of the matrix page for ``query``, walking the pages in order."""
    rows: list[tuple[str, str, str]] = []
    page = 1
    while True:
        response = client.get(f"/audit/?{query}&page={page}")
        assert response.status_code == 200
        html = response.content.decode()
        rows.extend(ROW.findall(html))
        if 'rel="next"' not in html:
            return rows
        page += 1


def exported(client: HttpClient, query: str) -> list[dict[str, str]]:
    response = client.get(f"/audit/access.csv?{query}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment;")
    assert response.streaming
    text = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("sort", ["", "&sort=since&dir=desc", "&sort=link"])
def test_a_filtered_csv_export_equals_the_matrix_shown(estate: dict, auditor: User, signed_in, sort: str) -> None:
    client = signed_in(auditor)
    query = f"client={estate['acme'].pk}{sort}"

    page_rows = shown(client, query)
    csv_rows = exported(client, query)

    assert len(page_rows) == 22 * 4 + 2  # two pages of the matrix
    assert [(r["person"], r["link_id"], r["grant_id"]) for r in csv_rows] == page_rows
    assert {r["client"] for r in csv_rows} == {"Acme"}


def test_the_export_takes_every_filter(estate: dict, auditor: User, signed_in) -> None:
    client = signed_in(auditor)
    query = f"client={estate['acme'].pk}&team={estate['ops'].pk}&tier=oncall"

    csv_rows = exported(client, query)

    assert shown(client, query) == [(r["person"], r["link_id"], r["grant_id"]) for r in csv_rows]
    assert len(csv_rows) == 22 * 2
    assert {(r["tier"], r["via"], r["team"]) for r in csv_rows} == {("oncall", "team", "Ops")}


def test_the_export_as_of_a_past_moment(estate: dict, auditor: User, signed_in) -> None:
    client = signed_in(auditor)
    before = (timezone.now() - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    recent = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    assert exported(client, f"as_of={before}") == []
    assert len(exported(client, f"as_of={recent}")) == 22 * 4 + 2 + 1
    assert "as of" in client.get(f"/audit/?as_of={recent}").content.decode()


def test_an_invalid_filter_is_refused_not_ignored_in_the_export(auditor: User, signed_in) -> None:
    client = signed_in(auditor)
    future = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    assert client.get("/audit/access.csv?client=abc").status_code == 400
    assert client.get(f"/audit/access.csv?as_of={future}").status_code == 400
    assert client.get("/audit/?client=abc").status_code == 200  # the page shows the error


def test_managers_read_the_matrix_engineers_do_not(manager: User, engineer: User, signed_in) -> None:
    assert signed_in(manager).get("/audit/").status_code == 200
    assert signed_in(manager).get("/audit/access.csv").status_code == 200
    assert signed_in(engineer).get("/audit/").status_code == 403
    assert signed_in(engineer).get("/audit/access.csv").status_code == 403


def test_the_export_writes_times_in_iso_8601_utc(estate: dict, auditor: User, signed_in) -> None:
    rows = exported(signed_in(auditor), f"team={estate['ops'].pk}")
    grant = Grant.objects.get(pk=rows[0]["grant_id"])

    assert datetime.fromisoformat(rows[0]["granted_at"]) == grant.granted_at
    assert rows[0]["granted_at"] == grant.granted_at.isoformat()
    assert rows[0]["since"].endswith("+00:00") and rows[0]["member_since"].endswith("+00:00")
    assert rows[0]["expires_at"] == ""
