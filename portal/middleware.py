from __future__ import annotations

from collections.abc import Callable

from allauth.mfa.models import Authenticator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve

# What a signed-in person without an authenticator may still reach.
ALLOWED_WITHOUT_MFA = frozenset(
    {
        "mfa_activate_totp",
        "account_logout",
        "account_reauthenticate",
        "healthz",
    }
)


def has_totp(user: object) -> bool:
    found: bool = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    return found


class RequireMfaMiddleware:
    """MFA is mandatory: until a person has enrolled an authenticator app, every page but
    enrolment and sign-out sends them to enrolment."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not self._may_pass(request):
            if not has_totp(user):
                return redirect("mfa_activate_totp")
        return self.get_response(request)

    @staticmethod
    def _may_pass(request: HttpRequest) -> bool:
        if request.path.startswith("/static/"):
            return True
        if request.path.startswith("/api/"):
            return True  # the API ignores sessions: it answers by bearer token alone (portal/api)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return True
        return match.url_name in ALLOWED_WITHOUT_MFA
