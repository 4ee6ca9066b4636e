"""Checks fanned out per account: one leased part per account, worked by as many tasks side by side
as the check's concurrency says, instead of one task walking 3,000 accounts past its time limit.

A check is a :class:`FanOut`: its run and part models (concrete subclasses of
:class:`~portal.operations.models.FanOutRun` and :class:`~portal.operations.models.FanOutPart`),
the Celery task that works a run (called with the run's pk), and two functions:

- ``look(part, clients)``: the account's AWS calls, outside any transaction (may raise
  :class:`PartRetry` to be looked at again later, by whichever worker holds it then);
- ``record(part, looked)``: store what was seen, inside the transaction that holds the part's row,
  only while this worker still holds the part; returns extra part fields to save.

The machine (:func:`fan_out_start`, :func:`fan_out_work`, :func:`fan_out_reconcile`,
:func:`fan_out_progress`):

- each work task claims the next part (pending, or running under a lease that ran out: its worker
  died), looks, and records the result and the part's DONE in one transaction if the part is still
  its own; then the next part, until none is left or its time is up. So an account's results are
  written exactly once however many workers die, and a killed worker's account is checked again by
  another after its lease;
- the last part done finishes the run (``finish(run)`` in the same transaction);
- the reconciler sends a work task to every unfinished run with a part nobody holds (a lost message).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from time import monotonic
from typing import Any, Generic, TypeVar

from celery import current_app
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from portal.aws import ClientFactory
from portal.operations.models import FanOutPart, FanOutPartStatus, FanOutRun

logger = logging.getLogger(__name__)

Part = FanOutPartStatus
RunT = TypeVar("RunT", bound=FanOutRun)
PartT = TypeVar("PartT", bound=FanOutPart)
# A work task checks accounts for this long, then hands over to a fresh task (well inside its limits).
WORK_SECONDS = 100.0
# Parts looked at (claimed) per claiming query.
_CLAIM_BATCH = 20


class PartRetry(Exception):  # noqa: N818 - a signal, not an error
    """Raised by ``look``: look at this account again after ``seconds`` (AWS throttled, say)."""

    def __init__(self, seconds: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {seconds:.0f}s")
        self.seconds = seconds


def _no_finish(run: Any) -> None:
    return None


@dataclass(frozen=True)
class FanOut(Generic[RunT, PartT]):
    name: str  # in log events: "drift", "root_posture"
    run_model: type[RunT]
    part_model: type[PartT]
    task: str  # the Celery task that works a run, e.g. "switchroles.tasks.drift_run_work"
    look: Callable[[PartT, ClientFactory], Any]
    record: Callable[[PartT, Any], dict[str, Any]]
    lease_seconds: Callable[[], float]
    finish: Callable[[RunT], None] = field(default=_no_finish)


@dataclass(frozen=True)
class Worked:
    checked: int  # accounts this call checked and recorded
    retry_in: float | None = None  # parts are held by others: look again then (their leases end)
    more: bool = False  # parts are left for a fresh task (this one's time is up)
    finished: bool = False


@dataclass(frozen=True)
class Progress:
    checked: int
    total: int
    finished: bool

    def __str__(self) -> str:
        return f"{self.checked:,} of {self.total:,} accounts checked"


def fan_out_start(
    fan_out: FanOut[RunT, PartT], *, account_ids: Iterable[int], concurrency: int, **run_fields: Any
) -> RunT:
    """A run with one part per account and ``concurrency`` work tasks (sent once this commits).
    ``run_fields`` are the concrete run's own fields."""
    accounts = list(dict.fromkeys(account_ids))
    workers = min(max(1, concurrency), max(1, len(accounts)))
    with transaction.atomic():
        run = fan_out.run_model._default_manager.create(accounts_total=len(accounts), concurrency=workers,
                                               started_at=timezone.now(), **run_fields)
        fan_out.part_model._default_manager.bulk_create(
            [fan_out.part_model(run=run, account_id=pk) for pk in accounts], batch_size=1000
        )
        if not accounts:
            fan_out_finish(fan_out, run.pk)
        else:
            enqueue_work(fan_out, run.pk, copies=workers)
    logger.info("operations.fan_out.started", extra={"check": fan_out.name, "run": run.pk, "accounts": len(accounts)})
    return run


def enqueue_work(fan_out: FanOut[Any, Any], run_pk: int, *, copies: int = 1, countdown: float = 0) -> None:
    def send() -> None:
        task = current_app.tasks[fan_out.task]
        for _ in range(copies):
            try:
                task.apply_async(args=(run_pk,), countdown=countdown)
            except BrokerUnavailable:  # the reconciler sends it again within a minute
                logger.warning("operations.fan_out.enqueue_failed", extra={"check": fan_out.name, "run": run_pk})

    transaction.on_commit(send)


def _claimable(fan_out: FanOut[Any, PartT], run_pk: int, now: datetime) -> QuerySet[PartT]:
    return fan_out.part_model._default_manager.filter(run_id=run_pk).filter(
        Q(status=Part.PENDING) | Q(status=Part.RUNNING, lease_expires_at__lte=now)
    )


def fan_out_claim(fan_out: FanOut[Any, PartT], run_pk: int, now: datetime) -> PartT | None:
    """The next part nobody holds, leased to this worker (a conditional UPDATE: two workers never
    hold the same part; on PostgreSQL, SKIP LOCKED keeps them from queueing behind each other)."""
    lease = timedelta(seconds=fan_out.lease_seconds())
    with transaction.atomic():
        candidates = _claimable(fan_out, run_pk, now).order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        for part in candidates[:_CLAIM_BATCH]:
            took = _claimable(fan_out, run_pk, now).filter(pk=part.pk, attempts=part.attempts).update(
                status=Part.RUNNING, attempts=F("attempts") + 1, lease_expires_at=now + lease
            )
            if took:
                if part.status == Part.RUNNING:
                    logger.warning("operations.fan_out.lease_ran_out", extra={"check": fan_out.name, "part": part.pk})
                part.status, part.attempts = Part.RUNNING, part.attempts + 1
                return part
    return None


def fan_out_check_part(fan_out: FanOut[Any, PartT], part: PartT, clients: ClientFactory) -> bool:
    """Look at one account (AWS calls outside any transaction) and record it if the part is still
    ours. False when another worker took it over (or it must be looked at again later)."""
    try:
        looked = fan_out.look(part, clients)
    except PartRetry as retry:
        # Keep it held until then: any worker (this one included) takes it again once the lease ends.
        fan_out.part_model._default_manager.filter(pk=part.pk, status=Part.RUNNING, attempts=part.attempts).update(
            lease_expires_at=timezone.now() + timedelta(seconds=retry.seconds)
        )
        logger.warning("operations.fan_out.retry", extra={"check": fan_out.name, "part": part.pk, "reason": str(retry)})
        return False
    with transaction.atomic():
        locked = fan_out.part_model._default_manager.select_for_update().get(pk=part.pk)
        if locked.status != Part.RUNNING or locked.attempts != part.attempts:
            # Our lease ran out and another worker took the account over: its results count.
            logger.warning("operations.fan_out.lease_lost", extra={"check": fan_out.name, "part": part.pk})
            return False
        extra = fan_out.record(locked, looked)
        for name, value in extra.items():
            setattr(locked, name, value)
        locked.status, locked.checked_at, locked.lease_expires_at = Part.DONE, timezone.now(), None
        locked.save(update_fields=["status", "checked_at", "lease_expires_at", *extra])
    return True


def fan_out_work(
    fan_out: FanOut[Any, Any], *, run_id: int, clients: ClientFactory, seconds: float = WORK_SECONDS
) -> Worked:
    """Check accounts of run ``run_id`` one after another for up to ``seconds``. Safe to run any
    number of times, side by side or after a crash."""
    deadline = monotonic() + seconds
    checked = 0
    while monotonic() < deadline:
        part = fan_out_claim(fan_out, run_id, timezone.now())
        if part is None:
            break
        if fan_out_check_part(fan_out, part, clients):
            checked += 1
    now = timezone.now()
    left = fan_out.part_model._default_manager.filter(run_id=run_id).exclude(status=Part.DONE)
    if not left.exists():
        return Worked(checked, finished=fan_out_finish(fan_out, run_id))
    if _claimable(fan_out, run_id, now).exists():
        return Worked(checked, more=True)
    held_until = min(p.lease_expires_at or now for p in left.only("lease_expires_at"))
    return Worked(checked, retry_in=max(1.0, (held_until - now).total_seconds() + 1))


def fan_out_finish(fan_out: FanOut[RunT, Any], run_pk: int) -> bool:
    """Once every part is done: ``finish(run)`` and the run's end. True the one time it finishes."""
    with transaction.atomic():
        run = fan_out.run_model._default_manager.select_for_update().get(pk=run_pk)
        if run.finished_at is not None or fan_out.part_model._default_manager.filter(run_id=run_pk).exclude(
            status=Part.DONE
        ).exists():
            return False
        fan_out.finish(run)
        run.finished_at = timezone.now()
        run.save(update_fields=["finished_at"])
    logger.info("operations.fan_out.finished", extra={"check": fan_out.name, "run": run_pk})
    return True


def fan_out_reconcile(fan_out: FanOut[Any, Any], *, now: datetime | None = None) -> list[int]:
    """Send a work task to every unfinished run with a part nobody holds (a lost message, or every
    worker that held one died). Safe to run as often as wanted."""
    moment = now or timezone.now()
    held_or_done = fan_out.part_model._default_manager.filter(
        Q(status=Part.PENDING) | Q(status=Part.RUNNING, lease_expires_at__lte=moment)
    )
    runs = sorted(set(
        held_or_done.filter(run__finished_at__isnull=True).values_list("run_id", flat=True)
    ))
    for run_pk in runs:
        enqueue_work(fan_out, run_pk)
    return runs


def fan_out_progress(fan_out: FanOut[Any, Any], *, run: FanOutRun) -> Progress:
    done = fan_out.part_model._default_manager.filter(run_id=run.pk, status=Part.DONE).count()
    return Progress(checked=done, total=run.accounts_total, finished=run.finished_at is not None)
