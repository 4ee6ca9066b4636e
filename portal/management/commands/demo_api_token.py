from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.api.models import ApiToken
from portal.api.tokens import api_token_create
from portal.people.models import User


class Command(BaseCommand):
    help = "Print a fresh read-write API token of a demo user (sandbox only)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--days", type=int, default=7, help="How long it is valid (1–90 days).")

    def handle(self, *args: Any, username: str, days: int, **options: Any) -> None:
        if not settings.SANDBOX:
            raise CommandError("demo_api_token only works in the sandbox (SWITCHYARD_ENV=sandbox).")
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user named {username!r}.")
        created = api_token_create(owner=user, name="demo_api_token", scope=ApiToken.Scope.READ_WRITE,
                                   lifetime_days=days)
        self.stdout.write(created.secret)
