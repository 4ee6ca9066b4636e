"""Capabilities are Django groups (Manager, Engineer, Auditor) holding model permissions.

Views declare which capabilities may enter; objects a person may not see answer 404 through the
scoped selectors, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.http.response import HttpResponseBase

MANAGER = "Manager"
ENGINEER = "Engineer"
AUDITOR = "Auditor"
FINANCE = "Finance"
# Separation of duties (issue 18): decides access-review items; given to auditors (or managers).
REVIEWER = "Reviewer"

# What each capability may do, as model permissions (app_label.codename). The data migration
# portal/0002 creates the groups from this; later migrations grant the permissions of models they add
# (portal/0004: access reviews).
CAPABILITIES: dict[str, tuple[str, ...]] = {
    MANAGER: (
        "onboarding.view_client", "onboarding.add_client", "onboarding.change_client",
        "onboarding.view_awsaccount", "onboarding.add_awsaccount", "onboarding.change_awsaccount",
        "onboarding.view_onboardingstep", "onboarding.change_onboardingstep",
        "switchroles.view_roletemplate", "switchroles.add_roletemplate", "switchroles.change_roletemplate",
        "switchroles.view_accountrole", "switchroles.change_accountrole",
        "switchroles.view_team", "switchroles.add_team", "switchroles.change_team",
        "switchroles.view_grant", "switchroles.add_grant", "switchroles.change_grant",
        "switchroles.view_linkuse",
        "portal.view_auditevent", "portal.view_auditchaincheck",
        "portal.view_accessreview", "portal.add_accessreview", "portal.change_accessreview",
        "portal.view_accessreviewitem", "portal.change_accessreviewitem",
    ),
    ENGINEER: (
        "switchroles.view_accountrole",
    ),
    AUDITOR: (
        "onboarding.view_client", "onboarding.view_awsaccount", "onboarding.view_onboardingstep",
        "switchroles.view_roletemplate", "switchroles.view_accountrole", "switchroles.view_team",
        "switchroles.view_grant", "switchroles.view_linkuse",
        "portal.view_auditevent", "portal.view_auditchaincheck",
        "portal.view_accessreview", "portal.view_accessreviewitem",
    ),
    # Reads every client's costs and sets markups. The billing permissions are granted by
    # billing/0002 (portal/0002 may run before the billing models exist). Managers read billing too.
    FINANCE: (
        "onboarding.view_client",
    ),
    # Created by portal/0006_reviewer_capability.
    REVIEWER: (
        "portal.view_accessreview", "portal.view_accessreviewitem", "portal.change_accessreviewitem",
    ),
}


def user_has_capability(user: Any, *names: str) -> bool:
    if not user.is_authenticated:
        return False
    if user.is_superuser:
        return True
    return any(g.name in names for g in user.groups.all())


def capability_required(
    *names: str,
) -> Callable[[Callable[..., HttpResponseBase]], Callable[..., HttpResponseBase]]:
    """Only people holding one of ``names`` may enter; others get 403, anonymous people the sign-in."""

    def decorator(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not user_has_capability(request.user, *names):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return login_required(wrapper)

    return decorator
