"""Forms of the auditors' workspace: the filters (read from the query string) and opening a review."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from onboarding.models import Client
from portal.access_matrix import SORTS, MatrixFilters
from portal.audit_selectors import EventFilters
from portal.fields import RowsChoiceField
from portal.models import AccessReview
from portal.reviews import DEFAULT_UNUSED_DAYS, review_reviewer_choices
from switchroles.models import RoleTemplate


def _id_field() -> forms.IntegerField:
    # Row ids: positive and within a bigint, so nothing malformed reaches SQL.
    return forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


def _not_in_future(value: datetime | None) -> datetime | None:
    if value is not None and value > timezone.now():
        raise forms.ValidationError("Pick a moment in the past (or leave empty for now).")
    return value


class MatrixFilterForm(forms.Form):
    client = _id_field()
    account = _id_field()
    team = _id_field()
    person = _id_field()
    link = _id_field()
    tier = forms.ChoiceField(required=False, choices=[("", "Any tier"), *RoleTemplate.Tier.choices])
    as_of = forms.DateTimeField(required=False, label="As of (UTC)")
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in SORTS])
    dir = forms.ChoiceField(required=False, choices=[("asc", "ascending"), ("desc", "descending")])

    def clean_as_of(self) -> datetime | None:
        return _not_in_future(self.cleaned_data.get("as_of"))

    def filters(self) -> MatrixFilters:
        """The valid filters (an invalid field is dropped and reported by the form)."""
        data: dict[str, Any] = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return MatrixFilters(
            client=data.get("client"), account=data.get("account"), team=data.get("team"),
            person=data.get("person"), link=data.get("link"), tier=data.get("tier") or "",
            as_of=data.get("as_of"), sort=data.get("sort") or "person", descending=data.get("dir") == "desc",
        )


class EventFilterForm(forms.Form):
    action = forms.CharField(required=False, max_length=80, label="Action starts with")
    actor = forms.CharField(required=False, max_length=150, label="Person")
    target = forms.CharField(required=False, max_length=100, label="Target contains")
    target_type = forms.CharField(required=False, max_length=80)
    target_id = forms.CharField(required=False, max_length=64)
    since = forms.DateField(required=False, label="From (UTC)")
    until = forms.DateField(required=False, label="To (UTC, inclusive)")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data

    def filters(self) -> EventFilters:
        data: dict[str, Any] = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        since = data.get("since")
        until = data.get("until")
        return EventFilters(
            action=data.get("action") or "", actor=data.get("actor") or "", target=data.get("target") or "",
            target_type=data.get("target_type") or "", target_id=data.get("target_id") or "",
            since=datetime.combine(since, time.min, tzinfo=UTC) if since else None,
            # The end date is inclusive: everything before the next midnight (the last day there is
            # has no next one: no end then).
            until=datetime.combine(until + timedelta(days=1), time.min, tzinfo=UTC) if until and until < date.max
            else None,
        )


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
