"""Fixtures for the directory: clients, accounts and active roles, made directly as rows (the
onboarding workflow is tested on its own), and moto standing in for the main account's IAM."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from django.utils import timezone
from moto import mock_aws

from onboarding.models import AwsAccount, Client
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles.links import display_name_for
from switchroles.models import AccountRole, RoleTemplate

_account_numbers = itertools.count(1)


def next_account_id() -> str:
    return f"{200000000000 + next(_account_numbers) * 7:012d}"


def tier(name: str) -> RoleTemplate:
    """A seeded template by tier: "administrator", "engineer" or "oncall"."""
    return RoleTemplate.objects.get(tier=name)


def role_row(account: AwsAccount, template: RoleTemplate, *, state: str = AccountRole.State.ACTIVE) -> AccountRole:
    """An unsaved AccountRole as onboarding publishes it (for bulk_create)."""
    client = account.client
    return AccountRole(
        account=account,
        template=template,
        role_path=f"/switchyard/{client.slug}/",
        role_name=template.role_name,
        arn=f"arn:aws:iam::{account.account_id}:role/switchyard/{client.slug}/{template.role_name}",
        state=state,
        display_name=display_name_for(client.name, account.name, template.name),
        color=template.console_color,
        activated_at=timezone.now() if state == AccountRole.State.ACTIVE else None,
    )


@dataclass
class Estate:
    """Makes clients, accounts and roles."""

    def client(self, name: str, slug: str | None = None) -> Client:
        return Client.objects.create(name=name, slug=slug or name.lower().replace(" ", "-")[:32])

    def account(self, client: Client, name: str = "Production", account_id: str | None = None) -> AwsAccount:
        number = account_id or next_account_id()
        return AwsAccount.objects.create(
            client=client, name=name, account_id=number, root_email=f"awsaccounts+{number}@example.com",
            origin=AwsAccount.Origin.CREATED, state=AwsAccount.State.ACTIVE, reason="test",
        )

    def role(self, account: AwsAccount, tier_name: str, **kwargs: Any) -> AccountRole:
        row = role_row(account, tier(tier_name), **kwargs)
        row.save()
        return row

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
    """Mark the test client's session as freshly re-authenticated with password and authenticator
    code (what allauth's re-authentication pages record), so every action lets it through
    (``portal.web.reauth``: dangerous ones need both)."""
    import time

    session = client.session
    session["account_authentication_methods_user"] = str(user.pk)
    session["account_authentication_methods"] = [
        {"method": "password", "at": time.time(), "username": user.username, "reauthenticated": True},
        {"method": "mfa", "at": time.time(), "type": "totp", "reauthenticated": True},
    ]
    session.save()
    return client
