"""What /healthz reports: whether the database, the broker and the AWS endpoint answer.
Only states and short reasons, never URLs with credentials or keys."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connection


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - a health check reports every failure
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "vendor": connection.vendor}


def check_broker() -> dict[str, Any]:
    from portal.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True}


def check_aws() -> dict[str, Any]:
    from botocore.config import Config

    from portal.aws import Boto3ClientFactory

    factory = Boto3ClientFactory(
        endpoint_url=settings.AWS_ENDPOINT_URL or None,
        region_name=settings.AWS_REGION,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=3),
    )
    try:
        identity = factory.client("sts").get_caller_identity()
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "main_account_matches": identity.get("Account") == settings.SWITCHYARD_MAIN_ACCOUNT_ID}


def health_report() -> dict[str, Any]:
    checks = {"db": check_database(), "broker": check_broker(), "aws": check_aws()}
    return {"ok": all(c["ok"] for c in checks.values()), "env": settings.SWITCHYARD_ENV, **checks}
