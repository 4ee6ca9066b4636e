"""The sandbox's demo costs: queued into moto's Cost Explorer and fetched, so billing has figures."""

from __future__ import annotations

import pytest

from billing import selectors, services
from billing.models import CostFetch
from billing.sandbox import UNASSIGNED_ACCOUNT_ID, sandbox_costs_ensure
from onboarding.models import AwsAccount, Client
from onboarding.selectors import suggested_root_email
from portal.aws import Boto3ClientFactory
from portal.sandbox import sandbox_demo_users_ensure
from portal.sandbox_moto.accounts import account_id_for_email
from tests.factories import make_account

pytestmark = pytest.mark.django_db


def test_the_sandbox_has_twelve_months_of_costs_for_the_demo_accounts(
    cost_explorer: Boto3ClientFactory,
) -> None:
    # Given the demo clients' accounts, with the ids the sandbox's moto gives them
    acme = Client.objects.create(name="Acme Retail", slug="acme")
    globex = Client.objects.create(name="Globex Logistics", slug="globex")
    for client, name in ((acme, "production"), (acme, "staging"), (globex, "production")):
        email = suggested_root_email(client_slug=client.slug, account_name=name)
        make_account(client, name, account_id_for_email(email), root_email=email)

    # When the sandbox starts
    fetched = sandbox_costs_ensure(clients=cost_explorer)

    # Then twelve months were fetched; last month is final, has both clients, the unassigned
    # account, and Globex's spike flagged; this month is an estimate
    assert len(fetched) == 12 and all(f.status == CostFetch.Status.SUCCEEDED for f in fetched)
    last = selectors.month_statement(month=services.previous_month(services.current_month()))
    assert last.is_final
    assert [c.client.slug for c in last.clients] == ["acme", "globex"]
    assert [len(c.accounts) for c in last.clients] == [2, 1]
    assert all(c.aws_cost > 0 for c in last.clients)
    assert [a.aws_account_id for a in last.unassigned] == [UNASSIGNED_ACCOUNT_ID]
    assert last.clients[1].anomaly is not None and last.clients[0].anomaly is None
    assert selectors.month_statement(month=services.current_month()).estimated
    history = selectors.client_history(client=acme, month=services.current_month())
    assert all(total > 0 for _, total in history)
    assert AwsAccount.objects.count() == 3

    # And a second start with moto still running fetches nothing; after moto restarted empty, only
    # what is not final (this month), never the closed months
    assert sandbox_costs_ensure(clients=cost_explorer, aws_started_empty=False) == []
    again = sandbox_costs_ensure(clients=cost_explorer, aws_started_empty=True)
    assert [f.month for f in again] == [services.current_month()]


def test_the_demo_people_include_finance(db: None) -> None:
    people = {person.username: person for person in sandbox_demo_users_ensure()}
    assert people["finance"].is_finance and not people["finance"].is_manager
