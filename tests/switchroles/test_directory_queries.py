"""The directory issues the same small number of SQL queries for 10 links as for 1,000."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from onboarding.models import AwsAccount, Client
from switchroles import services
from switchroles.models import AccountRole, Favourite, LinkUse
from switchroles.selectors import links_for_person
from tests.factories import AccountRoleFactory, AwsAccountFactory

from .conftest import tier

SignedIn = Callable[[Any], HttpClient]
TIERS = ("engineer", "oncall")


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


def estate_granted_to(person: Any, manager: Any, *, links: int, prefix: str) -> None:
    """``links`` active roles (2 tiers per account, 5 accounts per client) granted to ``person``
    client by client, with some favourites and uses; rows made with bulk_create."""
    accounts_needed = links // len(TIERS)
    clients = Client.objects.bulk_create(
        [Client(name=f"{prefix} client {n:04d}", slug=f"{prefix}-{n:04d}") for n in range(max(1, accounts_needed // 5))]
    )
    accounts = AwsAccount.objects.bulk_create([
        AwsAccountFactory.build(client=clients[n % len(clients)], name=f"account {n}", reason="bench")
        for n in range(accounts_needed)
    ])
    for account in accounts:
        account.client = clients[[c.pk for c in clients].index(account.client_id)]
    roles = AccountRole.objects.bulk_create(
        [AccountRoleFactory.build(account=account, template=tier(name)) for account in accounts for name in TIERS]
    )
    for client in clients:
        services.grant_create(granted_by=manager, person=person, client=client,
                              templates=[tier(name) for name in TIERS], reason="bench")
    now = timezone.now()
    Favourite.objects.bulk_create([Favourite(person=person, account_role=role) for role in roles[::7]])
    LinkUse.objects.bulk_create([LinkUse(person=person, account_role=role, used_at=now) for role in roles[::5]])
    assert links_for_person(person=person).count() == links


def directory_queries(browser: HttpClient) -> tuple[int, bytes]:
    url = reverse("switchroles:directory")
    browser.get(url)  # warm: session and caches as on any later visit
    with CaptureQueriesContext(connection) as queries:
        response = browser.get(url)
    assert response.status_code == 200
    return len(queries), response.content


def test_the_directory_costs_the_same_queries_for_10_and_1000_links(
    make_person: Any, manager: Any, signed_in: SignedIn, django_assert_num_queries: Any
) -> None:
    # given one engineer with 10 links and another with 1,000
    few, many = make_person("few", "Engineer"), make_person("many", "Engineer")
    estate_granted_to(few, manager, links=10, prefix="few")
    estate_granted_to(many, manager, links=1000, prefix="many")
    # when each opens the directory
    few_count, few_page = directory_queries(signed_in(few))
    browser = signed_in(many)
    browser.get(reverse("switchroles:directory"))
    with django_assert_num_queries(few_count):
        many_page = browser.get(reverse("switchroles:directory")).content
    # then both pages cost the same small number of queries, and list every link
    assert few_count <= 8
    assert few_page.count(b'<li class="link-row"') >= 10
    assert few_page.count(b'href="/go/') >= 10
    assert many_page.count(b'class="client-links"') == Client.objects.filter(slug__startswith="many-").count()
    assert len(json.loads(many_page.split(b'id="directory-index" type="application/json">')[1]
                          .split(b"</script>")[0])["links"]) == 1000
