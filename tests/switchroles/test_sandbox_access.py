"""The sandbox's demo access: a team with the demo engineer, some tiers of the demo clients."""

from __future__ import annotations

from typing import Any

import pytest

from onboarding.models import Client
from portal.sandbox import sandbox_demo_users_ensure
from switchroles import services
from switchroles.models import Grant, Team
from switchroles.sandbox import DEMO_TEAM_NAME, sandbox_demo_access_ensure
from switchroles.selectors import links_for_person

from .conftest import Estate


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


def test_without_demo_clients_it_does_nothing(db: None, aws: Any) -> None:
    sandbox_demo_users_ensure()
    assert sandbox_demo_access_ensure(clients=aws) is None
    assert not Team.objects.exists() and not Grant.objects.exists()


def test_it_grants_some_tiers_of_the_demo_clients_and_is_idempotent(estate: Estate, aws: Any) -> None:
    # given the demo people and the two demo clients with all three tiers
    people = {person.username: person for person in sandbox_demo_users_ensure()}
    estate.client_with_roles("Acme Retail", accounts=2)
    estate.client_with_roles("Globex Logistics")
    # when the demo access is ensured twice
    team = sandbox_demo_access_ensure(clients=aws)
    sandbox_demo_access_ensure(clients=aws)
    # then one team with the engineer has Engineer + On-call on Acme and On-call on Globex, once each
    assert team is not None and team.name == DEMO_TEAM_NAME
    assert list(team.memberships.values_list("person__username", flat=True)) == ["engineer"]
    tiers = {
        grant.client.name: sorted(t.tier for t in grant.templates.all())  # type: ignore[union-attr]
        for grant in Grant.objects.filter(team=team)
    }
    assert tiers == {"Acme Retail": ["engineer", "oncall"], "Globex Logistics": ["oncall"]}
    assert Grant.objects.count() == 2
    # so the engineer sees some links but not the administrator ones
    links = links_for_person(person=people["engineer"])
    assert links.count() == 5
    assert not links.filter(template__tier="administrator").exists()
    assert Client.objects.count() == 2
    # and the demo people's IAM users exist in the simulated main account
    iam = aws.client("iam")
    assert iam.get_user(UserName="eli.engineer")["User"]["UserName"] == "eli.engineer"


def test_a_grant_revoked_in_the_sandbox_is_not_made_again(estate: Estate, aws: Any) -> None:
    people = {person.username: person for person in sandbox_demo_users_ensure()}
    estate.client_with_roles("Acme Retail")
    sandbox_demo_access_ensure(clients=aws)
    services.grant_revoke(grant=Grant.objects.get(), revoked_by=people["manager"], reason="trying it out")
    sandbox_demo_access_ensure(clients=aws)
    assert Grant.objects.count() == 1
