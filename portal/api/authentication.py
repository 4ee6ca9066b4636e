"""``Authorization: Bearer <token>``, and nothing else: no session, so no cookie ever authorises
an API call (and CSRF, which protects cookies, has nothing to protect here)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request

from portal.api.models import ApiToken
from portal.api.tokens import api_token_for_bearer
from portal.people.models import User


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        # Read as text: a header no latin-1 can encode (possible in tests, not over HTTP) is just not a token.
        header = str(request.META.get("HTTP_AUTHORIZATION", "")).split()
        if not header or header[0].lower() != self.keyword.lower():
            return None  # no credentials: 401 from the permission check
        if len(header) != 2:
            raise AuthenticationFailed("Send one token: Authorization: Bearer <token>.")
        token = api_token_for_bearer(header[1])
        if token is None:
            raise AuthenticationFailed("This token is not valid, has expired or was revoked.")
        # Services are handed the Django request: audit_record names the token from it.
        request._request.api_token = token  # type: ignore[attr-defined]
        return token.owner, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "portal.api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer",
                "description": "A personal API token from your account's API tokens page."}
