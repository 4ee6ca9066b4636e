"""Leases: a worker holds a step row while it runs it, so a second worker skips the row and a
worker that died loses it once its lease runs out.

Every step model has ``status`` (with the values ``pending`` and ``running``), ``attempts`` and
``lease_expires_at``; most have ``next_run_at``. ``attempts`` is the lease's fencing token: a worker
records its result only if the row is still ``running`` at the attempt it took
(:func:`lease_lost`), so a worker whose lease ran out never overwrites the one that took over.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, cast

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import F, Q, QuerySet

PENDING = "pending"
RUNNING = "running"
# The doubling stops here, so ``2 ** exponent`` stays small whatever the attempt.
MAX_DOUBLINGS = 16


class LeasedRow(Protocol):
    """The fields the machine reads and writes on a step row."""

    pk: Any
    status: str
    attempts: int
    lease_expires_at: datetime | None


Row = TypeVar("Row", bound=models.Model)


def lease_duration() -> timedelta:
    """How long a worker holds an onboarding step or a roll-out part: longer than their tasks' hard
    time limit (180 s), so a lease only runs out when its worker died
    (``SWITCHYARD_ONBOARDING_LEASE_SECONDS``, default 200; real-worker tests shorten it)."""
    return timedelta(seconds=settings.SWITCHYARD_ONBOARDING_LEASE_SECONDS)


def redrive_after() -> timedelta:
    """How long a pending row may wait for its message before the reconciler sends another (a lost
    message; ``SWITCHYARD_ONBOARDING_REDRIVE_AFTER_SECONDS``, default 120)."""
    return timedelta(seconds=settings.SWITCHYARD_ONBOARDING_REDRIVE_AFTER_SECONDS)


def backoff_seconds(attempt: int, *, base: int, cap: int) -> int:
    """``base`` seconds for the first attempt, doubling with each attempt after it, at most ``cap``."""
    return int(min(cap, base * 2 ** max(0, min(attempt - 1, MAX_DOUBLINGS))))


def lease_busy(row: LeasedRow, *, now: datetime) -> bool:
    """True while another worker holds ``row``: it is running under a lease that has not run out."""
    return row.status == RUNNING and row.lease_expires_at is not None and row.lease_expires_at > now


def lease_take(row: LeasedRow, *, now: datetime, lease: timedelta) -> str:
    """Lease ``row`` to the caller, who has locked it (``select_for_update``) and checked
    :func:`lease_busy`: running, one more attempt, held until ``now + lease``. Returns the status it
    had (``running`` means a dead worker's lease was taken over). The caller saves the row, with
    ``status``, ``attempts`` and ``lease_expires_at`` among the fields."""
    previous = row.status
    row.status = RUNNING
    row.attempts += 1
    row.lease_expires_at = now + lease
    return previous


def lease_lost(row: LeasedRow, *, attempt: int) -> bool:
    """True when the caller, who took ``row`` at ``attempt``, no longer holds it (its lease ran out and
    another worker took it over, or a person stopped it): the caller must not record anything."""
    return row.status != RUNNING or row.attempts != attempt


def lease_give_back(model: type[models.Model], *, pk: Any, attempt: int, next_run_at: datetime | None,
                    **values: Any) -> bool:
    """Put a row the caller still holds (running at ``attempt``) back to pending, due at
    ``next_run_at``, with ``values`` written alongside (its last error, say). One conditional UPDATE:
    a row someone else took over is left alone. Returns whether it was given back."""
    given = model._default_manager.filter(pk=pk, attempts=attempt, status=RUNNING).update(
        status=PENDING, lease_expires_at=None, next_run_at=next_run_at, **values
    )
    return bool(given)


def claim_next(claimable: Callable[[datetime], QuerySet[Row]], *, now: datetime, lease: timedelta,
               look_at: int = 20) -> Row | None:
    """Lease the first row of ``claimable(now)`` (ordered by pk) that nobody holds, and return it.

    ``claimable`` returns the rows that may be taken at ``now`` (pending, or running under a lease
    that ran out). Each candidate is taken with a conditional UPDATE on its attempt, so two workers
    never both win a row; on PostgreSQL, SKIP LOCKED keeps them from queueing behind each other.
    The returned row has the status and attempt it was taken at; None when every row is held.
    """
    with transaction.atomic():
        candidates = claimable(now).order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        for candidate in candidates[:look_at]:
            row = cast(LeasedRow, candidate)
            took = claimable(now).filter(pk=row.pk, attempts=row.attempts).update(
                status=RUNNING, attempts=F("attempts") + 1, lease_expires_at=now + lease
            )
            if took:
                row.status, row.attempts, row.lease_expires_at = RUNNING, row.attempts + 1, now + lease
                return candidate
    return None


def due_filter(*, now: datetime, prefix: str = "", waiting: str | None = None, scheduled: bool = True) -> Q:
    """The rows a reconciler re-drives at ``now``: running under a lease that ran out (its worker
    died) or none, and pending ones (with ``scheduled``, only once their ``next_run_at`` is reached:
    a pending row nobody picked up within its re-drive delay, i.e. a lost message). ``waiting``
    names a status that waits for ``next_run_at`` too. ``prefix`` ("steps__") filters through a relation."""

    def q(**lookups: Any) -> Q:
        return Q(**{f"{prefix}{name}": value for name, value in lookups.items()})

    due = (q(status=RUNNING, lease_expires_at__lte=now) | q(status=RUNNING, lease_expires_at__isnull=True))
    if scheduled:
        due |= q(status=PENDING, next_run_at__lte=now) | q(status=PENDING, next_run_at__isnull=True)
    else:
        due |= q(status=PENDING)
    if waiting is not None:
        due |= q(status=waiting, next_run_at__lte=now)
    return due
