"""Celery tasks of the directory: thin wrappers that take the lock and call the service.

Both are idempotent and safe to run twice; the beat schedule (``portal/celery.py``) runs the sync
every minute, so a lost message or a killed worker costs at most a minute.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from portal.aws import default_client_factory
from switchroles import enforcement

BUSY_RETRY_SECONDS = 10


@shared_task(bind=True, max_retries=30)
def enforcement_sync(self: Any, reason: str = "", force: bool = False) -> None:
    """Recompute every team's and person's main-account IAM policies from the grants in force and
    write what changed. While another run holds the lock, retry shortly: that run may have read
    the grants before the change that scheduled this one."""
    try:
        with enforcement.enforcement_lock():
            enforcement.enforcement_sync(clients=default_client_factory(), reason=reason, force=force)
    except enforcement.EnforcementBusy as exc:
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc


@shared_task(bind=True, max_retries=30)
def enforcement_drift_check(self: Any) -> None:
    """Apply pending changes, then read AWS back and record any difference (drift)."""
    try:
        with enforcement.enforcement_lock():
            clients = default_client_factory()
            enforcement.enforcement_sync(clients=clients, reason="before drift check")
            enforcement.enforcement_drift_check(clients=clients)
    except enforcement.EnforcementBusy as exc:
        raise self.retry(exc=exc, countdown=BUSY_RETRY_SECONDS) from exc
