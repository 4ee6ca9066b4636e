"""The sandbox's demo access: a team with the demo engineer, granted some tiers of the demo
clients (not all), so ``make run`` shows a populated directory and a refused link.

The demo clients are onboarded by ``onboarding.sandbox.sandbox_demo_clients_ensure`` through the
real workflow; their roles become ACTIVE (and their links appear) as the workers finish. Grants
are on the clients, so they cover those roles whenever they arrive.
"""

from __future__ import annotations

import logging

from django.db import transaction

from onboarding.models import Client
from portal import aws
from portal.aws import ClientFactory, default_client_factory
from portal.models import User
from portal.sandbox import DEMO_USERS, require_sandbox
from switchroles import services
from switchroles.models import Grant, RoleTemplate, Team

logger = logging.getLogger(__name__)

DEMO_TEAM_NAME = "Platform engineers"
DEMO_TEAM_GROUP = "platform-engineers"
# client name -> tiers granted to the demo team; the others stay ungranted on purpose.
DEMO_GRANTS: dict[str, tuple[str, ...]] = {
    "Acme Retail": (RoleTemplate.Tier.ENGINEER, RoleTemplate.Tier.ONCALL),
    "Globex Logistics": (RoleTemplate.Tier.ONCALL,),
}


def sandbox_demo_access_ensure(*, clients: ClientFactory | None = None) -> Team | None:
    """Idempotent. Does nothing (returns None) until a demo client exists. A grant the demo team
    ever had on a client (even one since revoked in the sandbox) is not made again."""
    require_sandbox()
    demo_clients = {client.name: client for client in Client.objects.filter(name__in=DEMO_GRANTS)}
    if not demo_clients:
        logger.info("sandbox.demo_access.skipped", extra={"reason": "no demo clients yet"})
        return None
    manager = User.objects.filter(username="manager").first()
    engineer = User.objects.filter(username="engineer").first()
    if manager is None or engineer is None:
        logger.info("sandbox.demo_access.skipped", extra={"reason": "no demo people yet"})
        return None
    _main_account_iam_users_ensure(clients or default_client_factory())
    with transaction.atomic():
        team = Team.objects.filter(name=DEMO_TEAM_NAME).first() or services.team_create(
            name=DEMO_TEAM_NAME, iam_group_name=DEMO_TEAM_GROUP, created_by=manager
        )
        services.team_member_add(team=team, person=engineer, added_by=manager)
        for name, tiers in DEMO_GRANTS.items():
            client = demo_clients.get(name)
            if client is None or Grant.objects.filter(team=team, client=client).exists():
                continue
            services.grant_create(
                granted_by=manager, team=team, client=client,
                templates=RoleTemplate.objects.filter(tier__in=tiers, is_active=True),
                reason="Sandbox demo: the platform team runs and supports this client.",
            )
        services.enforcement_sync_schedule(reason="sandbox demo access")
    return team


def _main_account_iam_users_ensure(clients: ClientFactory) -> None:
    """The demo people's IAM users in the (simulated) main account, so the team's IAM group can
    list them. Switchyard never creates IAM users outside the sandbox."""
    try:
        aws.sandbox_iam_users_ensure(
            clients=clients, user_names=[iam_username for _group, _first_name, iam_username in DEMO_USERS.values()]
        )
    except aws.AwsError as exc:
        logger.warning("sandbox.demo_access.iam_users_failed", extra={"error": str(exc)})
