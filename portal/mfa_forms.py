"""The authenticator-code forms of sign-in and re-authentication (``MFA_FORMS``): the code field
focused when the page opens, and a code used a moment ago answered as such, not as "incorrect"."""

from __future__ import annotations

from typing import Any

from allauth.mfa.base.forms import AuthenticateForm, ReauthenticateForm
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP, validate_totp_code
from allauth.mfa.utils import decrypt
from django import forms
from django.core.cache import cache

REUSED_CODE = ("This code was already used. Wait for the next code in your authenticator app "
               "(a new one every 30 seconds), then enter it.")


class _CodeForm:
    user: Any
    fields: dict[str, forms.Field]

    def _focus(self) -> None:
        self.fields["code"].widget.attrs.update({"autofocus": True, "inputmode": "numeric"})

    def _was_used(self, code: str) -> bool:
        """A valid code of one of the person's authenticator apps that allauth already marked used."""
        for authenticator in Authenticator.objects.filter(user=self.user, type=Authenticator.Type.TOTP):
            totp = TOTP(authenticator)
            if validate_totp_code(decrypt(authenticator.data["secret"]), code) and \
                    cache.get(totp._get_used_cache_key(code)) is not None:
                return True
        return False


class SignInCodeForm(_CodeForm, AuthenticateForm):  # type: ignore[misc]  # allauth ships no type information
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._focus()

    def clean_code(self) -> str:
        try:
            code: str = super().clean_code()
            return code
        except forms.ValidationError:
            if self._was_used(self.cleaned_data.get("code", "")):
                raise forms.ValidationError(REUSED_CODE, code="reused_code") from None
            raise


class ReauthenticationCodeForm(_CodeForm, ReauthenticateForm):  # type: ignore[misc]  # allauth ships no type information
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._focus()

    def clean_code(self) -> str:
        try:
            code: str = super().clean_code()
            return code
        except forms.ValidationError:
            if self._was_used(self.cleaned_data.get("code", "")):
                raise forms.ValidationError(REUSED_CODE, code="reused_code") from None
            raise
