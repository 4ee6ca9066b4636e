from __future__ import annotations

from typing import Any

from django import forms

from elevations.models import ApprovalPolicy
from elevations.services import elevation_max_minutes
from switchroles.models import AccountRole


class ContactInviteForm(forms.Form):
    email = forms.EmailField(max_length=150)
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)


class ApprovalPolicyForm(forms.Form):
    approvers = forms.ChoiceField(choices=ApprovalPolicy.Approvers.choices, widget=forms.RadioSelect)


class ElevationRequestForm(forms.Form):
    role = forms.ModelChoiceField(queryset=AccountRole.objects.none(), label="Account and tier")
    duration = forms.IntegerField(label="Minutes", min_value=1)
    reason = forms.CharField(widget=forms.Textarea, max_length=1000, help_text="Why, or a ticket reference.")

    def __init__(self, *args: Any, targets: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["role"]
        field.queryset = targets  # type: ignore[attr-defined]
        field.label_from_instance = lambda role: f"{role.account} — {role.template.name}"  # type: ignore[attr-defined]
        maximum = elevation_max_minutes()
        duration = self.fields["duration"]
        duration.max_value = maximum  # type: ignore[attr-defined]
        duration.validators.append(forms.IntegerField(max_value=maximum).validators[-1])
        duration.help_text = f"1 to {maximum} minutes."


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("decline", "Decline")])
    reason = forms.CharField(max_length=1000, required=False)


