"""Personal API tokens (``portal.api.tokens``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models


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
