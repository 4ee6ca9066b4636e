"""The filters of the access matrix and the audit log, read from the query string."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from portal.evidence.matrix import SORTS, MatrixFilters
from portal.evidence.selectors import EventFilters
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
