"""What /healthz reports: whether the database, the broker and the AWS endpoint answer, and how old
beat's and each worker's heartbeats are (``stale`` names the ones older than two periods).
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
    from portal import aws

    factory = aws.Boto3ClientFactory(
        endpoint_url=settings.AWS_ENDPOINT_URL or None, region_name=settings.AWS_REGION, config=aws.QUICK_CHECK_CONFIG
    )
    try:
        account_id = aws.caller_account_id(clients=factory)
    except aws.AwsError as exc:
        return {"ok": False, "error": exc.code}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "main_account_matches": account_id == settings.SWITCHYARD_MAIN_ACCOUNT_ID}


def check_heartbeats() -> dict[str, Any]:
    """Beat's and each worker's heartbeat age (portal.operations.heartbeats); stale after two periods."""
    from portal.operations.heartbeats import pulses

    try:
        found = pulses()
    except Exception as exc:  # noqa: BLE001 - the database check says why
        return {"beat": {"ok": False, "error": type(exc).__name__},
                "workers": {"ok": False, "error": type(exc).__name__}, "problems": []}
    return {
        "beat": found.beat.as_json(),
        "workers": {"ok": found.workers_ok, "count": len(found.workers),
                    "each": {pulse.name.removeprefix("worker:"): pulse.as_json() for pulse in found.workers}},
        "problems": found.problems(),
    }


def health_report() -> dict[str, Any]:
    checks = {"db": check_database(), "broker": check_broker(), "aws": check_aws()}
    beats = check_heartbeats()
    stale = [name for name in ("beat", "workers") if not beats[name]["ok"]]
    return {
        "ok": all(c["ok"] for c in checks.values()) and not stale,
        "env": settings.SWITCHYARD_ENV,
        **checks,
        "beat": beats["beat"],
        "workers": beats["workers"],
        "stale": stale,
        "problems": beats["problems"],
    }
