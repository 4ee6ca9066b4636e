"""The sandbox's client contact and elevation: ``acme-contact`` (password ``switchyard-demo``,
TOTP enrolled) is a contact of Acme Retail, who approves elevations on Acme's accounts (with a
manager: whoever answers first), and the demo engineer has one request waiting for them."""

from __future__ import annotations

import logging
from datetime import timedelta

import pyotp
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from elevations import services
from elevations.models import CLIENT_CONTACT, ApprovalPolicy, ClientContact, ElevationRequest
from onboarding.models import AwsAccount, Client
from portal.audit import audit_record
from portal.people.demo import DEMO_PASSWORD, require_sandbox
from portal.people.models import User
from switchroles.models import RoleTemplate

logger = logging.getLogger(__name__)

CONTACT_USERNAME = "acme-contact"
CONTACT_CLIENT = "Acme Retail"


@transaction.atomic
def sandbox_client_contact_ensure() -> ElevationRequest | None:
    """Idempotent. Does nothing (returns None) until Acme Retail, an account of it with an AWS
    account ID, the demo manager and engineer exist. Returns the waiting request."""
    require_sandbox()
    client = Client.objects.filter(name=CONTACT_CLIENT).first()
    manager = User.objects.filter(username="manager").first()
    engineer = User.objects.filter(username="engineer").first()
    if client is None or manager is None or engineer is None:
        logger.info("sandbox.client_contact.skipped", extra={"reason": "no Acme Retail or demo people yet"})
        return None
    user, created = User.objects.get_or_create(
        username=CONTACT_USERNAME,
        defaults={"first_name": "Carla", "last_name": "Acme", "email": "carla@acme-retail.example"},
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get_or_create(name=CLIENT_CONTACT)[0])
    if not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists():
        TOTP.activate(user, pyotp.random_base32())
        RecoveryCodes.activate(user)
    ClientContact.objects.get_or_create(user=user, defaults={
        "client": client, "invited_by": manager, "invited_at": timezone.now(), "accepted_at": timezone.now(),
    })
    if not ApprovalPolicy.objects.filter(client=client).exists():
        services.approval_policy_set(client=client, approvers=ApprovalPolicy.Approvers.BOTH_FIRST, updated_by=manager)
    waiting = ElevationRequest.objects.filter(account__client=client, state=ElevationRequest.State.PENDING).first()
    if waiting is not None:
        return waiting
    account = AwsAccount.objects.filter(client=client, account_id__isnull=False).order_by("pk").first()
    administrator = RoleTemplate.objects.filter(tier=RoleTemplate.Tier.ADMINISTRATOR, is_active=True).first()
    if account is None or administrator is None:
        return None
    # Made as the service would, but without waiting for the workers to activate the role (they
    # finish after sandbox_up), and with a week to be answered so the demo page is not empty.
    now = timezone.now()
    request = ElevationRequest.objects.create(
        requester=engineer, account=account, template=administrator, duration_minutes=60,
        reason="Sandbox demo: INC-1042, the checkout database needs a restore",
        approvers=ApprovalPolicy.Approvers.BOTH_FIRST,
        requested_at=now, answer_by=now + timedelta(days=7),
    )
    audit_record(action="elevation.requested", actor=engineer, target=request,
                 details={"tier": administrator.name, "account": str(account), "sandbox": True})
    services.elevation_approvers_notify(request=request, event="requested")
    return request
