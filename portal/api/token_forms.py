"""The form for a new personal API token."""

from __future__ import annotations

from django import forms

from portal.api.models import ApiToken


class ApiTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. “PSA onboarding hook”.")
    scope = forms.ChoiceField(choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ, widget=forms.RadioSelect,
                              help_text="A read-only token cannot change anything, whatever your capabilities.")
    lifetime_days = forms.IntegerField(
        label="Valid for (days)", min_value=1, max_value=ApiToken.MAX_LIFETIME_DAYS, initial=30,
        help_text=f"At most {ApiToken.MAX_LIFETIME_DAYS} days; create a new token before it ends.",
    )
