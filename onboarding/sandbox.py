"""Demo clients for the sandbox, onboarded through the real workflow (the workers do the rest), and
one client's own account brought in by invitation, with the client's part played by the sandbox."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from onboarding.advance import onboarding_advance
from onboarding.models import AwsAccount, Client, OnboardingStep
from onboarding.selectors import suggested_root_email
from onboarding.services import onboarding_request
from portal.audit import audit_record
from portal.aws import ClientFactory, default_client_factory
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
                    # Ends by checking the root user has no credentials: created with centralized root
                    # access on, it has none.
                    root_credentials=True,
                )
            except ValidationError as error:
                logger.warning("sandbox.demo_client.refused", extra={"client": slug, "errors": error.messages})
                break
            client = account.client
            requested.append(account)
    return requested


# The client's own account, invited (the sandbox's moto: any 12-digit id outside the Organization).
# It joins with JoinedMethod INVITED and, as in AWS, keeps the root password it had: its root
# posture shows a password until a manager removes it ("Remove root credentials..." on its page).
DEMO_INVITED_CLIENT = ("Initech", "initech")
DEMO_INVITED_ACCOUNT_NAME = "production"
DEMO_INVITED_ACCOUNT_ID = "333344445555"
DEMO_INVITED_ROLES = ("SwitchyardEngineer", "SwitchyardOnCall")
_POLL_SECONDS = 0.5


def _advance_until(
    account: AwsAccount, clients: ClientFactory, deadline: float, done: Callable[[AwsAccount], bool]
) -> bool:
    """Run the account's steps in this process (a worker may run them instead: then wait for it)
    until ``done(account)``; False at the deadline or when the onboarding stopped short."""
    while True:
        onboarding_advance(account_id=account.pk, clients=clients, chain_seconds=30)
        account.refresh_from_db()
        if done(account):
            return True
        if account.state == AwsAccount.State.FAILED or account.state in AwsAccount.FINAL_STATES \
                or time.monotonic() > deadline:
            return False
        time.sleep(_POLL_SECONDS)


def _client_accepted(account: AwsAccount) -> None:
    """The client accepted: the invitation's wait is over now rather than at its next 5-minute poll."""
    with transaction.atomic():
        OnboardingStep.objects.filter(account=account, kind=OnboardingStep.Kind.AWAIT_HANDSHAKE,
                                      status=OnboardingStep.Status.WAITING).update(next_run_at=timezone.now())
        audit_record(action="sandbox.demo_invitation.accepted", target=account,
                     details={"account_id": account.account_id, "handshake_id": account.handshake_id,
                              "by": "the sandbox, playing the client"})


def sandbox_demo_invitation_ensure(
    *, clients: ClientFactory | None = None, wait_seconds: float = 60
) -> AwsAccount | None:
    """Bring the demo client's own account in by invitation, as a manager and the client would:
    the demo manager requests it (``onboarding_request``, origin INVITED, the root credentials left
    for a manager to remove), the invitation is sent, the sandbox accepts it as the client and
    deploys the access-role template (``sandbox_client_answer``), the onboarding runs to Active and
    the root user is looked at (a password: the account's own). Idempotent: an account already
    Active is returned untouched. None when it did not get there within ``wait_seconds`` (the
    workers then carry on; ``manage.py sandbox_client accept`` plays the client by hand)."""
    from onboarding.root_services import root_posture_check
    from onboarding.sandbox_client import sandbox_client_answer

    require_sandbox()
    factory = clients or default_client_factory()
    account = AwsAccount.objects.filter(account_id=DEMO_INVITED_ACCOUNT_ID).select_related("client").first()
    if account is not None and account.state == AwsAccount.State.ACTIVE:
        return account
    if account is None:
        name, slug = DEMO_INVITED_CLIENT
        try:
            account = onboarding_request(
                actor=User.objects.get(username="manager"), client=Client.objects.filter(slug=slug).first(),
                client_name=name, client_slug=slug, origin=AwsAccount.Origin.INVITED,
                account_name=DEMO_INVITED_ACCOUNT_NAME, account_id=DEMO_INVITED_ACCOUNT_ID,
                templates=list(RoleTemplate.objects.filter(role_name__in=DEMO_INVITED_ROLES).order_by("pk")),
                reason="Sandbox demo: the client's own account, invited", clients=factory,
                root_credentials=False,
            )
        except ValidationError as error:
            logger.warning("sandbox.demo_invitation.refused", extra={"errors": error.messages})
            return None
    deadline = time.monotonic() + wait_seconds
    if not account.handshake_id and not _advance_until(account, factory, deadline, lambda a: bool(a.handshake_id)):
        logger.warning("sandbox.demo_invitation.not_sent", extra={"account": account.pk})
        return None
    if account.state == AwsAccount.State.INVITING:
        try:
            sandbox_client_answer(account_id=DEMO_INVITED_ACCOUNT_ID, accept=True)
        except LookupError:  # answered already (an earlier run stopped half-way)
            pass
        _client_accepted(account)
    if not _advance_until(account, factory, deadline, lambda a: a.state == AwsAccount.State.ACTIVE):
        logger.warning("sandbox.demo_invitation.not_active", extra={"account": account.pk, "state": account.state})
        return None
    root_posture_check(account=account, clients=factory)
    return account
