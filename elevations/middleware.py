"""Client contacts live in their own corner of the portal: any page outside it answers 404 to
them, whatever its own checks say (defence in depth: MSP pages also refuse them by capability)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve

from elevations.receivers import SESSION_KEY

# URL names (outside the elevations app) a client contact may reach: their own sign-in, password
# and authenticator pages, and the health check.
CONTACT_ALLOWED_NAMES = frozenset({"healthz", "account_logout", "account_change_password", "account_reauthenticate",
                                   "account_login", "mfa_activate_totp", "mfa_index", "mfa_reauthenticate",
                                   "mfa_authenticate", "mfa_deactivate_totp", "mfa_view_recovery_codes",
                                   "mfa_download_recovery_codes",
                                   "mfa_generate_recovery_codes", "account_reset_password",
                                   "account_reset_password_done", "account_reset_password_from_key",
                                   "account_reset_password_from_key_done"})
CONTACT_NAMESPACES = frozenset({"client", "elevations"})


class ClientContactConfinementMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated and request.session.get(SESSION_KEY) is not None \
                and not request.path.startswith("/static/"):
            try:
                match = resolve(request.path_info)
            except Resolver404:
                return self.get_response(request)
            if match.view_name == "home":
                return redirect("client:index")
            if match.namespace not in CONTACT_NAMESPACES and match.view_name not in CONTACT_ALLOWED_NAMES:
                raise Http404("Not here.")
        return self.get_response(request)
