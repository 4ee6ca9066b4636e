from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_healthz_reports_each_dependency_without_secrets(settings: object) -> None:
    response = Client().get("/healthz")

    body = json.loads(response.content)
    assert set(body) >= {"ok", "db", "broker", "aws"}
    assert body["db"]["ok"] is True
    assert response.status_code == (200 if body["ok"] else 503)
    text = response.content.decode()
    for secret in ("SECRET_KEY", "password", "redis://", "sandbox-only-insecure"):
        assert secret not in text
