"""The onboarding form. It only parses what was posted; every rule (and every guardrail against AWS)
lives in ``onboarding.services.onboarding_request``, whose field errors the form shows."""

from __future__ import annotations

from typing import Any

from django import forms

from onboarding.models import AwsAccount, Client
from portal.web.fields import RowsChoiceField
from switchroles.models import RoleTemplate


class TemplateChoices(RowsChoiceField[RoleTemplate]):
    def label_from_instance(self, obj: RoleTemplate) -> str:
        return f"{obj.name} ({obj.role_name})"


class OnboardingForm(forms.Form):
    client = forms.ModelChoiceField(
        queryset=Client.objects.filter(state=Client.State.ACTIVE).order_by("name"),
        required=False,
        empty_label="A new client",
        label="Client",
    )
    client_name = forms.CharField(label="New client's name", required=False, max_length=100)
    client_slug = forms.CharField(
        label="New client's short name",
        required=False,
        max_length=32,
        help_text="Lower-case letters, digits and hyphens, e.g. acme. Used in role paths (/switchyard/acme/) "
        "and the account's e-mail address.",
    )
    origin = forms.ChoiceField(
        label="Account",
        choices=[
            (AwsAccount.Origin.CREATED, "Create a new account in our Organization"),
            (AwsAccount.Origin.INVITED, "Invite the client's existing account"),
        ],
        initial=AwsAccount.Origin.CREATED,
        widget=forms.RadioSelect,
    )
    account_name = forms.CharField(label="Account name", max_length=50,
                                   help_text="1–50 characters, e.g. production.")
    root_email = forms.CharField(
        label="Root e-mail address",
        required=False,
        max_length=64,
        help_text="For a new account: unique, a plus-address of the shared mailbox.",
        widget=forms.EmailInput,
    )
    account_id = forms.CharField(
        label="Existing account id",
        required=False,
        max_length=12,
        help_text="For an invitation: the client's 12-digit AWS account id.",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )
    templates = TemplateChoices(
        queryset=RoleTemplate.objects.filter(is_active=True).order_by("pk"),
        widget=forms.CheckboxSelectMultiple,
        label="Roles to provision",
        error_messages={"required": "Choose at least one role template.",
                        "invalid_choice": "%(value)s is not a role template you can choose."},
    )
    root_credentials = forms.BooleanField(
        label="Root credentials: remove them at the end (invited account) or check there are none (created account)",
        required=False, initial=True,
        help_text="Through centralized root access (Clients → Root access). Invited accounts keep the root password "
                  "they had; created ones have none when the feature is on.",
    )
    reason = forms.CharField(label="Reason", max_length=1000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Why this account is being onboarded (kept in the audit log).")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["client_slug"].widget.attrs.update({"data-client-slug": "", "autocomplete": "off"})
        self.fields["client"].widget.attrs["data-client-select"] = ""
        self.fields["account_name"].widget.attrs["data-account-name"] = ""
        self.fields["root_email"].widget.attrs["data-root-email"] = ""
