from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.utils import timezone
from moto import mock_aws

from portal.aws import Boto3ClientFactory
from portal.operations.aws_limits import MAIN_IAM_WRITES, MainAccountLimitedClients
from portal.operations.capacity import rate_take, slot_take
from portal.operations.models import CapacitySlot

pytestmark = pytest.mark.django_db


@pytest.fixture
def factory(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.AWS_ENDPOINT_URL = ""
    with mock_aws():
        yield Boto3ClientFactory(region_name="us-east-1")


def test_a_call_waits_until_a_slot_of_this_second_comes_free() -> None:
    # given both call slots of a 2-per-second pool taken, for another 0.3 s
    for holder in ("a", "b"):
        slot_take(pool="p", holder=holder, capacity=2, lease_seconds=60)
    CapacitySlot.objects.filter(pool="p").update(lease_expires_at=timezone.now() + timedelta(seconds=0.3))

    # when a third call asks
    waited = rate_take(pool="p", per_second=2)

    # then it went only once one of them had run out
    assert waited >= 0.2
    assert CapacitySlot.objects.filter(pool="p", holder__startswith="call:").count() == 1


def test_main_account_iam_writes_take_a_call_slot_and_reads_do_not(factory: Boto3ClientFactory) -> None:
    # given the main account's IAM through the limited factory
    iam = MainAccountLimitedClients(factory, writes_per_second=5).client("iam")

    # when it reads, then writes
    iam.list_groups()
    assert not CapacitySlot.objects.filter(pool=MAIN_IAM_WRITES).exclude(holder="").exists()
    iam.create_group(GroupName="platform-engineers")

    # then only the write held a slot (for one second)
    held = CapacitySlot.objects.filter(pool=MAIN_IAM_WRITES).exclude(holder="")
    assert held.count() == 1
    assert boto3.client("iam", region_name="us-east-1").get_group(GroupName="platform-engineers")


def test_a_bound_of_zero_turns_the_limit_off(factory: Boto3ClientFactory) -> None:
    # given a limited factory with the bound turned off
    iam = MainAccountLimitedClients(factory, writes_per_second=0).client("iam")

    # when the main account writes
    iam.create_group(GroupName="ops")

    # then no slot is involved
    assert not CapacitySlot.objects.filter(pool=MAIN_IAM_WRITES).exists()
