"""Fixtures for the directory: clients, accounts and active roles, made directly as rows (the
onboarding workflow is tested on its own), and moto standing in for the main account's IAM."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from onboarding.models import AwsAccount, Client
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles.models import AccountRole, RoleTemplate
from tests.factories import AccountRoleFactory, make_account, make_client, seeded_template
from tests.security.support import mark_recently_authenticated


def tier(name: str) -> RoleTemplate:
    """A seeded template by tier: "administrator", "engineer" or "oncall"."""
    return seeded_template(name)


@dataclass
class Estate:
    """Makes clients, accounts and roles (``tests.factories``, in the directory tests' words)."""

    def client(self, name: str, slug: str | None = None) -> Client:
        return make_client(name, slug=slug)

    def account(self, client: Client, name: str = "Production", account_id: str | None = None) -> AwsAccount:
        return make_account(client, name=name, account_id=account_id)

    def role(self, account: AwsAccount, tier_name: str, **kwargs: Any) -> AccountRole:
        return AccountRoleFactory(account=account, tier=tier_name, **kwargs)

    def client_with_roles(
        self, name: str, *, accounts: int = 1, tiers: tuple[str, ...] = ("administrator", "engineer", "oncall")
    ) -> Client:
        client = self.client(name)
        for number in range(accounts):
            account = self.account(client, name=f"Account {number + 1}")
            for tier_name in tiers:
                self.role(account, tier_name)
        return client


@pytest.fixture
def estate(db: None) -> Estate:
    return Estate()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    """moto in-process as the main account (123456789012); the portal's own client factory uses it."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    settings.AWS_ENDPOINT_URL = ""
    settings.AWS_REGION = "us-east-1"
    with mock_aws():
        yield Boto3ClientFactory(region_name="us-east-1")


def iam_user_create(person: User) -> None:
    boto3.client("iam", region_name="us-east-1").create_user(UserName=person.iam_username)


def reauthenticated(client: Any, user: User) -> Any:
    """The test client's session as just re-authenticated with password and authenticator code
    (``tests.security.support.mark_recently_authenticated``: every action lets it through)."""
    return mark_recently_authenticated(client, user)
