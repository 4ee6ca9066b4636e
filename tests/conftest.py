"""Shared fixtures: people with capabilities and enrolled authenticators, signed-in clients.

Tests never reach the network: AWS is moto (in-process, or a local moto server for tests with
real worker processes) and the broker is eager unless a test starts a real worker.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from portal.people.models import User
from portal.sandbox_moto import install as install_sandbox_moto
from tests.factories import PASSWORD as PASSWORD  # re-exported: tests sign in with it
from tests.factories import UserFactory

# The sandbox's moto extensions (root access, …) are live in every test's moto, as in the sandbox.
install_sandbox_moto()

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")



def xdist_worker_index() -> int:
    """0 for a plain run, n for pytest-xdist's worker ``gw<n>``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0)


def pytest_configure(config: pytest.Config) -> None:
    # Parallel workers (pytest-xdist) each get their own Redis database for the cache, because
    # every test clears the cache: on a shared one, one worker would wipe another's rate-limit
    # counters mid-test. (Databases 9 and up are the real-process tests' brokers.)
    from django.conf import settings

    location = settings.CACHES["default"].get("LOCATION", "")
    if isinstance(location, str) and location.startswith("redis://") and os.environ.get("PYTEST_XDIST_WORKER"):
        base = location.rsplit("/", 1)[0] if location.count("/") >= 3 else location
        settings.CACHES["default"]["LOCATION"] = f"{base}/{1 + xdist_worker_index()}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> None:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        call_command("createcachetable", verbosity=0)


def migrated_rows_ensure() -> None:
    """Put back what the data migrations made: the capability groups with their permissions
    (portal 0002) and the seeded role templates (switchroles 0002). Idempotent."""
    from django.apps import apps
    from django.contrib.auth.models import Permission
    from django.core.management.sql import emit_post_migrate_signal

    from portal.people.permissions import CAPABILITIES

    if not Permission.objects.exists():  # a flush without post_migrate (serialized rollback) took them too
        emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    for name, permissions in CAPABILITIES.items():
        group, created = Group.objects.get_or_create(name=name)
        if created:
            for dotted in permissions:
                app_label, codename = dotted.split(".")
                group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    importlib.import_module("switchroles.migrations.0002_seed_role_templates").seed(apps, None)


@pytest.fixture(autouse=True)
def _migrated_rows_restored(request: pytest.FixtureRequest) -> None:
    """A transactional test empties the database when it ends, the data migrations' rows
    included; each transactional test starts with them back, whatever ran before it."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None or not marker.kwargs.get("transaction"):
        return
    request.getfixturevalue("transactional_db")
    if not Group.objects.exists():
        migrated_rows_ensure()


@pytest.fixture(autouse=True)
def _eager_celery(settings: object) -> Iterator[None]:
    from portal.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def _fresh_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    # Rate-limit counters live in the cache; each test starts with none.
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db", "live_server"} & set(
        request.fixturenames
    ):
        from django.core.cache import cache

        request.getfixturevalue("db") if "live_server" not in request.fixturenames else None
        cache.clear()
    yield


MakePerson = Callable[..., User]


@pytest.fixture
def make_person(db: None) -> MakePerson:
    """make_person("eli", "Engineer", mfa=True) → a saved user in those capability groups
    (``tests.factories.UserFactory``; the IAM user name is the username unless given).

    With mfa=True the person has a TOTP authenticator; its secret is on ``user.totp_secret``."""

    def make(username: str, *groups: str, mfa: bool = True, iam_username: str = "", **fields: object) -> User:
        return UserFactory(username=username, capabilities=groups, mfa=mfa, iam_username=iam_username or username,
                           **fields)

    return make


@pytest.fixture
def manager(make_person: MakePerson) -> User:
    return make_person("morgan", "Manager")


@pytest.fixture
def engineer(make_person: MakePerson) -> User:
    return make_person("eli", "Engineer")


@pytest.fixture
def auditor(make_person: MakePerson) -> User:
    return make_person("ada", "Auditor")


@pytest.fixture
def signed_in() -> Callable[[User], Client]:
    """A test client signed in as ``user`` (who has completed MFA if they have an authenticator)."""

    def sign_in(user: User) -> Client:
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return sign_in


def has_authenticator(user: User) -> bool:
    return Authenticator.objects.filter(user=user).exists()
