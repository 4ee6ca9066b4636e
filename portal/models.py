"""The portal app's models.

The access reviews live here, at the top, beside the auditors' workspace that runs them. Every other
model of the ``portal`` app lives in the kernel subpackage that owns it (people, the audit log,
notifications, operations) or in the API; they are imported here so that Django's registry, which
reads ``portal.models``, finds them. Apps import them from their own modules, never from here.
"""

from __future__ import annotations

from django.db import models

from portal.api.models import ApiToken
from portal.audit.models import AuditChainCheck, AuditChainHead, AuditEvent
from portal.notifications.models import Notice, NotificationOptOut
from portal.operations.models import CapacitySlot, Heartbeat
from portal.people.models import IAM_NAME_VALIDATOR, User
from switchroles.models import RoleTemplate

__all__ = [
    "IAM_NAME_VALIDATOR", "AccessReview", "AccessReviewItem", "ApiToken", "AuditChainCheck", "AuditChainHead",
    "AuditEvent", "CapacitySlot", "Heartbeat", "Notice", "NotificationOptOut", "User",
]


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
