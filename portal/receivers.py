"""Sign-in and MFA events from django-allauth, written to the audit log.

Signals are allauth's interface for these moments; Switchyard's own domain logic never uses them.
"""

from __future__ import annotations

from typing import Any

from allauth.account.signals import password_changed, user_logged_in
from allauth.mfa import signals as mfa_signals
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.signals import user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from portal.audit import audit_record
from portal.people.services import user_end_other_sessions


@receiver(user_logged_in)
def on_signed_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    audit_record(action="auth.signed_in", actor=user, target=user, request=request)


@receiver(user_logged_out)
def on_signed_out(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(action="auth.signed_out", actor=user, target=user, request=request)


@receiver(user_login_failed)
def on_sign_in_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None,
                      **kwargs: Any) -> None:
    attempted = str(credentials.get("username") or credentials.get("email") or "")[:150]
    audit_record(action="auth.sign_in_failed", details={"attempted": attempted}, request=request)


@receiver(password_changed)
def on_password_changed(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    audit_record(action="auth.password_changed", actor=user, target=user, request=request)


@receiver(mfa_signals.authenticator_added)
def on_authenticator_added(sender: Any, request: HttpRequest, user: Any, authenticator: Any,
                           **kwargs: Any) -> None:
    audit_record(action="mfa.enrolled", actor=user, target=user, request=request,
                 details={"type": authenticator.type})


@receiver(mfa_signals.authenticator_removed)
def on_authenticator_removed(sender: Any, request: HttpRequest, user: Any, authenticator: Any,
                             **kwargs: Any) -> None:
    audit_record(action="mfa.removed", actor=user, target=user, request=request,
                 details={"type": authenticator.type})
    user_end_other_sessions(user=user)
    if request is not None and getattr(request, "user", None) == user:
        update_session_auth_hash(request, user)


@receiver(mfa_signals.authenticator_reset)
def on_authenticator_reset(sender: Any, request: HttpRequest, user: Any, authenticator: Any,
                           **kwargs: Any) -> None:
    audit_record(action="mfa.reset", actor=user, target=user, request=request,
                 details={"type": authenticator.type})


@receiver(mfa_signals.authenticator_used)
def on_authenticator_used(sender: Any, request: HttpRequest, user: Any, authenticator: Any,
                          **kwargs: Any) -> None:
    audit_record(action="mfa.used", actor=user, target=user, request=request,
                 details={"type": authenticator.type, "reauthenticated": bool(kwargs.get("reauthenticated"))})


@receiver(mfa_signals.authentication_failed)
def on_mfa_failed(sender: Any, request: HttpRequest, user: Any, authenticator: Any, **kwargs: Any) -> None:
    audit_record(action="mfa.failed", actor=user, target=user, request=request,
                 details={"type": authenticator.type, "reauthentication": bool(kwargs.get("reauthentication"))})
