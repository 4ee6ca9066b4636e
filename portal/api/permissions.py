"""One rule for every endpoint: a view declares, per HTTP method, the capabilities that may call
it (``ANYONE`` for every token holder), and writes need a read-write token. Capabilities are read
from the database on every call, so a removed capability answers 403 at once."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import NotAuthenticated, PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from portal.api.models import ApiToken
from portal.people.models import User
from portal.people.permissions import AUDITOR, CAPABILITIES, ENGINEER, MANAGER, user_has_capability

ANYONE: tuple[str, ...] = ()
READERS = (MANAGER, AUDITOR)
MANAGERS = (MANAGER,)

__all__ = ["ANYONE", "AUDITOR", "ENGINEER", "MANAGER", "MANAGERS", "READERS", "ApiRequest", "CapabilityPermission",
           "capabilities_of"]


class ApiRequest(Request):
    """The request every endpoint's handler receives: ``CapabilityPermission`` has refused any call
    without a token, so ``user`` is the token's owner (a ``User``). Only an annotation."""

    user: User


def capabilities_of(user: Any) -> list[str]:
    return [name for name in CAPABILITIES if user_has_capability(user, name)]


class CapabilityPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            raise NotAuthenticated("Send a token: Authorization: Bearer <token>.")
        allowed: dict[str, tuple[str, ...]] = getattr(view, "capabilities", {})
        method = "GET" if request.method == "HEAD" else str(request.method)
        if method not in allowed:
            if method.lower() in view.http_method_names and hasattr(view, method.lower()):
                # A handler whose method declares no capabilities is refused, never open to every token.
                raise PermissionDenied("This endpoint does not say who may call it.")
            return True  # the view answers 405
        if method not in SAFE_METHODS and not token.is_read_write:
            raise PermissionDenied("This token may only read: create a read-write token to make changes.")
        names = allowed[method]
        if names and not user_has_capability(request.user, *names):
            raise PermissionDenied(f"This needs the {' or '.join(names)} capability.")
        return True
