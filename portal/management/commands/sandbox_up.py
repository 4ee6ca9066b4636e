from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from billing.sandbox import sandbox_costs_ensure
from elevations.sandbox import sandbox_client_contact_ensure
from onboarding.models import AwsAccount
from onboarding.sandbox import DEMO_INVITED_ACCOUNT_ID, sandbox_demo_clients_ensure, sandbox_demo_invitation_ensure
from portal.aws import default_client_factory
from portal.chain_checks import audit_chain_check_record
from portal.people.demo import DEMO_PASSWORD, DEMO_USERS
from portal.sandbox import (
    SandboxRestore,
    sandbox_aws_restore,
    sandbox_demo_users_ensure,
    sandbox_legacy_member_ensure,
    sandbox_organization_ensure,
    sandbox_root_access_ensure,
)
from switchroles.sandbox import sandbox_demo_access_ensure


class Command(BaseCommand):
    help = (
        "Prepare the sandbox: migrate, create the moto Organization (rebuilding it from the database "
        "after a restart) and the demo people and clients."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX:
            raise CommandError("sandbox_up only runs in the sandbox (SWITCHYARD_ENV=sandbox).")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        clients = default_client_factory()
        organization = sandbox_organization_ensure(clients=clients)
        if organization.management_account_id != settings.SWITCHYARD_MAIN_ACCOUNT_ID:
            raise CommandError(
                f"The sandbox Organization's management account is {organization.management_account_id}, "
                f"but SWITCHYARD_MAIN_ACCOUNT_ID is {settings.SWITCHYARD_MAIN_ACCOUNT_ID}."
            )
        sandbox_demo_users_ensure()
        sandbox_root_access_ensure(clients=clients)
        # moto forgot everything when it stopped; the database did not.
        if organization.created and AwsAccount.objects.filter(account_id__isnull=False).exists():
            self._print_restore(sandbox_aws_restore(clients=clients))
        sandbox_demo_clients_ensure()
        invited = sandbox_demo_invitation_ensure(clients=clients)
        if invited is not None:
            self.stdout.write(f"{invited.client} {invited.name} ({invited.account_id}) joined by invitation: its root "
                              "user has a password until a manager removes it (account page).")
        else:
            self.stdout.write(self.style.WARNING(
                f"The invited demo account {DEMO_INVITED_ACCOUNT_ID} is not active yet: the workers carry on "
                f"(or: manage.py sandbox_client accept {DEMO_INVITED_ACCOUNT_ID})."))
        sandbox_demo_access_ensure()
        if sandbox_client_contact_ensure() is not None:
            self.stdout.write("acme-contact (a client contact of Acme Retail) has an elevation request to decide.")
        # Twelve months of demo costs in moto's Cost Explorer, fetched so billing has figures at once.
        costs = sandbox_costs_ensure(clients=clients, aws_started_empty=organization.created)
        if costs:
            self.stdout.write(f"Billing: fetched {len(costs)} month(s) of demo costs from the sandbox's Cost Explorer.")
        legacy = sandbox_legacy_member_ensure(clients=clients)
        self.stdout.write(f"A member made before Switchyard, ready to adopt: {legacy} (Clients → Adopt)")
        # Auditors see the chain's state from the first page view, not only after the hourly check.
        audit_chain_check_record()
        self.stdout.write(self.style.SUCCESS("\nSwitchyard sandbox is ready on http://127.0.0.1:8000/"))
        self.stdout.write(f"Sign in as {', '.join(DEMO_USERS)}, acme-contact with password '{DEMO_PASSWORD}'.")
        self.stdout.write("Your code: .venv/bin/python manage.py demo_totp <user>\n")

    def _print_restore(self, restore: SandboxRestore) -> None:
        self.stdout.write("The sandbox's AWS started empty: rebuilt it from the database.")
        for label in restore.accounts:
            self.stdout.write(f"  account {label}: created again, same id")
        for label in restore.invited:
            self.stdout.write(f"  account {label}: invited again, accepted as the client would, same id")
        for arn in restore.roles:
            self.stdout.write(f"  role {arn}")
        for name in restore.iam_users:
            self.stdout.write(f"  main-account IAM user {name}")
        if restore.enforcement is not None:
            sync = restore.enforcement
            self.stdout.write(
                f"  main-account policies re-applied for {len(sync.applied)} team(s)/person(s)"
                + (f", {len(sync.failed)} failed" if sync.failed else "")
            )
            for label, message in {**sync.failed, **sync.not_enforceable}.items():
                self.stdout.write(self.style.WARNING(f"  {label}: {message}"))
        if restore.enforcement_queued:
            self.stdout.write("  main-account policies: another sync was running; a forced one is queued")
        for problem in restore.problems:
            self.stdout.write(self.style.WARNING(f"  not rebuilt: {problem}"))
