"""Organization-wide capacity slots: AWS's limits on what may run at once, shared by every worker,
process and machine through the database (not a per-process counter).

A pool (``organizations.create_account``: at most ``SWITCHYARD_MAX_CREATIONS_IN_FLIGHT`` CreateAccount
requests in flight) is ``capacity`` rows of :class:`~portal.operations.models.CapacitySlot`. :func:`slot_take`
gives one to a named holder (an account, not a worker: the slot stands for AWS's work, which outlives
any one task) with a lease; the holder renews it while it waits (:func:`slot_renew`) and gives it back
when AWS is done (:func:`slot_release`). A holder that stops renewing (its worker was killed and
nobody carried the account on) loses the slot when the lease runs out, and the next taker gets it.

Taking is safe under any concurrency: on PostgreSQL candidates are locked with ``SELECT ... FOR
UPDATE SKIP LOCKED``, one at a time (takers never queue behind each other, and takers at the same
moment each get a different free slot), and on every database the take is a conditional UPDATE that
only succeeds while the slot is still free, so two takers can never hold the same slot.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from time import monotonic, sleep
from uuid import uuid4

from django.db import connection, transaction
from django.db.models import Case, Q, QuerySet, Value, When
from django.utils import timezone

from portal.operations.models import CapacitySlot

logger = logging.getLogger(__name__)


def _ensure_pool(pool: str, capacity: int) -> None:
    if CapacitySlot.objects.filter(pool=pool, number__lte=capacity).count() < capacity:
        CapacitySlot.objects.bulk_create(
            [CapacitySlot(pool=pool, number=number) for number in range(1, capacity + 1)], ignore_conflicts=True
        )


def _free(now: datetime) -> Q:
    return Q(holder="") | Q(lease_expires_at__lte=now) | Q(lease_expires_at__isnull=True)


def _free_slots_locked_for_take(pool: str, capacity: int, now: datetime) -> QuerySet[CapacitySlot]:
    # A slot whose holder's lease ran out goes first: a dead holder's name never lingers on it.
    slots = (
        CapacitySlot.objects.filter(pool=pool, number__lte=capacity).filter(_free(now))
        .annotate(never_held=Case(When(holder="", then=Value(1)), default=Value(0)))
        .order_by("never_held", "number")
    )
    if connection.features.has_select_for_update_skip_locked:
        slots = slots.select_for_update(skip_locked=True)
    return slots


def slot_take(
    *, pool: str, holder: str, capacity: int, lease_seconds: float, now: datetime | None = None
) -> int | None:
    """Give ``holder`` one of ``pool``'s ``capacity`` slots until ``lease_seconds`` from now, and
    return its number; renew it if ``holder`` holds one already. ``None`` when every slot is held
    under a lease that has not run out."""
    moment = now or timezone.now()
    _ensure_pool(pool, capacity)
    lease_ends = moment + timedelta(seconds=lease_seconds)
    mine = CapacitySlot.objects.filter(pool=pool, number__lte=capacity, holder=holder).order_by("number").first()
    if mine is not None and slot_renew(pool=pool, holder=holder, lease_seconds=lease_seconds, now=moment):
        return mine.number
    tried: list[int] = []
    while True:
        with transaction.atomic():
            # One candidate at a time: locking every free slot would hide them all from a concurrent
            # taker (SKIP LOCKED), which would then find none free and wait for nothing.
            slot = _free_slots_locked_for_take(pool, capacity, moment).exclude(pk__in=tried).first()
            if slot is None:
                return None
            took = CapacitySlot.objects.filter(pk=slot.pk).filter(_free(moment)).update(
                holder=holder, taken_at=moment, lease_expires_at=lease_ends
            )
        if took:
            if slot.holder and slot.holder != holder:
                logger.warning("portal.operations.capacity.lease_ran_out",
                               extra={"pool": pool, "slot": slot.number, "previous_holder": slot.holder,
                                      "holder": holder})
            return slot.number
        tried.append(slot.pk)  # taken under us (a database without row locks): the next one


def slot_renew(*, pool: str, holder: str, lease_seconds: float, now: datetime | None = None) -> bool:
    """Extend ``holder``'s lease on its slot; False when it holds none (it ran out and was taken)."""
    moment = now or timezone.now()
    return bool(
        CapacitySlot.objects.filter(pool=pool, holder=holder).update(
            lease_expires_at=moment + timedelta(seconds=lease_seconds)
        )
    )


def slot_release(*, pool: str, holder: str) -> bool:
    """Give back ``holder``'s slot (if it still holds one). Safe to call any number of times."""
    return bool(
        CapacitySlot.objects.filter(pool=pool, holder=holder).update(holder="", taken_at=None, lease_expires_at=None)
    )


def slot_holders(*, pool: str, capacity: int, now: datetime | None = None) -> list[str]:
    """Who holds ``pool``'s slots under a lease that has not run out, by slot number."""
    moment = now or timezone.now()
    return list(
        CapacitySlot.objects.filter(pool=pool, number__lte=capacity, lease_expires_at__gt=moment)
        .exclude(holder="").order_by("number").values_list("holder", flat=True)
    )


# --------------------------------------------------------------------------------------------------
# Calls per second (the same slots, each lent for one second and never given back early)
# --------------------------------------------------------------------------------------------------


class RateLimitTimeout(Exception):
    """No call slot came free in time: the caller treats it as AWS's throttling (retry later)."""


def rate_take(*, pool: str, per_second: int, timeout_seconds: float = 60.0) -> float:
    """Wait until this call may go: at most ``per_second`` calls of ``pool`` in any second, across
    every process and machine (each call holds one of ``per_second`` slots for one second). Returns
    the seconds waited; raises :class:`RateLimitTimeout` after ``timeout_seconds``."""
    started = monotonic()
    holder = f"call:{uuid4().hex}"
    while slot_take(pool=pool, holder=holder, capacity=per_second, lease_seconds=1.0) is None:
        if monotonic() - started > timeout_seconds:
            raise RateLimitTimeout(f"no {pool} call slot came free in {timeout_seconds:.0f} s")
        sleep(0.05)
    return monotonic() - started
