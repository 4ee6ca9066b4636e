"""An auditor signs in (password + TOTP), filters the access matrix by a client, downloads the
CSV, checks its rows, and opens one link's history."""

from __future__ import annotations

import csv
import re
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD, MakePerson
from tests.factories import add_member, make_account, make_client, make_grant, make_role, make_team

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_auditor_filters_downloads_and_opens_a_links_history(live_server: object, page: Page,
                                                             make_person: MakePerson, tmp_path: Path) -> None:
    # given: Acme's engineers through Ops, and a Beta grant the filter must leave out
    boss = make_person("boss", "Manager")
    eli, bo = make_person("eli", "Engineer"), make_person("bo", "Engineer")
    auditor = make_person("audrey", "Auditor", first_name="Audrey")
    earlier = timezone.now() - timedelta(days=2)
    acme, beta = make_client("Acme"), make_client("Beta")
    acme_roles = [make_role(make_account(acme), tier, activated_at=earlier) for tier in ("engineer", "oncall")]
    make_role(make_account(beta), "engineer", activated_at=earlier)
    ops = make_team("Ops")
    add_member(ops, eli, at=earlier)
    add_member(ops, bo, at=earlier)
    team_grant = make_grant(by=boss, team=ops, client=acme, tiers=("engineer", "oncall"), at=earlier)
    make_grant(by=boss, person=bo, client=beta, tiers=("engineer",), at=earlier)
    base = live_server.url  # type: ignore[attr-defined]

    # when: the auditor signs in with a password and a code
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username or email").fill("audrey")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(f"{base}/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(pyotp.TOTP(auditor.totp_secret).now())  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Hello, Audrey")).to_be_visible()

    # … opens the matrix and filters it by Acme
    page.get_by_role("link", name="Audit", exact=True).click()
    expect(page.get_by_role("heading", name="Who can use what")).to_be_visible()
    page.get_by_label("Client", exact=True).select_option(label="Acme")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(rf"/audit/\?client={acme.pk}&"))
    table_rows = page.locator("#access-matrix tbody tr")
    expect(table_rows).to_have_count(4)
    expect(page.locator("#access-matrix")).not_to_contain_text("Beta")

    # … and downloads what it shows
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download these rows (CSV)").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with saved.open(newline="") as handle:
        rows = list(csv.DictReader(handle))

    # then: the CSV holds exactly the rows on the page
    assert {(r["person"], int(r["link_id"]), int(r["grant_id"])) for r in rows} == {
        (person, role.pk, team_grant.pk) for person in ("eli", "bo") for role in acme_roles
    }
    assert {(r["client"], r["via"], r["team"], r["granted_by"]) for r in rows} == {("Acme", "team", "Ops", "boss")}
    shown = {(row.get_attribute("data-person"), row.get_attribute("data-link-id"))
             for row in table_rows.all()}
    assert shown == {(r["person"], r["link_id"]) for r in rows}

    # … and one link's history names the grant and who can use it
    first_link = acme_roles[0]
    row = page.locator(f'#access-matrix tbody tr[data-person="eli"][data-link-id="{first_link.pk}"]')
    row.get_by_role("link", name=first_link.display_name).click()
    expect(page).to_have_url(f"{base}/audit/links/{first_link.pk}/")
    expect(page.get_by_role("heading", name=f"History of a link: {first_link.display_name}")).to_be_visible()
    expect(page.locator(f"#grant-{team_grant.pk}")).to_contain_text("in force")
    expect(page.locator(".can-use-now tbody tr")).to_have_count(2)
