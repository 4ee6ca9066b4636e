from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models

from portal.aws.limits import IAM_NAME_MESSAGE, IAM_NAME_PATTERN

#: IAM's rule for the names of users, groups and roles: 1–64 ASCII letters and digits and
#: ``+ = , . @ _ -``. ASCII matters: Python's ``\w`` also accepts "é", which AWS refuses, and the
#: refusal would only surface later, in the enforcement sync of the person's whole team.
#: Built from the one pattern in :mod:`portal.aws.limits`.
IAM_NAME_VALIDATOR = RegexValidator(IAM_NAME_PATTERN, IAM_NAME_MESSAGE, flags=re.ASCII)


class User(AbstractUser):
    """A person at the managed-services provider.

    ``iam_username`` is the person's IAM user in the main account: the name AWS puts in
    ``${aws:username}``, so their switch-role sessions carry it and main-account policies can be
    written for it.
    """

    iam_username = models.CharField(
        "IAM user name in the main account",
        max_length=64,
        blank=True,
        validators=[IAM_NAME_VALIDATOR],
        help_text="The person's IAM user in the main account; their switch-role sessions are named after it.",
    )

    session_epoch = models.PositiveIntegerField(
        default=0, editable=False, help_text="Bumped to end every other session of this person."
    )

    class Meta:
        ordering = ["username"]

    def get_session_auth_hash(self) -> str:
        # Django invalidates sessions whose stored hash no longer matches; mixing in the epoch
        # lets us end a person's other sessions (e.g. when an authenticator is removed).
        from django.utils.crypto import salted_hmac

        return salted_hmac(
            "switchyard.session", f"{self.password}:{self.session_epoch}", algorithm="sha256"
        ).hexdigest()

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def has_capability(self, group_name: str) -> bool:
        return self.is_superuser or any(g.name == group_name for g in self.groups.all())

    @property
    def is_manager(self) -> bool:
        return self.has_capability("Manager")

    @property
    def is_engineer(self) -> bool:
        return self.has_capability("Engineer")

    @property
    def is_auditor(self) -> bool:
        return self.has_capability("Auditor")

    @property
    def is_finance(self) -> bool:
        return self.has_capability("Finance")


class AppendOnlyQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Audit events are append-only: they cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only: they cannot be deleted.")


class AuditEvent(models.Model):
    """One thing that happened, recorded for good.

    Events form a hash chain: ``digest`` is an HMAC over this event's content and the previous
    event's digest, so editing, deleting or inserting a row breaks the chain at that row
    (``manage.py audit_verify``). Write them only through ``portal.audit.audit_record``.
    """

    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    occurred_at = models.DateTimeField(db_index=True, editable=False)
    actor = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.PROTECT, related_name="audit_events"
    )
    actor_label = models.CharField(max_length=150, blank=True, help_text="Who, as they were named then.")
    action = models.CharField(max_length=80, db_index=True)
    target_type = models.CharField(max_length=80, blank=True, db_index=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    target_label = models.CharField(max_length=255, blank=True)
    details = models.JSONField(default=dict, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    previous_digest = models.CharField(max_length=64, editable=False)
    digest = models.CharField(max_length=64, editable=False)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence"]
        indexes = [models.Index(fields=["target_type", "target_id", "sequence"])]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} by {self.actor_label or 'system'}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Audit events are append-only: they cannot be changed.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only: they cannot be deleted.")


class AuditChainHead(models.Model):
    """A single row that serialises appends to the audit chain (it is locked while an event is
    written), holding the last sequence number and digest."""

    last_sequence = models.PositiveBigIntegerField(default=0)
    last_digest = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"audit chain head at #{self.last_sequence}"


class AuditChainCheck(models.Model):
    """The result of each scheduled or manual verification of the audit chain."""

    checked_at = models.DateTimeField(auto_now_add=True)
    intact = models.BooleanField()
    events_checked = models.PositiveBigIntegerField()
    first_bad_sequence = models.PositiveBigIntegerField(null=True, blank=True)
    problem = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-checked_at"]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{'intact' if self.intact else 'BROKEN'} at {self.checked_at:%Y-%m-%d %H:%M}"


class AccessReview(models.Model):
    """A periodic check of who may use what: a manager opens it over a client, a tier or
    everything; its items are the grants in force in that scope when it was opened; each is
    confirmed or revoked by one of the chosen reviewers (``portal.reviews``)."""

    class Scope(models.TextChoices):
        CLIENT = "client", "One client"
        TIER = "tier", "One tier"
        EVERYTHING = "everything", "Everything"

    class State(models.TextChoices):
        OPEN = "open", "Open"
        COMPLETED = "completed", "Completed"

    title = models.CharField(max_length=200)
    scope = models.CharField(max_length=16, choices=Scope.choices)
    client = models.ForeignKey("onboarding.Client", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="access_reviews")
    tier = models.CharField(max_length=16, blank=True, help_text="A role template tier, for a tier review.")
    reviewers = models.ManyToManyField("portal.User", related_name="access_reviews_to_do")
    deadline = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    opened_by = models.ForeignKey("portal.User", on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope="client", client__isnull=False, tier="")
                    | (models.Q(scope="tier", client__isnull=True) & ~models.Q(tier=""))
                    | models.Q(scope="everything", client__isnull=True, tier="")
                ),
                name="access_review_scope_matches",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def scope_label(self) -> str:
        if self.scope == self.Scope.CLIENT:
            return f"client {self.client}"
        if self.scope == self.Scope.TIER:
            from switchroles.models import RoleTemplate

            return f"tier {RoleTemplate.Tier(self.tier).label}" if self.tier in RoleTemplate.Tier.values \
                else f"tier {self.tier}"
        return "everything"


class AccessReviewItem(models.Model):
    """One grant under review, and what its reviewer decided."""

    class Decision(models.TextChoices):
        PENDING = "", "Pending"
        CONFIRM = "confirm", "Confirmed"
        REVOKE = "revoke", "Revoked"

    review = models.ForeignKey(AccessReview, on_delete=models.PROTECT, related_name="items")
    grant = models.ForeignKey("switchroles.Grant", on_delete=models.PROTECT, related_name="review_items")
    decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.PENDING, blank=True,
                                db_index=True)
    decided_by = models.ForeignKey("portal.User", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(max_length=1000, blank=True)

    class Meta:
        ordering = ["review", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["review", "grant"], name="one_item_per_grant_per_review"),
        ]

    def __str__(self) -> str:
        return f"{self.review}: grant #{self.grant_id} ({self.get_decision_display()})"

    @property
    def is_pending(self) -> bool:
        return self.decision == self.Decision.PENDING


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

class ApiToken(models.Model):
    """A personal API token: ``Authorization: Bearer sy_<prefix>_<secret>``.

    Only the SHA-256 of the whole token is stored; ``prefix`` (not secret) finds the row. A token
    acts with its owner's capabilities at the moment of each call (``portal.api.authentication``),
    for at most ``MAX_LIFETIME``; ``read`` tokens may only read.
    """

    MAX_LIFETIME_DAYS = 90

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        READ_WRITE = "read-write", "Read and write"

    owner = models.ForeignKey("portal.User", on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the PSA integration.")
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        default_permissions = ()
        constraints = [
            models.CheckConstraint(condition=models.Q(expires_at__gt=models.F("created_at")),
                                   name="api_token_expires_after_creation"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def clean(self) -> None:
        from datetime import timedelta

        from django.core.exceptions import ValidationError

        if self.created_at and self.expires_at:
            if self.expires_at <= self.created_at:
                raise ValidationError({"expires_at": "The expiry must be in the future."})
            if self.expires_at - self.created_at > timedelta(days=self.MAX_LIFETIME_DAYS, minutes=1):
                raise ValidationError({"expires_at": f"A token lasts at most {self.MAX_LIFETIME_DAYS} days."})

    @property
    def is_read_write(self) -> bool:
        return self.scope == self.Scope.READ_WRITE

    def in_force_at(self, moment: Any) -> bool:
        return self.revoked_at is None and self.expires_at > moment

    @property
    def audit_label(self) -> dict[str, Any]:
        """How audit events name the token (never the secret)."""
        return {"id": self.pk, "name": self.name, "prefix": self.prefix, "scope": self.scope}


# Heartbeats and capacity slots belong to the kernel (portal.operations); their models live there.
from portal.operations.models import CapacitySlot, Heartbeat  # noqa: E402, F401
