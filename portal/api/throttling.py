"""A rate limit per token (``SWITCHYARD_API_RATE_PER_TOKEN``, e.g. ``600/minute``), in the shared
cache so it holds across web workers; over it, 429 with ``Retry-After``."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from portal.api.models import ApiToken


class PerTokenThrottle(SimpleRateThrottle):
    scope = "api_token"

    def get_rate(self) -> str:
        return str(settings.SWITCHYARD_API_RATE_PER_TOKEN)

    def allow_request(self, request: Request, view: Any) -> bool:
        # The rate is read per call (a changed setting applies without a restart, tests included).
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return bool(super().allow_request(request, view))

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        token = request.auth
        if not isinstance(token, ApiToken):
            return None
        return f"switchyard-api-throttle-{token.pk}"
