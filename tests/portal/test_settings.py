"""Production settings refuse to start without their variables and pass Django's deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "SWITCHYARD_ENV": "production",
    "SECRET_KEY": "x" * 24 + "-a-long-random-production-secret-key-9f8e7d6c5b4a",
    "ALLOWED_HOSTS": "switchyard.example.com",
    "DATABASE_URL": f"sqlite:///{ROOT / 'var' / 'deploy-check.sqlite3'}",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SWITCHYARD_ENCRYPTION_KEY": "a-production-encryption-key-of-good-length",
    "STATIC_ROOT": str(ROOT / "var" / "test-static"),
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SWITCHYARD_", "DJANGO_"))}
    for name in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL"):
        base.pop(name, None)
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_production_passes_the_deploy_check_with_no_warning() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL",
                                     "SWITCHYARD_ENCRYPTION_KEY"])
def test_production_refuses_to_start_without_a_required_variable(missing: str) -> None:
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}

    result = _manage("check", env=env)

    assert result.returncode != 0
    assert missing in result.stderr
    assert "will not start in production" in result.stderr


def test_production_settings_are_hardened() -> None:
    code = (
        "from django.conf import settings as s;"
        "print(s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_AGE,"
        " s.CONTENT_SECURITY_POLICY['DIRECTIVES']['frame-ancestors'])"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import django; django.setup();" + code], cwd=ROOT,
        env={**os.environ, **PRODUCTION_ENV, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True, text=True, timeout=60, check=True,
    )
    hsts, session_secure, csrf_secure, session_age, frame_ancestors = result.stdout.split(maxsplit=4)
    assert int(hsts) >= 31536000
    assert session_secure == csrf_secure == "True"
    assert int(session_age) <= 12 * 3600
    assert "'none'" in frame_ancestors
