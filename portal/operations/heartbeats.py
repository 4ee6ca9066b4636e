"""Heartbeats: beat and every worker say "still here" every period, in the database.

Beat's is written by the scheduler itself (:class:`portal.operations.beat.HeartbeatScheduler`, each tick),
not by a task it sends: a dead broker or dead workers must not make a live beat look dead, and a
dead beat must not be hidden by live workers. A worker's is written by a thread of its main process,
started when the worker is ready and removed when it shuts down cleanly; a killed worker's heartbeat
just ages. Stale means older than two of the process's own periods.

A worker's heartbeat that stays stale for ``SWITCHYARD_HEARTBEAT_FORGET_SECONDS`` (default an hour)
is forgotten (a machine taken out of service must not keep /healthz failing forever).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from portal.operations.models import Heartbeat

logger = logging.getLogger(__name__)

BEAT_NAME = "beat"
STALE_PERIODS = 2


def beat_period() -> int:
    return int(settings.SWITCHYARD_BEAT_HEARTBEAT_SECONDS)


def worker_period() -> int:
    return int(settings.SWITCHYARD_WORKER_HEARTBEAT_SECONDS)


def heartbeat_record(*, name: str, kind: str, period_seconds: int, started_at: datetime | None = None) -> None:
    """Write ``name``'s heartbeat now (one UPDATE; an INSERT the first time)."""
    now = timezone.now()
    updated = Heartbeat.objects.filter(name=name).update(beat_at=now, period_seconds=period_seconds,
                                                         pid=os.getpid(), kind=kind)
    if not updated:
        Heartbeat.objects.update_or_create(
            name=name,
            defaults={"kind": kind, "beat_at": now, "period_seconds": period_seconds, "pid": os.getpid(),
                      "started_at": started_at or now},
        )


def heartbeat_forget(*, name: str) -> None:
    """A process that stops cleanly takes its heartbeat with it."""
    Heartbeat.objects.filter(name=name).delete()


@dataclass(frozen=True)
class Pulse:
    """One process's heartbeat as /healthz and the home page report it."""

    name: str
    kind: str
    age_seconds: float | None  # None: never heard from
    period_seconds: int

    @property
    def stale_after_seconds(self) -> int:
        return STALE_PERIODS * self.period_seconds

    @property
    def ok(self) -> bool:
        return self.age_seconds is not None and self.age_seconds <= self.stale_after_seconds

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "age_seconds": None if self.age_seconds is None else round(self.age_seconds, 1),
            "period_seconds": self.period_seconds,
            "stale_after_seconds": self.stale_after_seconds,
        }

    def problem(self) -> str:
        """What is wrong, in a manager's words ("" when nothing is)."""
        if self.ok:
            return ""
        what = ("The scheduler (celery beat) drives grant expiry, the onboarding reconciler and the "
                "every-minute enforcement sync; while it is down expired grants keep working in AWS.")
        if self.kind == Heartbeat.Kind.WORKER:
            what = f"The worker {self.name.removeprefix('worker:')} runs onboarding, roll-outs and checks."
        if self.age_seconds is None:
            return f"{what} It has never reported: start it."
        return (f"{what} It last reported {_human(self.age_seconds)} ago (expected every "
                f"{_human(self.period_seconds)}): check that it is running and restart it.")


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


@dataclass(frozen=True)
class Pulses:
    beat: Pulse
    workers: tuple[Pulse, ...]

    @property
    def workers_ok(self) -> bool:
        return bool(self.workers) and all(pulse.ok for pulse in self.workers)

    @property
    def ok(self) -> bool:
        return self.beat.ok and self.workers_ok

    def problems(self) -> list[str]:
        found = [p.problem() for p in (self.beat, *self.workers) if not p.ok]
        if not self.workers:
            found.append("No worker has reported: onboarding, roll-outs and checks are not running. Start a worker.")
        return found


def pulses(*, now: datetime | None = None) -> Pulses:
    """Every heartbeat with its age (one query)."""
    moment = now or timezone.now()
    forget = timedelta(seconds=settings.SWITCHYARD_HEARTBEAT_FORGET_SECONDS)
    beat = Pulse(BEAT_NAME, Heartbeat.Kind.BEAT, None, beat_period())
    workers = []
    for row in Heartbeat.objects.all():
        age = max(0.0, (moment - row.beat_at).total_seconds())
        pulse = Pulse(row.name, row.kind, age, row.period_seconds)
        if row.kind == Heartbeat.Kind.BEAT:
            beat = pulse
        elif age <= forget.total_seconds():
            workers.append(pulse)
    return Pulses(beat=beat, workers=tuple(workers))


# --------------------------------------------------------------------------------------------------
# The worker's heartbeat thread (Celery signals of the worker's main process)
# --------------------------------------------------------------------------------------------------

_worker_stop = threading.Event()


def worker_heartbeat_name(hostname: str) -> str:
    return f"worker:{hostname}"


def _worker_loop(name: str, period: int, started_at: datetime) -> None:
    while not _worker_stop.is_set():
        try:
            heartbeat_record(name=name, kind=Heartbeat.Kind.WORKER, period_seconds=period, started_at=started_at)
        except Exception:  # a database hiccup must not kill the thread; the heartbeat just ages
            logger.warning("operations.heartbeat.worker_failed", exc_info=True)
            close_old_connections()
        _worker_stop.wait(period)
    connection.close()


def _on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    hostname = getattr(sender, "hostname", None) or socket.gethostname()
    name = worker_heartbeat_name(hostname)
    _worker_stop.clear()
    thread = threading.Thread(target=_worker_loop, args=(name, worker_period(), timezone.now()),
                              name="switchyard-heartbeat", daemon=True)
    thread.start()


def _on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    _worker_stop.set()
    hostname = getattr(sender, "hostname", None)
    if hostname:
        try:
            heartbeat_forget(name=worker_heartbeat_name(hostname))
        except Exception:  # shutting down: nothing more to do about it
            logger.warning("operations.heartbeat.forget_failed", exc_info=True)


def connect_worker_signals() -> None:
    from celery.signals import worker_ready, worker_shutdown

    worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="switchyard-worker-heartbeat")
    worker_shutdown.connect(_on_worker_shutdown, weak=False, dispatch_uid="switchyard-worker-heartbeat-stop")
