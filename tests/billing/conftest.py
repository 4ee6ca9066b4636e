"""Billing fixtures: moto's Cost Explorer with queued answers, clients and accounts, a finance person.

moto answers ``GetCostAndUsage`` with what was queued at ``/moto-api/static/ce/cost-and-usage-results``:
a FIFO; the first request with a given body takes the next answer and keeps it. Billing asks two
questions per month (by record type, then by service), each page a request of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
import requests
from django.test import Client as HttpClient
from moto import mock_aws

from onboarding.models import AwsAccount, Client
from portal.aws import Boto3ClientFactory, month_bounds
from portal.people.models import User
from tests.conftest import MakePerson
from tests.factories import make_account, make_client

QUEUE_URL = "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results"


def ce_answer(month: date, groups: list[tuple[str, str, str, str]], *, estimated: bool = False,
              token: str | None = None, unit: str = "USD") -> dict[str, Any]:
    """A GetCostAndUsage answer: groups of (account id, record type or service, unblended, net)."""
    start, end = month_bounds(month)
    answer: dict[str, Any] = {
        "GroupDefinitions": [{"Type": "DIMENSION", "Key": "LINKED_ACCOUNT"},
                             {"Type": "DIMENSION", "Key": "RECORD_TYPE"}],
        "ResultsByTime": [{
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
            "Total": {},
            "Groups": [
                {"Keys": [account, key], "Metrics": {"UnblendedCost": {"Amount": unblended, "Unit": unit},
                                                     "NetUnblendedCost": {"Amount": net, "Unit": unit}}}
                for account, key, unblended, net in groups
            ],
            "Estimated": estimated,
        }],
        "DimensionValueAttributes": [],
    }
    if token:
        answer["NextPageToken"] = token
    return answer


def queue(*answers: dict[str, Any]) -> None:
    response = requests.post(QUEUE_URL, json={"results": list(answers)}, timeout=5)
    assert response.status_code == 201


@pytest.fixture
def cost_explorer(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    """moto in-process, reached through the portal's own client factory (the one workers use)."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in {"AWS_PROFILE", "AWS_SESSION_TOKEN"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AWS_ENDPOINT_URL = ""
    with mock_aws():
        yield Boto3ClientFactory(region_name="us-east-1")


@dataclass
class CountingFactory:
    """A client factory that counts the Cost Explorer clients asked for, and fails the test if asked."""

    calls: list[str] = field(default_factory=list)

    def __call__(self) -> CountingFactory:
        return self

    def client(self, service: str, credentials: object = None, **_: object) -> Any:
        self.calls.append(service)
        pytest.fail(f"AWS ({service}) was called when nothing should have been fetched")


@dataclass
class Book:
    acme: Client
    globex: Client
    acme_prod: AwsAccount
    acme_staging: AwsAccount
    globex_prod: AwsAccount


@pytest.fixture
def book(db: None) -> Book:
    acme = make_client("Acme Retail", slug="acme")
    globex = make_client("Globex Logistics", slug="globex")
    return Book(
        acme=acme, globex=globex,
        acme_prod=make_account(acme, "production", "111111111111"),
        acme_staging=make_account(acme, "staging", "111111111112"),
        globex_prod=make_account(globex, "production", "222222222222"),
    )


@pytest.fixture
def finance(make_person: MakePerson) -> User:
    return make_person("fin", "Finance")


@pytest.fixture
def finance_browser(finance: User, signed_in: Any) -> HttpClient:
    return signed_in(finance)
