"""The directory page: grouped by client, tier chips, favourites, recently used, copy and "why"."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from portal.audit.models import AuditEvent
from switchroles import services
from switchroles.models import AccountRole, Favourite
from switchroles.selectors import links_for_person

from .conftest import Estate, tier

SignedIn = Callable[[Any], HttpClient]


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


@pytest.fixture
def eli(estate: Estate, manager: Any, engineer: Any) -> Any:
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    globex = estate.client_with_roles("Globex Logistics")
    team = services.team_create(name="Platform engineers", iam_group_name="platform", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer"), tier("oncall")],
                          reason="runs Acme")
    services.grant_create(granted_by=manager, person=engineer, client=globex, templates=[tier("oncall")],
                          reason="Globex incident")
    return engineer


def test_links_are_grouped_by_client_with_palette_chips_and_copy_buttons(eli: Any, signed_in: SignedIn) -> None:
    page = signed_in(eli).get(reverse("switchroles:directory")).content.decode()
    # then clients appear in order, each as a group the filter can hide
    assert re.findall(r'data-client="([^"]+)"', page) == ["acme-retail", "globex-logistics"]
    # and tiers wear their console colour as a class (no inline style), each row with a copy button
    assert 'class="chip chip-83d4e8">Engineer<' in page and 'class="chip chip-b7ca9d">On-call support<' in page
    assert "style=" not in page
    rows = re.findall(r'<li class="link-row" data-id="([1-9]\d*)">.*?</li>', page)  # 0: the rows' template
    assert sorted(map(int, rows)) == sorted(links_for_person(person=eli).values_list("pk", flat=True))
    assert page.count("data-copy-link") == len(rows) + 1  # and the template directory.js draws rows from
    # and nothing on the page leaves for AWS but through /go/ (Copy URL copies the /go/ address)
    assert "signin.aws.amazon.com" not in page
    assert 'name="q"' in page


def test_favourites_toggle_with_htmx_and_show_first(eli: Any, signed_in: SignedIn) -> None:
    role = AccountRole.objects.get(account__client__slug="globex-logistics", template__tier="oncall")
    browser = signed_in(eli)
    # when the engineer stars a link through htmx
    fragment = browser.post(reverse("switchroles:favourite", args=[role.pk]), HTTP_HX_REQUEST="true")
    # then the star is pressed and the directory lists it under Favourites
    assert b'aria-pressed="true"' in fragment.content and b"<html" not in fragment.content
    page = browser.get(reverse("switchroles:directory")).content.decode()
    favourites = page.split('id="h-favourites"')[1].split("</section>")[0]
    assert role.display_name in favourites
    # when starred again, it is no longer a favourite
    browser.post(reverse("switchroles:favourite", args=[role.pk]))
    assert not Favourite.objects.exists()
    assert AuditEvent.objects.filter(action__startswith="link.favourite_").count() == 2


def test_recently_used_links_are_listed_newest_first(eli: Any, signed_in: SignedIn) -> None:
    browser = signed_in(eli)
    first, second = links_for_person(person=eli).filter(account__client__slug="acme-retail").order_by("pk")[:2]
    browser.get(reverse("switchroles:go", args=[first.pk]))
    browser.get(reverse("switchroles:go", args=[second.pk]))
    page = browser.get(reverse("switchroles:directory")).content.decode()
    recent = page.split('id="h-recent"')[1].split("</section>")[0]
    assert recent.index(f"/go/{second.pk}/") < recent.index(f"/go/{first.pk}/")


def test_why_names_the_team_and_personal_grants(eli: Any, manager: Any, signed_in: SignedIn) -> None:
    # given an Acme link reached through the team, and the same role granted personally too
    role = AccountRole.objects.filter(account__client__slug="acme-retail", template__tier="engineer").first()
    assert role is not None
    services.grant_create(granted_by=manager, person=eli, account=role.account, templates=[tier("engineer")],
                          reason="pairing on the migration")
    # when the engineer asks why (as htmx would)
    fragment = signed_in(eli).get(reverse("switchroles:why", args=[role.pk]), HTTP_HX_REQUEST="true")
    text = fragment.content.decode()
    # then both grants are named, with who granted them, since when, and the expiry
    assert "Your team <strong>Platform engineers</strong>" in text
    assert "<strong>personal grant</strong>" in text and "pairing on the migration" in text
    assert f"granted by {manager}" in text and "with no expiry" in text
    # and the answer is the list item the directory inserts under the link's own row
    assert text.startswith(f'<li class="why-row" id="why-{role.pk}"') and "<html" not in text


def test_names_from_the_database_are_escaped_in_every_list(
    make_person: Any, manager: Any, estate: Estate, signed_in: SignedIn
) -> None:
    # given a client and an account whose names carry HTML's special characters and a "…"
    person = make_person("dana", "Engineer")
    client = estate.client("O'Brien & <Sons> \"Retail\"", slug="obrien-sons")
    estate.role(estate.account(client, name="<script>alert(1)</script>…"), "engineer")
    services.grant_create(granted_by=manager, person=person, client=client, templates=[tier("engineer")],
                          reason="x")
    role = links_for_person(person=person).get()
    browser = signed_in(person)
    browser.get(reverse("switchroles:go", args=[role.pk]))  # so it is listed under "Recently used" too
    # when the engineer opens the directory
    page = browser.get(reverse("switchroles:directory")).content.decode()
    # then no name reaches the page as markup, in the client's section, the lists or the filter's index
    assert "<script>alert" not in page and "<Sons>" not in page
    assert "O&#x27;Brien &amp; &lt;Sons&gt; &quot;Retail&quot;" in page  # the client's heading
    # (the link in the recently-used list and in its client's section)
    assert page.count(f'<a class="go name" href="/go/{role.pk}/">O&#x27;Brien &amp; &lt;Sons&gt;') == 2
    assert "\\u003Cscript\\u003Ealert(1)" in page  # the index
