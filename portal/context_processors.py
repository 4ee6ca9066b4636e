from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def switchyard(request: HttpRequest) -> dict[str, Any]:
    return {"SANDBOX": settings.SANDBOX, "SWITCHYARD_ENV": settings.SWITCHYARD_ENV}
