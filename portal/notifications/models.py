"""The notices and the opt-outs (``portal.notifications``)."""

from __future__ import annotations

from django.db import models


class NotificationOptOut(models.Model):
    """A kind of notice a person chose not to receive (everything is on until they opt out)."""

    person = models.ForeignKey("portal.User", on_delete=models.CASCADE, related_name="notification_opt_outs")
    event = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["person", "event"], name="one_opt_out_per_event")]

    def __str__(self) -> str:
        return f"{self.person} opted out of {self.event}"


class Notice(models.Model):
    """One message to one person (e-mail) or one team's webhook, sent by a Celery task
    (``portal.notifications``). ``dedupe_key`` is unique: the same notice is never made, nor sent, twice."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Team webhook"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Could not be sent"

    dedupe_key = models.CharField(max_length=255, unique=True)
    event = models.CharField(max_length=64, db_index=True)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipient = models.ForeignKey("portal.User", null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="notices")
    team = models.ForeignKey("switchroles.Team", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="notices")
    address = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=200)
    body = models.TextField(max_length=5000)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.event} to {self.address or self.team_id}"
