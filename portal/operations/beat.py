"""The beat scheduler Switchyard runs: django-celery-beat's, leaving beat's heartbeat on each tick."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import close_old_connections
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

from portal.operations import heartbeats
from portal.operations.models import Heartbeat

logger = logging.getLogger(__name__)


class HeartbeatScheduler(DatabaseScheduler):  # type: ignore[misc]
    """Writes beat's heartbeat at least every ``SWITCHYARD_BEAT_HEARTBEAT_SECONDS`` (it never sleeps
    longer than that between ticks), so a stopped beat shows as stale within two periods."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._last_heartbeat = 0.0
        self._started_at = timezone.now()
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        period = heartbeats.beat_period()
        if time.monotonic() - self._last_heartbeat >= period * 0.9:
            try:
                heartbeats.heartbeat_record(name=heartbeats.BEAT_NAME, kind=Heartbeat.Kind.BEAT,
                                            period_seconds=period, started_at=self._started_at)
                self._last_heartbeat = time.monotonic()
            except Exception:  # the next tick tries again; beat itself must go on
                logger.warning("operations.heartbeat.beat_failed", exc_info=True)
                close_old_connections()
        interval = float(super().tick(*args, **kwargs))
        # Never sleep past the next heartbeat (and never spin when the database refused the last one).
        until_heartbeat = max(0.5, period - (time.monotonic() - self._last_heartbeat))
        return min(interval, until_heartbeat)
