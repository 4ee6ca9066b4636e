"""Helpers for the hand-back, drift and roll-out tests: accounts onboarded through the real
workflow in moto, a look into a member account, and an Organizations client that refuses to let
an account leave (botocore Stubber) until told otherwise."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from botocore.stub import Stubber

from onboarding.handback import AWS_REQUIREMENTS
from onboarding.models import AwsAccount, Client
from portal import aws
from portal.aws import Boto3ClientFactory, ClientFactory, TemporaryCredentials, allowed_role_arns
from tests.onboarding.conftest import RequestAccount, drive, templates

ALL_CONFIRMED = [key for key, _text in AWS_REQUIREMENTS]


def onboard(
    request_account: RequestAccount,
    clients: ClientFactory,
    *,
    client: Client | None = None,
    name: str = "production",
    role_names: tuple[str, ...] = ("SwitchyardEngineer", "SwitchyardOnCall"),
) -> AwsAccount:
    """An account taken through the real onboarding workflow (moto) until it is ACTIVE."""
    slug = client.slug if client else "acme"
    extra: dict[str, Any] = {"client": client, "client_name": "", "client_slug": ""} if client else {}
    account = request_account(
        clients=clients, account_name=name, root_email=f"awsaccounts+{slug}-{name}@example.com",
        templates=templates(*role_names), **extra,
    )
    drive(account, clients=clients)
    account.refresh_from_db()
    assert account.state == AwsAccount.State.ACTIVE
    return account


def member_iam(clients: ClientFactory, account_id: str) -> Any:
    """The IAM client of a member account, as Switchyard reaches it."""
    credentials = aws.assume_access_role(clients=clients, account_id=account_id, session_name="test-inspector")
    return clients.client("iam", credentials=credentials)


def switchyard_role_names(clients: ClientFactory, account_id: str) -> set[str]:
    return {r["RoleName"] for r in member_iam(clients, account_id).list_roles(PathPrefix="/switchyard/")["Roles"]}


def main_account_allowed(clients: ClientFactory, kind: str, name: str) -> set[str]:
    """The role ARNs the main account's Switchyard policies of an IAM group or user allow (parsed)."""
    iam = clients.client("iam")
    try:
        if kind == "group":
            attached = iam.list_attached_group_policies(GroupName=name)["AttachedPolicies"]
        else:
            attached = iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]
    except iam.exceptions.NoSuchEntityException:
        return set()
    documents = []
    for policy in attached:
        meta = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]
        document = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=meta["DefaultVersionId"])[
            "PolicyVersion"]["Document"]
        documents.append(document if isinstance(document, dict) else json.loads(document))
    account_clients = {a or "": s for a, s in AwsAccount.objects.values_list("account_id", "client__slug")}
    return allowed_role_arns(documents, account_clients=account_clients)


@dataclass
class RefusingOrganizations:
    """Everything goes to ``inner`` (moto), except RemoveAccountFromOrganization while ``refusing``:
    AWS answers ConstraintViolationException with ``reason`` (botocore Stubber)."""

    inner: ClientFactory
    reason: str = "MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED"
    refusing: bool = True
    refused: list[str] = field(default_factory=list)

    def client(self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True) -> Any:
        if service != "organizations" or not self.refusing:
            return self.inner.client(service, credentials, retries=retries)
        # A client of its own: ``inner`` hands its clients out again, and they must stay unstubbed.
        client = Boto3ClientFactory(region_name="us-east-1").client(service, credentials, retries=retries)
        stubber = Stubber(client)
        stubber.add_client_error(
            "remove_account_from_organization",
            service_error_code="ConstraintViolationException",
            service_message="You cannot remove the account from the organization because it is missing "
                            "required information.",
            http_status_code=400,
            modeled_fields={"Reason": self.reason},
        )
        client.meta.events.register("before-parameter-build.organizations.RemoveAccountFromOrganization",
                                    lambda **kwargs: self.refused.append(str(kwargs["params"]["AccountId"])))
        stubber.activate()
        return client
