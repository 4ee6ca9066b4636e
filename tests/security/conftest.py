"""Fixtures of the security proofs (the helpers they use are in tests/security/support.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import MakePerson
from tests.security.support import AwsForbidden, AwsUnreachable, World, build_world, replace_client_factory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # Seven people per test: the production hasher's 1,000,000 rounds would cost seconds each time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(make_person: MakePerson) -> World:
    return build_world(make_person)


@pytest.fixture
def aws_forbidden(monkeypatch: pytest.MonkeyPatch) -> AwsForbidden:
    """Every AWS client factory of the portal fails the test if asked for a client."""
    factory = AwsForbidden()
    replace_client_factory(monkeypatch, factory)
    return factory


@pytest.fixture
def aws_unreachable(monkeypatch: pytest.MonkeyPatch) -> AwsUnreachable:
    """Every AWS client factory of the portal hands out clients that cannot connect."""
    factory = AwsUnreachable()
    replace_client_factory(monkeypatch, factory)
    return factory
