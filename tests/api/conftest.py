"""API fixtures: personal tokens for the shared personas, and a client that sends one."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from portal.api.models import ApiToken
from portal.api.tokens import api_token_create
from portal.people.models import User


class ApiClient:
    """A test client that sends ``Authorization: Bearer <token>`` and JSON bodies, and no cookie."""

    def __init__(self, secret: str | None) -> None:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self.http = Client(headers=headers)
        self.http.raise_request_exception = False

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.http.get(path, query or {})

    def post(self, path: str, body: Any = None, *, raw: str | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.http.post(path, data=data, content_type="application/json")


MakeToken = Callable[..., str]


@pytest.fixture
def make_token(db: None) -> MakeToken:
    def make(owner: User, scope: str = ApiToken.Scope.READ_WRITE, days: int = 30) -> str:
        return api_token_create(owner=owner, name=f"{owner.username} {scope}", scope=scope, lifetime_days=days).secret

    return make


@pytest.fixture
def api(make_token: MakeToken) -> Callable[..., ApiClient]:
    """api(user) → a client with a fresh read-write token of ``user``; api(user, "read"); api(None)."""

    def client(owner: User | None, scope: str = ApiToken.Scope.READ_WRITE) -> ApiClient:
        return ApiClient(make_token(owner, scope) if owner is not None else None)

    return client


@pytest.fixture
def world(make_person: Any, settings: Any) -> Any:
    """The security proofs' world (tests/security/support.py): seven visitors, a row behind every id,
    and a read-write token of each signed-in persona (``world.api_tokens``)."""
    from tests.security.support import build_world

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return build_world(make_person)


@pytest.fixture
def aws_forbidden(monkeypatch: pytest.MonkeyPatch) -> Any:
    from tests.security.support import AwsForbidden, replace_client_factory

    factory = AwsForbidden()
    replace_client_factory(monkeypatch, factory)
    return factory


def as_persona(world: Any, persona: str) -> ApiClient:
    return ApiClient(world.api_tokens.get(persona))
