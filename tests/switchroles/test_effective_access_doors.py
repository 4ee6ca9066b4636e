"""Doors into client accounts (moto): a role that trusts the main account or an account outside
the Organization and is not Switchyard's is reported with its trust policy, tagged or not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import reverse

from onboarding.models import AwsAccount
from portal.aws import Boto3ClientFactory
from switchroles import drift
from switchroles.models import AccessFinding
from tests.onboarding.conftest import MAIN_ACCOUNT_ID, mocked_organization, request_account
from tests.onboarding.handback_support import member_iam, onboard

__all__ = ["request_account"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


def trusting(*principals: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": list(principals)}}]})


def test_roles_trusting_outsiders_or_the_main_account_are_doors_into_the_client(
    org: Boto3ClientFactory, request_account: Any, auditor: Any, signed_in: Any
) -> None:
    # given an onboarded account where someone made roles by hand
    account: AwsAccount = onboard(request_account, org)
    iam = member_iam(org, account.account_id)
    iam.create_role(RoleName="vendor-access", Path="/switchyard/acme/",
                    AssumeRolePolicyDocument=trusting("arn:aws:iam::999999999999:root"))
    iam.create_role(RoleName="old-admin", Path="/ops/legacy/",
                    AssumeRolePolicyDocument=trusting(f"arn:aws:iam::{MAIN_ACCOUNT_ID}:root"),
                    Tags=[{"Key": "managed-by", "Value": "switchyard"}])
    iam.create_role(RoleName="inside-only", AssumeRolePolicyDocument=trusting(
        f"arn:aws:iam::{account.account_id}:root"))
    # when the drift check looks into the account
    drift.drift_check_run(clients=org)
    # then the untagged foreign-trusting role and the tagged main-trusting one outside /switchyard/
    # are doors, with their trust policies; Switchyard's roles and a role trusting its own account are not
    doors = {f.role_arn.rsplit("/", 1)[-1]: f for f in AccessFinding.objects.filter(kind=AccessFinding.Kind.DOOR,
                                                                                    resolved_at__isnull=True)}
    assert set(doors) == {"vendor-access", "old-admin"}
    assert doors["vendor-access"].principal_name == "account 999999999999"
    assert "999999999999" in doors["vendor-access"].statement_json
    assert doors["vendor-access"].detail.startswith(f"Door into {account.client.name}")
    assert doors["old-admin"].principal_name == "the main account"
    page = signed_in(auditor).get(reverse("switchroles:drift")).content.decode()
    assert "vendor-access" in page and "Door into a client" in page
    # when the vendor role is deleted, the next check resolves that door
    iam.delete_role(RoleName="vendor-access")
    drift.drift_check_run(clients=org)
    assert set(AccessFinding.objects.filter(kind=AccessFinding.Kind.DOOR, resolved_at__isnull=True)
               .values_list("role_arn", flat=True)) == {doors["old-admin"].role_arn}
