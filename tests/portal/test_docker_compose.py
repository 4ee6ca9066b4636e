"""docker-compose.yml is for users (no Docker engine here): keep it valid and in step with settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from portal import settings as portal_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS_SOURCE = (ROOT / "portal" / "settings.py").read_text()


def test_the_stack_has_every_service() -> None:
    assert set(COMPOSE["services"]) == {"postgres", "redis", "migrate", "web", "worker", "beat"}


def test_app_services_run_in_production_with_every_required_variable() -> None:
    for name in ("migrate", "web", "worker", "beat"):
        env = COMPOSE["services"][name]["environment"]
        assert env["SWITCHYARD_ENV"] == "production"
        for required in portal_settings.PRODUCTION_REQUIRED:
            assert env.get(required), f"{name} lacks {required}"


def test_every_variable_compose_sets_is_read_by_the_settings() -> None:
    env = COMPOSE["services"]["web"]["environment"]
    read = set(re.findall(r'env\.\w+\("([A-Z_]+)"', SETTINGS_SOURCE)) | {"AWS_PROFILE"}
    assert set(env) <= read, set(env) - read


def test_commands_match_the_project() -> None:
    services = COMPOSE["services"]
    assert services["web"]["command"][:2] == ["gunicorn", "portal.wsgi:application"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "portal", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "portal", "beat"]
    assert "migrate" in " ".join(services["migrate"]["command"])
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_broker_and_database_point_at_the_compose_services() -> None:
    env = COMPOSE["services"]["web"]["environment"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in portal_settings.MIDDLEWARE
