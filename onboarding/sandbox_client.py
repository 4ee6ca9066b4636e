"""The sandbox plays the client: answer an invitation as the invited account's administrator would.

``accept``: accept the open invitation (the account joins the Organization, JoinedMethod INVITED),
then deploy the access-role CloudFormation template Switchyard gives the manager for that account
(the same text as the download) in that account. ``decline``: decline it. The client's own
credentials are moto's for that account id (the ``x-moto-account-id`` header). Sandbox only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from onboarding.models import AwsAccount
from portal import aws
from portal.sandbox import require_sandbox

STACK_NAME = "switchyard-access-role"
# An account that comes from another Organization: its old role trusts that one's management account.
OLD_MANAGEMENT_ACCOUNT_ID = "999988887777"


@dataclass(frozen=True)
class ClientAnswer:
    account_id: str
    handshake_id: str
    state: str
    stack_status: str = ""
    access_role_arn: str = ""


def client_of(account_id: str, service: str, *, endpoint_url: str | None = None) -> Any:
    """A client acting as account ``account_id`` in the sandbox's moto."""
    return aws.client_acting_as(account_id, service, endpoint_url=endpoint_url or settings.AWS_ENDPOINT_URL or None)


def _open_handshake(organizations: Any) -> dict[str, Any]:
    handshakes = organizations.list_handshakes_for_account(Filter={"ActionType": "INVITE"})["Handshakes"]
    open_ones = [h for h in handshakes if h["State"] in ("OPEN", "REQUESTED")]
    if not open_ones:
        states = ", ".join(f"{h['Id']} {h['State']}" for h in handshakes) or "none"
        raise LookupError(f"No open invitation for this account (invitations: {states}).")
    return dict(open_ones[-1])


def old_access_role_ensure(*, account_id: str, endpoint_url: str | None = None) -> str:
    """Give the account the OrganizationAccountAccessRole an account from another Organization has:
    trusting that Organization's management account, with AdministratorAccess."""
    require_sandbox()
    iam = client_of(account_id, "iam", endpoint_url=endpoint_url)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{OLD_MANAGEMENT_ACCOUNT_ID}:root"},
        "Action": "sts:AssumeRole"}]}
    try:
        return str(iam.create_role(RoleName="OrganizationAccountAccessRole",
                                   AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
    except iam.exceptions.EntityAlreadyExistsException:
        return str(iam.get_role(RoleName="OrganizationAccountAccessRole")["Role"]["Arn"])


def sandbox_client_answer(*, account_id: str, accept: bool, endpoint_url: str | None = None) -> ClientAnswer:
    """Answer the open invitation to ``account_id`` as its client. Accepting also deploys the
    access-role template (stack ``switchyard-access-role``) with the role name Switchyard expects for
    the account. Raises LookupError when no invitation is open."""
    from onboarding.views import access_role_template_for

    require_sandbox()
    organizations = client_of(account_id, "organizations", endpoint_url=endpoint_url)
    handshake = _open_handshake(organizations)
    if not accept:
        answered = organizations.decline_handshake(HandshakeId=handshake["Id"])["Handshake"]
        return ClientAnswer(account_id, answered["Id"], answered["State"])
    answered = organizations.accept_handshake(HandshakeId=handshake["Id"])["Handshake"]
    account = AwsAccount.objects.filter(account_id=account_id).first()
    if account is None:  # not Switchyard's (yet): the template an invited account would get
        account = AwsAccount(account_id=account_id, origin=AwsAccount.Origin.INVITED)
    cloudformation = client_of(account_id, "cloudformation", endpoint_url=endpoint_url)
    cloudformation.create_stack(StackName=STACK_NAME, TemplateBody=access_role_template_for(account),
                                Capabilities=["CAPABILITY_NAMED_IAM"])
    stack = cloudformation.describe_stacks(StackName=STACK_NAME)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return ClientAnswer(account_id, answered["Id"], answered["State"], stack["StackStatus"],
                        outputs.get("RoleArn", ""))
