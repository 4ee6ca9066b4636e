"""The sandbox's moto server gives each account an id derived from its e-mail, so the simulated
Organization can be rebuilt after a restart with the same ids."""

from __future__ import annotations

import boto3
from moto import mock_aws

from portal.sandbox_aws import install_stable_account_ids
from portal.sandbox_moto.accounts import account_id_for_email


def test_account_ids_are_twelve_digits_and_stable() -> None:
    first = account_id_for_email("awsaccounts+acme@example.com")

    assert first == account_id_for_email("AwsAccounts+Acme@example.com ")
    assert len(first) == 12 and first.isdigit()
    assert first != account_id_for_email("awsaccounts+globex@example.com")


def test_created_accounts_get_the_id_of_their_email() -> None:
    undo = install_stable_account_ids()
    try:
        with mock_aws():
            organizations = boto3.client("organizations", region_name="us-east-1")
            organizations.create_organization(FeatureSet="ALL")

            status = organizations.create_account(Email="awsaccounts+acme@example.com", AccountName="Acme")
    finally:
        undo()

    assert status["CreateAccountStatus"]["AccountId"] == account_id_for_email("awsaccounts+acme@example.com")
