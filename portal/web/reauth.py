"""One re-authentication rule for every state-changing action (see the README, "Re-authentication").

- An action changes state only on POST. It goes through when the person signed in or re-authenticated
  within ``ACCOUNT_REAUTHENTICATION_TIMEOUT`` seconds (5 minutes): a full sign-in counts, so nobody is
  asked again seconds after signing in.
- A dangerous action (it gives or takes away access, or creates, changes, hands back or removes
  something in AWS) needs both a password **and** an authenticator code within that time: a full
  sign-in (password, then code) has both; otherwise the person is asked for whichever is missing,
  password first.

allauth's ``reauthentication_required`` counts only re-authentications, and only the latest one, so
the rule is applied here; the pages it sends people to are allauth's own
(``account_reauthenticate``, ``mfa_reauthenticate``), which resume the suspended request afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, overload

from allauth.account.internal.flows.login import get_authentication_records
from allauth.account.internal.flows.reauthentication import suspend_request
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

PASSWORD, CODE = "password", "mfa"

# Actions that give or take away access, or create, change, hand back or remove something in AWS
# (URL names; the README's "Re-authentication" table lists them in words).
DANGEROUS_ACTIONS = frozenset({
    "switchroles:grant_new",
    "switchroles:team_member_add",
    "switchroles:person_new",
    "switchroles:person_edit",
    "onboarding:account_handback",
    "onboarding:client_handback",
    "roletemplates:new",
    "roletemplates:edit",
    "switchroles:grant_revoke",
    "switchroles:team_member_remove",
    "switchroles:person_leave",
    "switchroles:departure_retry",
    "switchroles:rollout_account_retry",
    "switchroles:trust_rollout",
    "switchroles:drift_repair",
    "switchroles:drift_repair_main_account",
    "onboarding:account_root_remove",
    "onboarding:root_access_enable",
    "api_tokens:new",
    "elevations:decide",
    "elevations:emergency",
    "audit:review_decide",
})


def fresh_methods(request: HttpRequest) -> set[str]:
    """The ways the person proved who they are within the re-authentication timeout."""
    now = time.time()
    timeout = settings.ACCOUNT_REAUTHENTICATION_TIMEOUT
    return {record.get("method", "") for record in get_authentication_records(request, request.user)
            if now - float(record.get("at", 0)) < timeout}


def missing_methods(request: HttpRequest, *, dangerous: bool) -> list[str]:
    """What the person must give again before the action: [] when nothing, else password and/or code."""
    fresh = fresh_methods(request)
    if dangerous:
        return [method for method in (PASSWORD, CODE) if method not in fresh]
    return [] if fresh & {PASSWORD, CODE} else [PASSWORD]


def is_dangerous(request: HttpRequest) -> bool:
    """A POST to a dangerous action (opening its form is an ordinary request)."""
    match = request.resolver_match
    return request.method == "POST" and bool(match and match.view_name in DANGEROUS_ACTIONS)


_View = Callable[..., HttpResponse]


@overload
def reauthentication_required(function: _View, *, allow_get: bool = False,
                              enabled: Callable[[HttpRequest], bool] | None = None) -> _View: ...


@overload
def reauthentication_required(function: None = None, *, allow_get: bool = False,
                              enabled: Callable[[HttpRequest], bool] | None = None) -> Callable[[_View], _View]: ...


def reauthentication_required(function: _View | None = None, *, allow_get: bool = False,
                              enabled: Callable[[HttpRequest], bool] | None = None
                              ) -> _View | Callable[[_View], _View]:
    """The rule above on a view: same arguments as allauth's decorator of the same name."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            applies = not (allow_get and request.method == "GET") and (enabled is None or enabled(request))
            if applies and request.user.is_authenticated:
                missing = missing_methods(request, dangerous=is_dangerous(request))
                if missing:
                    page = "account_reauthenticate" if PASSWORD in missing else "mfa_reauthenticate"
                    suspended: HttpResponse = suspend_request(request, reverse(page))
                    return suspended
            return view(request, *args, **kwargs)

        return wrapped

    return decorator(function) if function is not None else decorator
