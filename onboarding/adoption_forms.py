"""Forms for bringing existing accounts in. They parse what was posted; the rules live in
``onboarding.adoption.bulk_request``, whose field and row errors the forms show."""

from __future__ import annotations

from typing import Any

from django import forms

from onboarding.forms import TemplateChoices
from onboarding.models import AwsAccount, Client
from switchroles.models import RoleTemplate

CSV_MAX_BYTES = 256 * 1024


class _BringInForm(forms.Form):
    templates = TemplateChoices(
        queryset=RoleTemplate.objects.filter(is_active=True).order_by("pk"),
        widget=forms.CheckboxSelectMultiple, label="Roles to provision in each account",
        error_messages={"required": "Choose at least one role template.",
                        "invalid_choice": "%(value)s is not a role template you can choose."},
    )
    existing_roles = forms.ChoiceField(
        label="Roles already there that trust the main account (adoption)",
        choices=[("report", "Leave them and report them (doors no grant explains)"),
                 ("adopt", "Adopt them: publish their switch-role links on the account's page")],
        initial="report", widget=forms.RadioSelect, required=False,
    )
    access_role_name = forms.CharField(
        label="Access role", required=False, max_length=64,
        help_text="The role Switchyard assumes in each account. Empty: OrganizationAccountAccessRole for "
        "members, SwitchyardAccessRole (created by the template) for invited accounts.",
    )
    reason = forms.CharField(label="Reason", max_length=1000, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Kept in the audit log.")


class AdoptForm(_BringInForm):
    members = forms.MultipleChoiceField(label="Members to adopt", widget=forms.CheckboxSelectMultiple,
                                        error_messages={"required": "Pick at least one member account."})
    client = forms.ModelChoiceField(
        queryset=Client.objects.filter(state=Client.State.ACTIVE).order_by("name"), required=False,
        empty_label="A new client", label="Client",
    )
    client_name = forms.CharField(label="New client's name", required=False, max_length=100)

    def __init__(self, *args: Any, members: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["members"].choices = [(m.id, f"{m.id} {m.name}") for m in members]  # type: ignore[attr-defined]
        self.members_by_id = {m.id: m for m in members}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("client") is None and not (data.get("client_name") or "").strip():
            self.add_error("client_name", "Choose a client, or name the new one.")
        return data


class BulkForm(_BringInForm):
    origin = forms.ChoiceField(
        label="These accounts", widget=forms.RadioSelect, initial=AwsAccount.Origin.ADOPTED,
        choices=[(AwsAccount.Origin.ADOPTED, "are members of our Organization: adopt them"),
                 (AwsAccount.Origin.INVITED, "are outside it: invite them")],
    )
    rows = forms.CharField(
        label="Accounts", required=False, widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text="One per line: account id, client, account name (e.g. 111122223333,Acme Retail,production). "
        "A client that does not exist yet is created.",
    )
    csv_file = forms.FileField(label="…or a CSV file with the same three columns", required=False)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("csv_file")
        if upload is not None:
            if upload.size > CSV_MAX_BYTES:
                self.add_error("csv_file", "Upload at most 256 KB.")
                return data
            try:
                data["rows"] = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error("csv_file", "The file is not UTF-8 text (save it as CSV UTF-8).")
        if not (data.get("rows") or "").strip() and "csv_file" not in self.errors:
            self.add_error("rows", "List at least one account, or upload a CSV file.")
        return data
