"""What keeps the clock and the queue honest across processes and machines.

- :class:`Heartbeat`: beat and each worker write theirs every period; ``/healthz`` and the managers'
  home page read their age (stale after two periods).
- :class:`CapacitySlot`: the Organization-wide limits Switchyard must respect whatever the number of
  workers (at most 5 CreateAccount in flight, ...): one row per slot of a pool, held by a named holder
  until released or until its lease runs out (a killed worker's slot comes back by itself).
"""

from __future__ import annotations

from django.db import models


class Heartbeat(models.Model):
    class Kind(models.TextChoices):
        BEAT = "beat", "Scheduler (celery beat)"
        WORKER = "worker", "Worker"

    name = models.CharField(max_length=200, unique=True, help_text="beat, or worker:<hostname>")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    beat_at = models.DateTimeField()
    period_seconds = models.PositiveIntegerField(help_text="How often this process promised to beat.")
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return f"heartbeat of {self.name} at {self.beat_at:%H:%M:%S}"


class CapacitySlot(models.Model):
    pool = models.CharField(max_length=100, help_text="e.g. organizations.create_account")
    number = models.PositiveSmallIntegerField()
    holder = models.CharField(max_length=200, blank=True, help_text="Who holds it, e.g. onboarding.account:42")
    taken_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pool", "number"]
        constraints = [models.UniqueConstraint(fields=["pool", "number"], name="capacity_slot_unique_number")]

    def __str__(self) -> str:
        return f"{self.pool} slot {self.number}: {self.holder or 'free'}"


class FanOutRun(models.Model):
    """A check fanned out over the accounts (:mod:`portal.operations.fan_out`): the drift check's
    member-account part, the daily root-posture check. Each app's concrete run has its parts."""

    accounts_total = models.PositiveIntegerField(default=0)
    concurrency = models.PositiveSmallIntegerField(default=1)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True


class FanOutPartStatus(models.TextChoices):
    PENDING = "pending", "Waiting"
    RUNNING = "running", "Being checked"
    DONE = "done", "Checked"


class FanOutPart(models.Model):
    """One account of a :class:`FanOutRun`, checked by whichever worker holds its lease. The concrete
    part has ``run`` (a foreign key with ``related_name="parts"``) and ``account``."""

    Status = FanOutPartStatus

    status = models.CharField(max_length=16, choices=FanOutPartStatus.choices, default=FanOutPartStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
