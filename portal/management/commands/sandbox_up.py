from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from portal.aws import default_client_factory
from portal.sandbox import DEMO_PASSWORD, DEMO_USERS, sandbox_demo_users_ensure, sandbox_organization_ensure


class Command(BaseCommand):
    help = "Prepare the sandbox: migrate, create the moto Organization and the demo people and clients."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX:
            raise CommandError("sandbox_up only runs in the sandbox (SWITCHYARD_ENV=sandbox).")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        main_account = sandbox_organization_ensure(clients=default_client_factory())
        if main_account != settings.SWITCHYARD_MAIN_ACCOUNT_ID:
            raise CommandError(
                f"The sandbox Organization's management account is {main_account}, "
                f"but SWITCHYARD_MAIN_ACCOUNT_ID is {settings.SWITCHYARD_MAIN_ACCOUNT_ID}."
            )
        sandbox_demo_users_ensure()
        try:
            from onboarding.sandbox import sandbox_demo_clients_ensure
        except ImportError:  # the demo clients arrive with the onboarding workflow
            pass
        else:
            sandbox_demo_clients_ensure()
        self.stdout.write(self.style.SUCCESS("\nSwitchyard sandbox is ready on http://127.0.0.1:8000/"))
        self.stdout.write(f"Sign in as {', '.join(DEMO_USERS)} with password '{DEMO_PASSWORD}'.")
        self.stdout.write("Your code: .venv/bin/python manage.py demo_totp <user>\n")
