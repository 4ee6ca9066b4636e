"""The override points django-allauth offers, used as the one place where Switchyard bends it."""

from __future__ import annotations

import base64
import hashlib
from functools import cache
from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from cryptography.fernet import Fernet
from django.conf import settings
from django.http import HttpRequest

# No user name (150) or e-mail address (254) is longer; the sandbox's SQLite refuses the lookup of a
# much longer one (a LIKE pattern over 50,000 bytes) with an error, so it is cut before the lookup.
LOGIN_MAX_CHARS = 255


class AccountAdapter(DefaultAccountAdapter):  # type: ignore[misc]  # allauth ships no type information
    def authenticate(self, request: HttpRequest, **credentials: Any) -> Any:
        for key in ("username", "email"):
            if isinstance(credentials.get(key), str):
                credentials[key] = credentials[key][:LOGIN_MAX_CHARS]  # still matches no one, as before
        return super().authenticate(request, **credentials)

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        # People are added by an administrator or a manager, never by themselves.
        return False

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        # First enrolment happens right after the password step, which MFA then gates: asking for
        # the password again there adds nothing. Changing an existing authenticator still asks.
        if app == "allauth.mfa":
            request = context.request
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated and not Authenticator.objects.filter(user=user).exists():
                return False
        required: bool = super().is_reauthentication_required(app=app, **kwargs)
        return required


@cache
def _fernet(key_material: str) -> Fernet:
    # Any string from SWITCHYARD_ENCRYPTION_KEY becomes a valid 32-byte Fernet key.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(key_material.encode()).digest()))


def encrypt_secret(text: str) -> str:
    return _fernet(settings.SWITCHYARD_ENCRYPTION_KEY).encrypt(text.encode()).decode()


def decrypt_secret(token: str) -> str:
    return _fernet(settings.SWITCHYARD_ENCRYPTION_KEY).decrypt(token.encode()).decode()


class MfaAdapter(DefaultMFAAdapter):  # type: ignore[misc]  # allauth ships no type information
    """TOTP secrets and recovery-code seeds are stored encrypted (Fernet, key derived from
    ``SWITCHYARD_ENCRYPTION_KEY``): a copy of the database alone cannot mint codes."""

    def encrypt(self, text: str) -> str:
        return encrypt_secret(text)

    def decrypt(self, encrypted_text: str) -> str:
        return decrypt_secret(encrypted_text)
