"""The directory in a real browser: an engineer signs in (password + TOTP), finds a link with the
keyboard alone and opens it, copies a link's address and uses it (recorded like a click), stars a
link and asks why it is there; at a phone's width and a desktop's every link name is readable, and
"acme eng" finds exactly Acme's Engineer links.

There is no internet here: the navigation to signin.aws.amazon.com is intercepted and answered
with a tiny page, after checking it is exactly the URL the portal built."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyotp
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from portal.audit.models import AuditEvent
from switchroles import services, views
from switchroles.models import AccountRole, LinkUse
from tests.conftest import PASSWORD, MakePerson
from tests.switchroles.conftest import Estate, tier

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CONSOLE = "https://signin.aws.amazon.com/**"
NARROWEST_NAME_PX = 120


@pytest.fixture
def estate(transactional_db: None) -> Estate:
    return Estate()


@pytest.fixture
def engineer(make_person: MakePerson, estate: Estate, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Eli, in a team granted Acme's Engineer and On-call roles (2 accounts), Globex's On-call and
    Initech's Engineer role; a fourth client nobody granted (AWS enforcement is tested elsewhere)."""
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)
    manager = make_person("morgan", "Manager")
    person = make_person("eli", "Engineer", first_name="Eli")
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    globex = estate.client_with_roles("Globex Logistics")
    initech = estate.client_with_roles("Initech")
    estate.client_with_roles("Umbrella Health")
    team = services.team_create(name="Platform engineers", iam_group_name="platform", created_by=manager)
    services.team_member_add(team=team, person=person, added_by=manager)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer"), tier("oncall")],
                          reason="x")
    services.grant_create(granted_by=manager, team=team, client=globex, templates=[tier("oncall")], reason="y")
    services.grant_create(granted_by=manager, team=team, client=initech, templates=[tier("engineer")], reason="z")
    return person


@contextmanager
def desktop_page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh 1280 x 900 browser context, closed afterwards."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def sign_in(page: Page, base: str, person: Any) -> None:
    page.goto(f"{base}/links/")
    page.get_by_label("Username or email").fill(person.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.get_by_label("Code").fill(pyotp.TOTP(person.totp_secret).now())
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="My switch-role links")).to_be_visible()


def console_stand_in(page: Page) -> list[str]:
    requests: list[str] = []

    def answer(route: Route) -> None:
        requests.append(route.request.url)
        route.fulfill(status=200, content_type="text/html",
                      body="<!doctype html><title>Switch Role</title><h1>AWS console (stand-in)</h1>")

    page.context.route(CONSOLE, answer)
    return requests


def visible_name_widths(page: Page) -> list[float]:
    return page.eval_on_selector_all(
        "#directory a.go, #directory .name",
        "els => els.filter(e => e.offsetParent !== null).map(e => e.getBoundingClientRect().width)")


def test_at_phone_and_desktop_widths_names_are_readable_and_the_filter_matches_all_words(
    live_server: Any, browser: Browser, engineer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a directory large enough (for this test) that clients start collapsed
    monkeypatch.setattr(views, "SMALL_DIRECTORY_LINKS", 3)
    acme_engineer = set(AccountRole.objects.filter(account__client__slug="acme-retail", template__tier="engineer")
                        .values_list("display_name", flat=True))
    assert len(acme_engineer) == 2
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        sign_in(page, live_server.url, engineer)
        for width in (390, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{live_server.url}/links/")
            # when a collapsed client is opened, then its rows are there, every name at least 120 px wide
            acme = page.locator('[data-client="acme-retail"]')
            expect(acme.locator("a.go")).to_have_count(0)
            acme.locator("summary").click()
            expect(acme.locator("a.go")).to_have_count(4)
            widths = visible_name_widths(page)
            assert len(widths) == 4 and min(widths) >= NARROWEST_NAME_PX, (width, widths)
            # and no row is taller than a few lines (the name is not squeezed to a letter per line)
            heights = page.eval_on_selector_all("#directory .link-row", "els => els.filter(e => e.offsetParent)"
                                                ".map(e => e.getBoundingClientRect().height)")
            assert max(heights) < 160, (width, heights)
            # when they filter with two words in another order and case, then exactly Acme's Engineer links
            page.get_by_label("Filter links").fill("acme eng")
            results = page.locator("#results-list a.go")
            expect(results).to_have_count(2)
            assert set(results.all_inner_texts()) == acme_engineer
            expect(page.locator("#link-filter-count")).to_have_text("2 of 6 links")
            assert min(visible_name_widths(page)) >= NARROWEST_NAME_PX
            page.get_by_label("Filter links").fill("ENG Acme")
            expect(results).to_have_count(2)
            # and the exact display name shown finds that link
            page.get_by_label("Filter links").fill("Initech / Account 1 / Engineer")
            expect(results).to_have_count(1)
        # and a deep link filters on the server too (what a browser without JavaScript shows)
        page.goto(f"{live_server.url}/links/?q=acme+eng")
        expect(page.get_by_label("Filter links")).to_have_value("acme eng")
        expect(page.locator("#results-list a.go")).to_have_count(2)
    finally:
        context.close()


def test_keyboard_only_an_engineer_finds_and_opens_a_link_and_copied_addresses_are_recorded(
    live_server: Any, browser: Browser, engineer: Any
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    globex_oncall = AccountRole.objects.get(account__client__slug="globex-logistics", template__tier="oncall")
    console_requests = console_stand_in(page)
    try:
        sign_in(page, live_server.url, engineer)

        # when they star an Acme link (htmx, no reload) and reload, it is listed under Favourites
        acme_group = page.locator('[data-client="acme-retail"]')
        acme_group.locator("button.star").first.click()
        expect(acme_group.locator('button.star[aria-pressed="true"]')).to_have_count(1)
        page.reload()
        favourites = page.locator("section", has=page.get_by_role("heading", name="Favourites"))
        expect(favourites.locator("a.go")).to_have_count(1)

        # when they ask why they can see Globex's link, then the team's grant is named under it,
        # and asking again closes it
        globex_group = page.locator('[data-client="globex-logistics"]')
        why = globex_group.get_by_role("link", name="Why?")
        why.click()
        expect(globex_group.locator("li.why-row")).to_contain_text("Your team Platform engineers")
        why.click()
        expect(globex_group.locator("li.why-row")).to_have_count(0)

        # when they copy a link's address, then it is the portal's /go/ address, and opening it is
        # recorded like a click
        globex_group.get_by_role("button", name="Copy URL").click()
        expect(globex_group.get_by_role("button", name="Copied")).to_be_visible()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == f"{live_server.url}/go/{globex_oncall.pk}/"
        # (pasted into the address bar: a navigation the page starts, which the console stand-in answers)
        page.evaluate("url => { window.location.href = url; }", copied)
        expect(page.get_by_role("heading", name="AWS console (stand-in)")).to_be_visible()
        assert page.url == globex_oncall.switch_role_url
        assert LinkUse.objects.filter(account_role=globex_oncall).count() == 1

        # when, keyboard only, they press "/", type part of a name, choose with the arrow key and press Enter
        page.goto(f"{live_server.url}/links/")
        page.keyboard.press("/")
        expect(page.get_by_label("Filter links")).to_be_focused()
        page.keyboard.type("glob on")
        expect(page.locator("#link-filter-count")).to_have_text("1 of 6 links")
        page.keyboard.press("ArrowDown")
        expect(page.locator("#results-list .link-row.is-active")).to_have_count(1)
        page.keyboard.press("Enter")
        # then the browser is sent to exactly the switch-role URL the portal built, and the use recorded
        expect(page.get_by_role("heading", name="AWS console (stand-in)")).to_be_visible()
        assert page.url == globex_oncall.switch_role_url
        assert console_requests == [globex_oncall.switch_role_url] * 2
        uses = LinkUse.objects.filter(account_role=globex_oncall)
        assert uses.count() == 2 and {use.client_ip for use in uses} == {"127.0.0.1"}
        assert AuditEvent.objects.filter(action="link.used", actor=engineer,
                                         target_id=str(globex_oncall.pk)).count() == 2
    finally:
        context.close()


def test_rows_the_filter_draws_carry_the_mark_of_a_link_aws_would_refuse(
    live_server: Any, browser: Browser, engineer: Any
) -> None:
    # given the engineer's profile lost its IAM user name, so AWS refuses every one of their links
    type(engineer).objects.filter(pk=engineer.pk).update(iam_username="")
    with desktop_page(browser) as page:
        sign_in(page, live_server.url, engineer)
        # when they filter (the rows are drawn in the page from its index)
        page.get_by_label("Filter links").fill("acme eng")
        rows = page.locator("#results-list .link-row")
        expect(rows).to_have_count(2)
        # then each row says, in words, that AWS will refuse it and what to do
        for text in rows.all_inner_texts():
            assert "AWS will refuse this link." in text and "no IAM user name" in text and "Ask a manager" in text


def test_a_star_on_a_row_the_filter_drew_makes_the_link_a_favourite(
    live_server: Any, browser: Browser, engineer: Any
) -> None:
    with desktop_page(browser) as page:
        sign_in(page, live_server.url, engineer)
        # when they filter to Globex's link and star it in the matching links (a row drawn in the page)
        page.get_by_label("Filter links").fill("glob on")
        row = page.locator("#results-list .link-row")
        expect(row).to_have_count(1)
        row.locator("button.star").click()
        # then the star is on without a reload, and after one the link is listed under Favourites
        expect(row.locator('button.star[aria-pressed="true"]')).to_have_count(1)
        page.reload()
        favourites = page.locator("section", has=page.get_by_role("heading", name="Favourites"))
        expect(favourites.locator("a.go")).to_have_count(1)
        expect(favourites.locator("a.go")).to_contain_text("Globex Logistics")


def test_many_clients_are_listed_in_batches_and_a_deep_link_opens_one_of_them(
    live_server: Any, browser: Browser, engineer: Any, estate: Estate, make_person: MakePerson,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    # given the engineer is also granted 29 more clients' Engineer role (32 clients, 2 batches), and
    # clients start closed
    monkeypatch.setattr(views, "SMALL_DIRECTORY_LINKS", 3)
    manager = make_person("mona", "Manager")
    for number in range(29):
        extra = estate.client_with_roles(f"Zeta {number:02d}")
        services.grant_create(granted_by=manager, person=engineer, client=extra, templates=[tier("engineer")],
                              reason="x")
    with desktop_page(browser) as page:
        sign_in(page, live_server.url, engineer)
        # then the clients come in batches of views.CLIENTS_PER_BATCH
        expect(page.locator(".client-batch")).to_have_count(2)
        expect(page.locator(".client-batch").first.locator("details.client-links")).to_have_count(
            views.CLIENTS_PER_BATCH)
        # when they follow a deep link to the last client (in the second batch, off screen)
        page.goto(f"{live_server.url}/links/?client=zeta-28#client-zeta-28")
        # then it is open and its link scrolled onto the screen
        client = page.locator("#client-zeta-28")
        expect(client).to_have_attribute("open", "")
        expect(client.locator("a.go")).to_be_in_viewport()
