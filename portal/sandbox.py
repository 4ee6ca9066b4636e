"""The sandbox: demo people with enrolled authenticators, and a moto Organization to work against.

Used by ``manage.py sandbox_up`` (``make run``) and by tests. Refuses to run outside the sandbox.

moto keeps its state in memory, the portal's SQLite database does not: after a restart the
Organization is created anew while the database still has accounts, roles and grants.
:func:`sandbox_aws_restore` rebuilds the simulated AWS from the database (the sandbox's moto server
derives account ids from root e-mails, see ``portal.sandbox_aws``, so the ids come back the same).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import pyotp
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from onboarding.models import AwsAccount
from onboarding.sandbox_client import sandbox_client_answer
from portal import aws
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory
from portal.people.demo import DEMO_PASSWORD, DEMO_USERS, require_sandbox
from portal.people.models import User
from switchroles import enforcement, provisioning
from switchroles.enforcement import SyncReport
from switchroles.models import AccountRole, EnforcedPrincipal
from switchroles.tasks import enforcement_sync

logger = logging.getLogger(__name__)

@transaction.atomic
def sandbox_demo_users_ensure() -> list[User]:
    """Create the demo people (idempotent), each with a password and an enrolled authenticator."""
    require_sandbox()
    people = []
    for username, (group_name, first_name, iam_username) in DEMO_USERS.items():
        user, created = User.objects.get_or_create(
            username=username,
            defaults={
                "first_name": first_name,
                "email": f"{username}@switchyard.example",
                "iam_username": iam_username,
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get(name=group_name))
        if username == "auditor":  # the demo auditor also reviews (separation of duties, issue 18)
            user.groups.add(*Group.objects.filter(name="Reviewer"))
        if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
            TOTP.activate(user, pyotp.random_base32())
            RecoveryCodes.activate(user)
        people.append(user)
    return people


class SandboxOrganization(NamedTuple):
    management_account_id: str
    created: bool  # True when it did not exist: the simulated AWS started empty


def sandbox_organization_ensure(*, clients: ClientFactory, wait_seconds: float = 60) -> SandboxOrganization:
    """Wait for the local moto endpoint, then make sure the main account runs an Organization
    with all features. Says which management account runs it, and whether it had to be created."""
    require_sandbox()
    organizations = aws.organizations_client(clients)
    deadline = time.monotonic() + wait_seconds
    created = False
    while True:
        try:
            management_account_id = str(organizations.describe_organization()["Organization"]["MasterAccountId"])
            return SandboxOrganization(management_account_id, created)
        except organizations.exceptions.AWSOrganizationsNotInUseException:
            organizations.create_organization(FeatureSet="ALL")
            created = True
            logger.info("sandbox.organization.created")
        except Exception:  # the endpoint is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def sandbox_root_access_ensure(*, clients: ClientFactory) -> bool:
    """Turn on centralized root access in the sandbox's Organization (trusted access for IAM, both IAM
    features), as the MSP would once: the root posture of the demo accounts is then checked by the
    workers. Returns True when anything had to be turned on."""
    require_sandbox()
    if aws.root_features(clients=clients).usable:
        return False
    aws.enable_root_features(clients=clients)
    logger.info("sandbox.root_access.enabled")
    return True


# --------------------------------------------------------------------------------------------------
# Rebuilding the simulated AWS after a restart
# --------------------------------------------------------------------------------------------------

RESTORE_SESSION_NAME = "switchyard-sandbox-restore"


@dataclass
class SandboxRestore:
    """What :func:`sandbox_aws_restore` rebuilt, and what it could not (each line says why)."""

    accounts: list[str] = field(default_factory=list)
    invited: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    iam_users: list[str] = field(default_factory=list)
    enforcement: SyncReport | None = None
    enforcement_queued: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def rebuilt_anything(self) -> bool:
        return bool(self.accounts or self.invited or self.roles or self.iam_users or self.problems
                    or (self.enforcement and self.enforcement.applied))


def sandbox_aws_restore(*, clients: ClientFactory) -> SandboxRestore:
    """Rebuild the simulated AWS from the portal's database, for ``sandbox_up`` after moto
    restarted empty. The database is not changed (apart from enforcement's own bookkeeping and one
    audit event); everything is idempotent, so running it twice changes nothing more.

    1. Each *created* account with an id that the Organization lacks is created again with its
       root e-mail and name; the sandbox's moto gives it the same id (checked: a different id is a
       problem, and that account's roles are left alone). Each *invited* one is invited again (the
       sandbox's moto has invitations, ``portal.sandbox_moto.handshakes``) and the sandbox, playing
       the client, accepts and deploys the access-role template (``onboarding.sandbox_client``).
       Handed-back accounts left the Organization: they are not touched.
    2. In each re-created account, every ACTIVE or PROVISIONED ``AccountRole`` is provisioned again
       exactly as the workflow does (``switchroles.provisioning.make_roles_match``).
    3. The main account: the IAM users the grants need (team members, people with personal grants;
       in the sandbox only) are created, then every team's and person's policies are re-applied
       with a forced enforcement sync (an unforced one would skip them as already applied). If
       another sync holds the lock, a forced sync is queued for the workers instead.
    """

    require_sandbox()
    report = SandboxRestore()
    in_organization = {member.id for member in aws.list_accounts(clients=clients)}
    accounts = (
        AwsAccount.objects.filter(account_id__isnull=False)
        .exclude(account_id__in=in_organization)
        .exclude(state=AwsAccount.State.HANDED_BACK)
        .select_related("client")
        .order_by("pk")
    )
    for account in accounts:
        label = f"{account} ({account.account_id})"
        if account.origin == AwsAccount.Origin.INVITED:
            problem = _invited_again(clients=clients, account=account)
            if problem:
                report.problems.append(f"{label}: {problem}")
                continue
            report.invited.append(label)
        elif account.origin != AwsAccount.Origin.CREATED or not account.root_email:
            report.problems.append(f"{label}: only created and invited accounts can be rebuilt.")
            continue
        else:
            problem = _created_again(clients=clients, account=account)
            if problem:
                report.problems.append(f"{label}: {problem}")
                continue
            report.accounts.append(label)
        roles = (
            AccountRole.objects.filter(
                account=account, state__in=[AccountRole.State.ACTIVE, AccountRole.State.PROVISIONED]
            )
            .select_related("template", "account", "account__client")
            .order_by("template_id")
        )
        try:
            credentials = aws.assume_access_role(
                clients=clients, account_id=account.account_id or "", role_name=account.access_role,
                session_name=RESTORE_SESSION_NAME,
            )
            for matched in provisioning.make_roles_match(account=account, roles=roles, clients=clients,
                                                         credentials=credentials):
                arn = matched.result.arn if matched.result else ""
                if matched.role.arn and arn != matched.role.arn:
                    report.problems.append(f"{matched.role.arn}: rebuilt as {arn}.")
                report.roles.append(arn)
        except (AwsError, ValueError) as error:
            report.problems.append(f"{label}: its roles could not be rebuilt: {error}")
    _main_account_enforcement_restore(clients=clients, report=report)
    if report.rebuilt_anything:
        audit_record(
            action="sandbox.aws.restored",
            target_label="sandbox AWS",
            details={"accounts": report.accounts, "invited": report.invited, "roles": report.roles,
                     "iam_users": report.iam_users, "problems": report.problems},
        )
    logger.info("sandbox.aws.restored", extra={"accounts": len(report.accounts), "roles": len(report.roles)})
    return report


def _created_again(*, clients: ClientFactory, account: AwsAccount) -> str:
    """Create the account again with its root e-mail and name: "" when it came back under its id,
    else what went wrong (its roles are then left alone)."""

    try:
        request = aws.start_account_creation(
            clients=clients, email=account.root_email or "", account_name=account.name,
            tags={aws.MANAGED_BY_TAG_KEY: aws.MANAGED_BY_TAG_VALUE,
                  "switchyard-client": account.client.slug},
        )
    except AwsError as error:
        return f"AWS refused to create it again: {error.code}: {error.raw_message}"
    if request.account_id != account.account_id:
        return (f"created again as {request.account_id or f'a {request.state} request'}, not "
                f"{account.account_id}. Is the sandbox's AWS `python -m portal.sandbox_aws` (ids from e-mails)? "
                "Its roles were not rebuilt.")
    return ""


def _invited_again(*, clients: ClientFactory, account: AwsAccount) -> str:
    """Invite the client's account again and, as the client, accept and deploy the access-role
    template: "" when it is a member again with its access role, else what went wrong."""

    try:
        aws.invite_account(clients=clients, account_id=account.account_id or "",
                                      notes=f"{account.client.name}: the sandbox's AWS restarted.")
        sandbox_client_answer(account_id=account.account_id or "", accept=True)
    except AwsError as error:
        return f"AWS refused to invite it again: {error.code}: {error.raw_message}"
    except LookupError as error:
        return f"the invitation could not be answered: {error}"
    return ""


def _main_account_enforcement_restore(*, clients: ClientFactory, report: SandboxRestore) -> None:

    principals = enforcement.intended_principals()
    needed = {p.principal_name for p in principals
              if p.principal_type == EnforcedPrincipal.Type.USER and p.principal_name}
    needed.update(member for p in principals for member in p.members)
    iam = aws.iam_client(clients)
    for name in sorted(needed):
        try:
            iam.get_user(UserName=name)
        except iam.exceptions.NoSuchEntityException:
            # Switchyard never creates IAM users in a real AWS account; the sandbox stands in for people.
            iam.create_user(UserName=name, Path="/people/")
            report.iam_users.append(name)
    try:
        with enforcement.enforcement_lock():
            report.enforcement = enforcement.enforcement_sync(clients=clients, reason="sandbox restore", force=True)
    except enforcement.EnforcementBusy:
        enforcement_sync.delay(reason="sandbox restore", force=True)
        report.enforcement_queued = True


# --------------------------------------------------------------------------------------------------
# A member account made before Switchyard (bringing accounts in: adoption)
# --------------------------------------------------------------------------------------------------

LEGACY_MEMBER_NAME = "legacy-data"
LEGACY_MEMBER_EMAIL = "aws+legacy-data@acme-retail.example"
LEGACY_ROLE_NAME = "ops-admin"


def sandbox_legacy_member_ensure(*, clients: ClientFactory) -> str:
    """One member of the sandbox Organization that Switchyard does not manage, with a cross-account
    role the team made by hand (``ops-admin``, trusting the main account), so adoption can be tried
    at once. Idempotent; returns the account id (stable: derived from the e-mail)."""


    require_sandbox()
    member = next((m for m in aws.list_accounts(clients=clients)
                   if m.email.casefold() == LEGACY_MEMBER_EMAIL), None)
    account_id = member.id if member is not None else (aws.start_account_creation(
        clients=clients, email=LEGACY_MEMBER_EMAIL, account_name=LEGACY_MEMBER_NAME, tags={},
    ).account_id or "")
    credentials = aws.assume_access_role(clients=clients, account_id=account_id,
                                                    session_name="switchyard-sandbox-seed")
    iam = aws.iam_client(clients, credentials=credentials)
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{settings.SWITCHYARD_MAIN_ACCOUNT_ID}:root"},
        "Action": "sts:AssumeRole"}]}
    try:
        iam.create_role(RoleName=LEGACY_ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust),
                        Description="Made by hand before Switchyard")
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    return account_id
