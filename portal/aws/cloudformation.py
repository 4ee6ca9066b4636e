"""The CloudFormation template a client deploys in an invited account: Switchyard's access role,
least privilege (IAM writes only on roles under ``/switchyard/``). Pure: builds text, calls nothing."""

from __future__ import annotations

import json
from typing import Any, Final

import yaml

from portal.aws.limits import (
    INVITED_ACCESS_ROLE_NAME,
    MANAGED_BY_TAG_KEY,
    MANAGED_BY_TAG_VALUE,
    MIN_SESSION_SECONDS,
    ROLE_NAME_RE,
    require_account_id,
)

ACCESS_ROLE_TAG_KEY: Final = "switchyard-access-role"
# The IAM write actions Switchyard's access role needs for the roles it manages (onboarding,
# roll-out, drift repair, hand-back), and only on roles under /switchyard/.
ACCESS_ROLE_WRITE_ACTIONS: Final = (
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
    "iam:UpdateAssumeRolePolicy",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:AttachRolePolicy",
    "iam:DetachRolePolicy",
    "iam:RemoveRoleFromInstanceProfile",
)


def access_role_trust_policy(*, main_account_id: str, principal_arn: str | dict[str, Any]) -> dict[str, Any]:
    """Trust for Switchyard's access role: the main account, and in it only Switchyard's worker
    principal (``aws:PrincipalArn``), so no other identity of the main account can use the role."""
    require_account_id(main_account_id)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SwitchyardWorkersOnly",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{main_account_id}:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"ArnEquals": {"aws:PrincipalArn": principal_arn}},
            }
        ],
    }


def access_role_policy() -> dict[str, Any]:
    """Least privilege for what Switchyard does in a client's account (CloudFormation syntax: uses
    ``Fn::Sub`` for the account id). IAM writes only on roles under ``/switchyard/``, new ones only
    tagged ``managed-by=switchyard``, AWS managed policies only; an explicit Deny of every such write
    outside that path (the guard that holds whatever else is attached to the role), so the role
    cannot make an administrator anywhere else, nor change itself; read-only IAM to discover the
    roles that already exist."""
    switchyard_roles = {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/switchyard/*"}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ManageSwitchyardRoles",
                "Effect": "Allow",
                "Action": [a for a in ACCESS_ROLE_WRITE_ACTIONS if a != "iam:CreateRole"],
                "Resource": switchyard_roles,
            },
            {
                "Sid": "CreateOnlyTaggedSwitchyardRoles",
                "Effect": "Allow",
                "Action": "iam:CreateRole",
                "Resource": switchyard_roles,
                "Condition": {"StringEquals": {f"aws:RequestTag/{MANAGED_BY_TAG_KEY}": MANAGED_BY_TAG_VALUE}},
            },
            {
                "Sid": "NoIamWritesOutsideSwitchyardPath",
                "Effect": "Deny",
                "Action": list(ACCESS_ROLE_WRITE_ACTIONS),
                "NotResource": switchyard_roles,
            },
            {
                "Sid": "OnlyAwsManagedPolicies",
                "Effect": "Deny",
                "Action": ["iam:AttachRolePolicy"],
                "Resource": "*",
                "Condition": {"ArnNotLike": {"iam:PolicyARN": "arn:aws:iam::aws:policy/*"}},
            },
            {
                "Sid": "ReadIamToDiscoverRoles",
                "Effect": "Allow",
                "Action": ["iam:Get*", "iam:List*"],
                "Resource": "*",
            },
        ],
    }


def access_role_cloudformation_template(
    *, main_account_id: str, principal_arn: str, role_name: str = INVITED_ACCESS_ROLE_NAME
) -> str:
    """YAML CloudFormation template the client deploys in an invited account to create the access
    role Switchyard needs. Parameter ``RoleName`` (default ``role_name``, the name Switchyard will
    assume); trust: the main account's ``principal_arn`` only; permissions: :func:`access_role_policy`
    (no AdministratorAccess). Plain YAML without short-form intrinsics, so ``yaml.safe_load`` reads
    it back; ``cfn-lint`` passes it."""
    require_account_id(main_account_id)
    if not ROLE_NAME_RE.match(role_name):
        raise ValueError(f"{role_name!r} is not a valid IAM role name.")
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": (
            f"Switchyard access role: lets Switchyard (account {main_account_id}) manage the /switchyard/ "
            "console roles in this account, and read its IAM. Nothing else."
        ),
        "Parameters": {
            "RoleName": {
                "Type": "String",
                "Default": role_name,
                "AllowedPattern": r"[\w+=,.@-]{1,64}",
                "Description": (
                    "The access role's name. Keep the default unless your account manager gave you another one. "
                    "Do not use OrganizationAccountAccessRole if your account already has a role of that name."
                ),
            },
            "SwitchyardPrincipalArn": {
                "Type": "String",
                "Default": principal_arn,
                "Description": "The identity Switchyard's workers run as, in the managed-services account.",
            },
        },
        "Resources": {
            "SwitchyardAccessRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": {"Ref": "RoleName"},
                    "Description": f"Switchyard (account {main_account_id}) manages /switchyard/ roles here",
                    "MaxSessionDuration": MIN_SESSION_SECONDS,
                    "AssumeRolePolicyDocument": access_role_trust_policy(
                        main_account_id=main_account_id, principal_arn={"Ref": "SwitchyardPrincipalArn"}
                    ),
                    "Policies": [{"PolicyName": "switchyard-access", "PolicyDocument": access_role_policy()}],
                    "Tags": [{"Key": ACCESS_ROLE_TAG_KEY, "Value": "true"}],
                },
            }
        },
        "Outputs": {
            "RoleArn": {
                "Description": "The access role's ARN (Switchyard finds the role by its name; nothing to send back).",
                "Value": {"Fn::GetAtt": ["SwitchyardAccessRole", "Arn"]},
            }
        },
    }
    header = (
        "# Switchyard access role.\n"
        "# Deploy it in your AWS account (any region), signed in as an administrator, for example:\n"
        "#   aws cloudformation deploy --template-file switchyard-access-role.yaml \\\n"
        "#     --stack-name switchyard-access-role --capabilities CAPABILITY_NAMED_IAM\n"
        "# Then tell your account manager, who clicks \"Verify access now\" in Switchyard.\n"
        "#\n"
        f"# The role is called {role_name}. If your account came from another AWS Organization it may\n"
        "# already have an OrganizationAccountAccessRole that trusts that Organization's management\n"
        "# account: leave it alone (or delete it once you no longer need it). Do not reuse that name:\n"
        "# CloudFormation would stop with EntityAlreadyExists.\n"
    )
    # A JSON round trip copies shared sub-documents, so YAML writes no aliases (CloudFormation refuses them).
    plain = json.loads(json.dumps(template))
    return header + yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, width=100)
