"""A client contact signs in with password + TOTP, sees who can reach their production account,
and approves a pending elevation request."""

from __future__ import annotations

import pyotp
import pytest
from playwright.sync_api import Page, expect

from elevations import services
from elevations.models import ApprovalPolicy, ElevationRequest
from switchroles.selectors import links_for_person
from tests.conftest import PASSWORD
from tests.elevations.conftest import Estate, estate, syncs  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_client_contact_sees_who_can_reach_production_and_approves(
    live_server: object, page: Page, estate: Estate  # noqa: F811
) -> None:
    # Given Acme's contact approves elevations, and the engineer asked for Administrator on production
    services.approval_policy_set(client=estate.acme, approvers=ApprovalPolicy.Approvers.CONTACT,
                                 updated_by=estate.manager)
    elevation = services.elevation_request(requester=estate.engineer, account=estate.prod,
                                           template=estate.administrator, duration=30, reason="INC-77 restore")
    base = live_server.url  # type: ignore[attr-defined]

    # When the contact signs in with their password and a code from their authenticator
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username or email").fill("carla")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(f"{base}/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(pyotp.TOTP(estate.contact.totp_secret).now())  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign In").click()

    # Then they land on their client's page, which says who can reach production and why
    expect(page).to_have_url(f"{base}/client/")
    reach = page.get_by_role("table").nth(1)
    expect(reach).to_contain_text("eli")
    expect(reach).to_contain_text("team Team A")
    expect(page.locator("body")).not_to_contain_text("Globex")

    # When they open the waiting request and approve it (signed in with password and code a moment
    # ago, so the one re-authentication rule asks for nothing more within five minutes)
    page.get_by_role("link", name="Elevation requests").click()
    page.get_by_role("link", name=f"#{elevation.pk}").click()
    page.get_by_role("button", name="Approve").click()

    # Then it is in force, and the engineer's directory has the Administrator link
    expect(page.locator("body")).to_contain_text("Approved, in force")
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.ACTIVE
    assert links_for_person(person=estate.engineer).filter(pk=estate.admin_role.pk).exists()
