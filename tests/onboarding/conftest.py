"""Onboarding fixtures: moto Organizations, a factory that fails if AWS is called at all, a driver
that runs the workflow synchronously, and managers who have just re-authenticated."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.test import Client as HttpClient
from django.utils import timezone
from moto import mock_aws

from onboarding import workflow
from onboarding.advance import Advanced, onboarding_advance
from onboarding.models import AwsAccount, Client, OnboardingStep
from onboarding.services import onboarding_request, role_path_for
from portal.aws import Boto3ClientFactory, ClientFactory, TemporaryCredentials
from portal.people.models import User
from switchroles.models import AccountRole, RoleTemplate
from tests.factories import AccountRoleFactory, AwsAccountFactory, ManagedClientFactory, OnboardingStepFactory
from tests.security.support import mark_recently_authenticated

MAIN_ACCOUNT_ID = "123456789012"


def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in {"AWS_PROFILE", "AWS_SESSION_TOKEN"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)


def mocked_organization(
    monkeypatch: pytest.MonkeyPatch, settings: Any, *, managed_policies: bool
) -> Iterator[Boto3ClientFactory]:
    """moto in-process with an Organization, reached through the portal's own client factory (the
    one workers use: ``AWS_ENDPOINT_URL`` is emptied so moto intercepts it)."""
    _isolated_aws_env(monkeypatch)
    settings.AWS_ENDPOINT_URL = ""
    settings.SWITCHYARD_MAIN_ACCOUNT_ID = MAIN_ACCOUNT_ID
    with mock_aws(config={"iam": {"load_aws_managed_policies": managed_policies}}):
        boto3.client("organizations", region_name="us-east-1").create_organization(FeatureSet="ALL")
        yield Boto3ClientFactory(region_name="us-east-1")


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    """An Organization in moto (no AWS managed policies: fast)."""
    yield from mocked_organization(monkeypatch, settings, managed_policies=False)


class AwsMustNotBeCalled:
    """A client factory for requests that must be refused before anything reaches AWS."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def client(self, service: str, credentials: TemporaryCredentials | None = None, **_: Any) -> Any:
        self.calls.append(service)
        raise AssertionError(f"AWS ({service}) was called although the request should have been refused")


@dataclass
class CountingClients:
    """Passes calls through to ``inner`` and counts every AWS operation sent."""

    inner: ClientFactory
    operations: list[str] = field(default_factory=list)

    def client(self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True) -> Any:
        client = self.inner.client(service, credentials, retries=retries)
        # The factory hands out the same client again: count each call once however often it is.
        client.meta.events.register("before-call.*.*", self._count, unique_id=f"counting-{id(self)}")
        return client

    def _count(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)


def make_due(account: AwsAccount) -> None:
    """Time passes: every wait of the account is over."""
    OnboardingStep.objects.filter(account=account, status=OnboardingStep.Status.WAITING).update(
        next_run_at=timezone.now() - timedelta(seconds=1)
    )


def drive(account: AwsAccount, *, clients: ClientFactory, limit: int = 40) -> list[Advanced]:
    """Run the workflow synchronously until nothing is left to do (as workers would, without waiting)."""
    results: list[Advanced] = []
    for _ in range(limit):
        result = onboarding_advance(account_id=account.pk, clients=clients)
        results.append(result)
        if result.outcome in ("idle", "busy"):
            return results
        make_due(account)
    raise AssertionError(f"the workflow did not finish in {limit} runs: {results[-5:]}")


def templates(*role_names: str) -> list[RoleTemplate]:
    chosen = RoleTemplate.objects.filter(role_name__in=role_names) if role_names else RoleTemplate.objects.all()
    return list(chosen.order_by("pk"))


RequestAccount = Callable[..., AwsAccount]


@pytest.fixture
def request_account(manager: User) -> RequestAccount:
    """onboarding_request with sensible defaults (a new client "Acme Retail", a created account)."""

    def request(*, clients: ClientFactory, **overrides: Any) -> AwsAccount:
        values: dict[str, Any] = {
            "actor": manager,
            "client_name": "Acme Retail",
            "client_slug": "acme",
            "origin": AwsAccount.Origin.CREATED,
            "account_name": "production",
            "root_email": "awsaccounts+acme@example.com",
            "templates": templates(),
            "reason": "New managed-services contract",
        }
        values.update(overrides)
        return onboarding_request(clients=clients, **values)

    return request


def mark_reauthenticated(http: HttpClient, user: User) -> HttpClient:
    """As if ``user`` had just confirmed their password and authenticator code (allauth's
    re-authentication; ``portal.web.reauth``: dangerous actions such as a hand-back need both)."""
    return mark_recently_authenticated(http, user)


@pytest.fixture
def manager_http(manager: User, signed_in: Callable[[User], HttpClient]) -> HttpClient:
    return mark_reauthenticated(signed_in(manager), manager)


def make_account(
    *,
    origin: str = AwsAccount.Origin.CREATED,
    at: str | None = None,
    client_slug: str = "acme",
    role_names: tuple[str, ...] = ("SwitchyardOnCall",),
    **fields: Any,
) -> AwsAccount:
    """An account written straight to the database, its steps before ``at`` already done (no AWS):
    its roles PENDING as the request made them, one step per kind of its origin's path."""
    client = Client.objects.filter(slug=client_slug).first() or ManagedClientFactory(
        slug=client_slug, name=client_slug.title() + " Retail")
    values: dict[str, Any] = {
        "client": client, "name": "production", "origin": origin, "state": AwsAccount.State.REQUESTED,
        "root_email": f"awsaccounts+{client_slug}@example.com" if origin == AwsAccount.Origin.CREATED else None,
        "account_id": "210987654321" if origin == AwsAccount.Origin.INVITED else None,
    }
    values.update(fields)
    account = AwsAccountFactory(**values)
    for template in templates(*role_names):
        AccountRoleFactory(account=account, template=template, role_path=role_path_for(client), arn="",
                           state=AccountRole.State.PENDING)
    path = workflow.path_for(origin)
    done = path.index(at) if at else 0
    for position, kind in enumerate(path, start=1):
        OnboardingStepFactory(
            account=account, position=position, kind=kind,
            status=OnboardingStep.Status.SUCCEEDED if position <= done else OnboardingStep.Status.PENDING,
        )
    return account
