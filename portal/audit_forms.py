"""Forms of the auditors' workspace: the filters (read from the query string) and opening a review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.utils import timezone

from onboarding.models import Client
from portal.models import AccessReview
from portal.reviews import DEFAULT_UNUSED_DAYS, review_reviewer_choices
from portal.web.fields import RowsChoiceField
from switchroles.models import RoleTemplate


class ReviewItemsForm(forms.Form):
    show = forms.ChoiceField(required=False, choices=[("all", "All"), ("pending", "Pending"),
                                                      ("decided", "Decided"), ("suggested", "Suggested to revoke")])
    unused_days = forms.IntegerField(required=False, min_value=1, max_value=3650, label="Unused for (days)")

    def values(self) -> tuple[str, int]:
        data: dict[str, Any] = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return data.get("show") or "all", data.get("unused_days") or DEFAULT_UNUSED_DAYS


class AccessReviewForm(forms.Form):
    title = forms.CharField(max_length=200)
    scope = forms.ChoiceField(choices=AccessReview.Scope.choices, widget=forms.RadioSelect)
    client = forms.ModelChoiceField(queryset=Client.objects.order_by("name"), required=False)
    tier = forms.ChoiceField(choices=[("", "—"), *RoleTemplate.Tier.choices], required=False)
    reviewers = RowsChoiceField(queryset=review_reviewer_choices().order_by("username"),
                                help_text="Managers who will confirm or revoke each grant.")
    deadline = forms.DateTimeField(label="Deadline (UTC)", widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def clean_deadline(self) -> datetime:
        deadline: datetime = self.cleaned_data["deadline"]
        if deadline <= timezone.now():
            raise forms.ValidationError("The deadline must be in the future.")
        return deadline

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        scope = data.get("scope")
        if scope == AccessReview.Scope.CLIENT and not data.get("client"):
            self.add_error("client", "Choose the client to review.")
        if scope == AccessReview.Scope.TIER and not data.get("tier"):
            self.add_error("tier", "Choose the tier to review.")
        return data
