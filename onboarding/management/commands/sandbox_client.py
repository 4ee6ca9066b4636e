from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from onboarding.sandbox_client import old_access_role_ensure, sandbox_client_answer


class Command(BaseCommand):
    help = ("Play the client of an invited account in the sandbox: accept (and deploy the access-role "
            "template) or decline the open invitation.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("answer", choices=["accept", "decline"])
        parser.add_argument("account_id")
        parser.add_argument("--from-another-organization", action="store_true",
                            help="First give the account an OrganizationAccountAccessRole trusting another "
                                 "Organization's management account, as an account that changes Organizations has.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.SANDBOX:
            raise CommandError("sandbox_client only runs in the sandbox (SWITCHYARD_ENV=sandbox).")
        account_id = options["account_id"]
        if not (len(account_id) == 12 and account_id.isdigit()):
            raise CommandError("An AWS account id is exactly 12 digits.")
        if options["from_another_organization"]:
            self.stdout.write(f"Old access role: {old_access_role_ensure(account_id=account_id)}")
        try:
            answer = sandbox_client_answer(account_id=account_id, accept=options["answer"] == "accept")
        except LookupError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(f"Invitation {answer.handshake_id}: {answer.state}"))
        if answer.stack_status:
            self.stdout.write(f"Stack switchyard-access-role: {answer.stack_status}; role {answer.access_role_arn}")
