from typing import Any

import pyotp
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from portal.adapters import decrypt_secret
from portal.people.models import User


class Command(BaseCommand):
    help = "Print the current TOTP code of a demo user (sandbox only)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        if not settings.SANDBOX:
            raise CommandError("demo_totp only works in the sandbox (SWITCHYARD_ENV=sandbox).")
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
        if authenticator is None:
            raise CommandError(f"{username} has no authenticator enrolled.")
        secret = decrypt_secret(authenticator.data["secret"])
        self.stdout.write(pyotp.TOTP(secret).now())
