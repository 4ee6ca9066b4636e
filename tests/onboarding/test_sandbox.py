"""The sandbox's demo clients are onboarded through the real request, once."""

from __future__ import annotations

import pytest

from onboarding.models import AwsAccount, Client
from onboarding.sandbox import sandbox_demo_clients_ensure
from portal.aws import Boto3ClientFactory
from portal.sandbox import sandbox_demo_users_ensure

pytestmark = pytest.mark.django_db


def test_demo_clients_are_requested_by_the_demo_manager_once(org: Boto3ClientFactory) -> None:
    # given the sandbox's demo people
    sandbox_demo_users_ensure()

    # when the sandbox comes up twice
    first = sandbox_demo_clients_ensure(clients=org)
    second = sandbox_demo_clients_ensure(clients=org)

    # then two clients with three accounts were requested, by the manager, the first time only
    assert sorted((a.client.slug, a.name) for a in first) == [
        ("acme", "production"), ("acme", "staging"), ("globex", "production")
    ]
    assert second == []
    assert Client.objects.count() == 2
    assert {a.requested_by.username for a in AwsAccount.objects.all()} == {"manager"}
    assert set(AwsAccount.objects.values_list("root_email", flat=True)) == {
        "awsaccounts+acme-production@example.com", "awsaccounts+acme-staging@example.com",
        "awsaccounts+globex-production@example.com",
    }
    assert AwsAccount.objects.get(client__slug="acme", name="production").roles.count() == 3
