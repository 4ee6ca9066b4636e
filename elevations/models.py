"""Client contacts (people outside the MSP who see only their own client) and break-glass
elevation requests that they or a manager approve.

An approved elevation is nothing but a time-bound personal ``switchroles.Grant`` made through
``switchroles.services.grant_create``: the directory, the main-account IAM policies, the expiry
machinery and the audit log follow from that grant. ``ElevationRequest`` keeps the story around it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

CLIENT_CONTACT = "ClientContact"


class ClientContact(models.Model):
    """A person at a client, invited by a manager; sees only ``client``."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="client_contact")
    client = models.ForeignKey("onboarding.Client", on_delete=models.PROTECT, related_name="contacts")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    invited_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True, help_text="When they set their password.")

    class Meta:
        ordering = ["client", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.client})"


class ApprovalPolicy(models.Model):
    """Who approves elevations on one client's accounts. No row: an MSP manager."""

    class Approvers(models.TextChoices):
        MANAGER = "manager", "An MSP manager"
        CONTACT = "contact", "A client contact"
        BOTH_FIRST = "both_first", "A manager or a client contact (the first to answer)"
        BOTH_ALL = "both_all", "A manager and a client contact (both)"

    client = models.OneToOneField("onboarding.Client", on_delete=models.PROTECT, related_name="approval_policy")
    approvers = models.CharField(max_length=16, choices=Approvers.choices, default=Approvers.MANAGER)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "approval policies"

    def __str__(self) -> str:
        return f"{self.client}: {self.get_approvers_display()}"


class ElevationRequest(models.Model):
    """An engineer's request for a tier they do not hold on one account, for a while.

    pending → active (approved: ``grant`` made) → ended (early, by the requester or a manager) or
    expired (its time ran out); pending → declined, or unanswered (nobody decided by ``answer_by``).
    Transitions only through ``elevations.services``."""

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        ACTIVE = "active", "Approved, in force"
        DECLINED = "declined", "Declined"
        UNANSWERED = "unanswered", "Expired unanswered"
        ENDED = "ended", "Ended early"
        EXPIRED = "expired", "Ran its time"

    requester = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="elevations")
    account = models.ForeignKey("onboarding.AwsAccount", on_delete=models.PROTECT, related_name="elevations")
    template = models.ForeignKey("switchroles.RoleTemplate", on_delete=models.PROTECT, related_name="+")
    duration_minutes = models.PositiveIntegerField()
    reason = models.TextField(max_length=1000)
    approvers = models.CharField(max_length=16, choices=ApprovalPolicy.Approvers.choices,
                                 help_text="The client's policy when it was asked.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING, db_index=True)
    requested_at = models.DateTimeField(db_index=True)
    answer_by = models.DateTimeField(help_text="Unanswered after this, it can no longer be approved.")
    grant = models.OneToOneField("switchroles.Grant", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="elevation")
    approved_at = models.DateTimeField(null=True, blank=True)
    emergency = models.BooleanField(default=False, help_text="Self-approved by a manager (break-glass).")
    emergency_reason = models.TextField(max_length=1000, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")

    class Meta:
        ordering = ["-requested_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=Q(duration_minutes__gte=1), name="elevation_at_least_a_minute"),
            models.CheckConstraint(condition=Q(emergency=False) | ~Q(emergency_reason=""),
                                   name="elevation_emergency_has_reason"),
        ]

    def __str__(self) -> str:
        return f"elevation #{self.pk}: {self.requester} → {self.template} on {self.account}"

    @property
    def is_open(self) -> bool:
        return self.state == self.State.PENDING


class ElevationDecision(models.Model):
    """One approver's answer to one request (at most one each)."""

    class As(models.TextChoices):
        MANAGER = "manager", "MSP manager"
        CONTACT = "contact", "Client contact"

    request = models.ForeignKey(ElevationRequest, on_delete=models.PROTECT, related_name="decisions")
    decider = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decided_as = models.CharField(max_length=8, choices=As.choices)
    approve = models.BooleanField()
    reason = models.TextField(max_length=1000, blank=True)
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["decided_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["request", "decider"], name="one_decision_per_decider"),
        ]

    def __str__(self) -> str:
        return f"{self.decider} {'approved' if self.approve else 'declined'} #{self.request_id}"
