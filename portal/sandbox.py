"""The sandbox: demo people with enrolled authenticators, and a moto Organization to work against.

Used by ``manage.py sandbox_up`` (``make run``) and by tests. Refuses to run outside the sandbox.
"""

from __future__ import annotations

import logging
import time

import pyotp
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from portal.aws import ClientFactory
from portal.models import User

logger = logging.getLogger(__name__)

DEMO_PASSWORD = "switchyard-demo"  # noqa: S105 - a documented, sandbox-only password
DEMO_USERS = {
    # username: (group, first name, IAM user in the main account)
    "manager": ("Manager", "Morgan", "morgan.manager"),
    "engineer": ("Engineer", "Eli", "eli.engineer"),
    "auditor": ("Auditor", "Ada", "ada.auditor"),
}


def require_sandbox() -> None:
    if not settings.SANDBOX:
        raise RuntimeError("This only runs in the sandbox (SWITCHYARD_ENV=sandbox).")


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
        if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
            TOTP.activate(user, pyotp.random_base32())
            RecoveryCodes.activate(user)
        people.append(user)
    return people


def sandbox_organization_ensure(*, clients: ClientFactory, wait_seconds: float = 60) -> str:
    """Wait for the local moto endpoint, then make sure the main account runs an Organization
    with all features. Returns the management account id."""
    require_sandbox()
    organizations = clients.client("organizations")
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            return str(organizations.describe_organization()["Organization"]["MasterAccountId"])
        except organizations.exceptions.AWSOrganizationsNotInUseException:
            organizations.create_organization(FeatureSet="ALL")
            logger.info("sandbox.organization.created")
        except Exception:  # the endpoint is still starting
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
