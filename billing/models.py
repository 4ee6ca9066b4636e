"""What consolidated billing charged, per month, account and record type, as fetched from Cost Explorer.

Cost Explorer charges for every request, so its answers are kept here: a ``CostFetch`` row records
each fetch (when, how many requests, whether AWS still called the month estimated), and the month's
``CostLine`` rows are replaced as a whole by the fetch that succeeded last. Which client an account
belongs to is decided when the month is read (``billing.selectors``), from ``onboarding``'s accounts,
so an account onboarded after the fetch is attributed without fetching again.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from onboarding.models import ACCOUNT_ID_VALIDATOR, Client

# Cost Explorer answers with up to 10 decimal places ("0.0101516483"); sums of many lines stay exact.
AMOUNT_DIGITS = 20
AMOUNT_PLACES = 10


class CostFetch(models.Model):
    """One fetch of one month from Cost Explorer (successful or not)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Fetched"
        FAILED = "failed", "Failed"

    month = models.DateField(help_text="The first day of the month fetched.", db_index=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    estimated = models.BooleanField(default=True, help_text="AWS had not finalised the month yet.")
    requests = models.PositiveIntegerField(default=0, help_text="Cost Explorer requests made (each is charged).")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+")
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    # False when retrying cannot help (permissions, an expired bill): the schedule stops asking.
    error_retryable = models.BooleanField(default=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} ({self.get_status_display()})"


class CostLine(models.Model):
    """An amount consolidated billing charged one linked account in one month.

    Either a record-type line (``service`` empty: Usage, Credit, Refund, Tax, Support, Fee, …) or a
    service line (``record_type`` empty: the account's cost per AWS service, all record types)."""

    fetch = models.ForeignKey(CostFetch, on_delete=models.CASCADE, related_name="lines")
    month = models.DateField(db_index=True)
    aws_account_id = models.CharField(max_length=12, validators=[ACCOUNT_ID_VALIDATOR])
    record_type = models.CharField(max_length=64, blank=True)
    service = models.CharField(max_length=200, blank=True)
    unblended_cost = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    net_unblended_cost = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES)
    amortized_cost = models.DecimalField(max_digits=AMOUNT_DIGITS, decimal_places=AMOUNT_PLACES, null=True,
                                         blank=True)
    currency = models.CharField(max_length=8, default="USD")

    class Meta:
        ordering = ["month", "aws_account_id", "record_type", "service"]
        indexes = [models.Index(fields=["month", "aws_account_id"], name="billing_line_month_account")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.aws_account_id} {self.record_type or self.service}"


class ClientBillingTerms(models.Model):
    """What finance adds to (or, negative, takes off) AWS's cost when invoicing a client."""

    client = models.OneToOneField(Client, on_delete=models.PROTECT, related_name="billing_terms")
    markup_percent = models.DecimalField(
        "markup (%)", max_digits=6, decimal_places=2, default=Decimal("0"),
        validators=[MinValueValidator(Decimal("-100")), MaxValueValidator(Decimal("1000"))],
        help_text="Added to AWS's cost; negative for a discount (−100 to 1000).",
    )
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "client billing terms"

    def __str__(self) -> str:
        return f"{self.client}: {self.markup_percent}%"
