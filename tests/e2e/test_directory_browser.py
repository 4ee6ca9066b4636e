"""An engineer signs in (password + TOTP), filters the directory by typing part of a client's name,
clicks the link, and lands on the exact console Switch Role URL; the use is in the audit log.

There is no internet here: the navigation to signin.aws.amazon.com is intercepted and answered
with a tiny page, after checking it is exactly the URL the portal built."""

from __future__ import annotations

from typing import Any

import pyotp
import pytest
from playwright.sync_api import Page, Route, expect

from portal.models import AuditEvent
from switchroles import services
from switchroles.models import AccountRole, LinkUse
from tests.conftest import PASSWORD, MakePerson
from tests.switchroles.conftest import Estate, tier

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONSOLE = "https://signin.aws.amazon.com/**"


@pytest.fixture
def estate(transactional_db: None) -> Estate:
    return Estate()


def test_engineer_filters_clicks_and_is_sent_to_the_switch_role_url(
    live_server: Any, page: Page, make_person: MakePerson, estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an engineer in a team granted Acme's Engineer roles and Globex's On-call role, and a third
    # client nobody granted (AWS enforcement is tested against moto elsewhere)
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)
    manager = make_person("morgan", "Manager")
    engineer = make_person("eli", "Engineer", first_name="Eli")
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    globex = estate.client_with_roles("Globex Logistics")
    estate.client_with_roles("Initech")
    team = services.team_create(name="Platform engineers", iam_group_name="platform", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    services.grant_create(granted_by=manager, team=team, client=globex, templates=[tier("oncall")], reason="y")
    globex_oncall = AccountRole.objects.get(account__client=globex, template__tier="oncall")
    expected_url = globex_oncall.switch_role_url
    console_requests: list[str] = []

    def console(route: Route) -> None:
        console_requests.append(route.request.url)
        route.fulfill(status=200, content_type="text/html",
                      body="<!doctype html><title>Switch Role</title><h1>AWS console (stand-in)</h1>")

    page.route(CONSOLE, console)
    base = live_server.url

    # when the engineer signs in with a password, then a code from the authenticator
    page.goto(f"{base}/links/")
    page.get_by_label("Username or email").fill("eli")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.get_by_label("Code").fill(pyotp.TOTP(engineer.totp_secret).now())  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="My switch-role links")).to_be_visible()

    # then the directory lists Acme's and Globex's links, and not Initech's
    acme_group = page.locator('[data-client="acme-retail"]')
    globex_group = page.locator('[data-client="globex-logistics"]')
    expect(acme_group.locator("a.go")).to_have_count(2)
    expect(globex_group.locator("a.go")).to_have_count(1)
    expect(page.locator('[data-client="initech"]')).to_have_count(0)

    # when they star an Acme link (htmx, no reload) and reload, it is listed under Favourites
    acme_group.locator("button.star").first.click()
    expect(acme_group.locator('button.star[aria-pressed="true"]')).to_have_count(1)
    page.reload()
    favourites = page.locator("section", has=page.get_by_role("heading", name="Favourites"))
    expect(favourites.locator("a.go")).to_have_count(1)

    # when they ask why they can see Globex's link, then the team's grant is named in a row under it,
    # and asking again closes it
    why = globex_group.get_by_role("link", name="Why can I see this?")
    why.click()
    expect(globex_group.locator("tr.why-row")).to_contain_text("Your team Platform engineers")
    why.click()
    expect(globex_group.locator("tr.why-row")).to_have_count(0)

    # when they filter by an account's name, then only that account's row stays visible
    page.get_by_label("Filter links").fill("account 2")
    expect(page.locator("#link-filter-count")).to_have_text("1 of 3 links")
    expect(globex_group).to_be_hidden()
    page.get_by_label("Filter links").fill("")

    # when they type part of Globex's name, then only Globex's link stays visible, without a reload
    page.get_by_label("Filter links").press_sequentially("glob")
    expect(acme_group).to_be_hidden()
    expect(favourites).to_be_hidden()
    expect(globex_group).to_be_visible()
    expect(page.locator("#link-filter-count")).to_have_text("1 of 3 links")

    # when they click it, then the browser is sent to exactly the switch-role URL the portal built
    globex_group.get_by_role("link", name=globex_oncall.display_name).click()
    expect(page.get_by_role("heading", name="AWS console (stand-in)")).to_be_visible()
    assert page.url == expected_url
    assert console_requests == [expected_url]

    # and the use is recorded: a LinkUse and an audit event naming the person, the role and the address
    use = LinkUse.objects.get()
    assert (use.person_id, use.account_role_id, use.client_ip) == (engineer.pk, globex_oncall.pk, "127.0.0.1")
    event = AuditEvent.objects.get(action="link.used")
    assert (event.actor_id, event.target_id, event.client_ip) == (engineer.pk, str(globex_oncall.pk), "127.0.0.1")
