"""Demo clients for the sandbox, onboarded through the real workflow (the workers do the rest)."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError

from onboarding.models import AwsAccount, Client
from onboarding.selectors import suggested_root_email
from onboarding.services import onboarding_request
from portal.aws import ClientFactory
from portal.people.demo import require_sandbox
from portal.people.models import User
from switchroles.models import RoleTemplate

logger = logging.getLogger(__name__)

DEMO_CLIENTS: dict[str, tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    # name: (slug, ((account name, template role names), ...))
    "Acme Retail": ("acme", (
        ("production", ("SwitchyardAdministrator", "SwitchyardEngineer", "SwitchyardOnCall")),
        ("staging", ("SwitchyardEngineer", "SwitchyardOnCall")),
    )),
    "Globex Logistics": ("globex", (
        ("production", ("SwitchyardAdministrator", "SwitchyardOnCall")),
    )),
}


def sandbox_demo_clients_ensure(*, clients: ClientFactory | None = None) -> list[AwsAccount]:
    """Onboard the demo clients as the demo manager, through ``onboarding_request`` (so the workers
    create their accounts in the moto Organization). Idempotent: a client that exists is skipped."""
    require_sandbox()
    manager = User.objects.get(username="manager")
    requested: list[AwsAccount] = []
    for name, (slug, accounts) in DEMO_CLIENTS.items():
        if Client.objects.filter(slug=slug).exists():
            continue
        client: Client | None = None
        for account_name, role_names in accounts:
            try:
                account = onboarding_request(
                    actor=manager,
                    client=client,
                    client_name=name,
                    client_slug=slug,
                    origin=AwsAccount.Origin.CREATED,
                    account_name=account_name,
                    root_email=suggested_root_email(client_slug=slug, account_name=account_name),
                    templates=list(RoleTemplate.objects.filter(role_name__in=role_names).order_by("pk")),
                    reason="Sandbox demo client",
                    clients=clients,
                    # Ends by looking at the root user: Globex production's has a password (portal.sandbox_aws).
                    root_credentials=True,
                )
            except ValidationError as error:
                logger.warning("sandbox.demo_client.refused", extra={"client": slug, "errors": error.messages})
                break
            client = account.client
            requested.append(account)
    return requested
