"""Forms of the directory's manager pages. They validate input; services do the writing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from portal.people import duties
from portal.people.models import User
from portal.web.fields import RowsChoiceField
from switchroles.accounts import account_model, client_model
from switchroles.models import ROLE_NAME_VALIDATOR, RoleTemplate, Team
from switchroles.services import CAPABILITY_NAMES

if TYPE_CHECKING:
    from onboarding.models import AwsAccount


class PersonChoiceField(forms.ModelChoiceField[User]):
    def label_from_instance(self, obj: User) -> str:
        name = obj.get_full_name()
        return f"{name} ({obj.username})" if name else obj.username


class AccountChoiceField(forms.ModelChoiceField["AwsAccount"]):
    def label_from_instance(self, obj: AwsAccount) -> str:
        return f"{obj.client.name} / {obj.name} ({obj.account_id})"


class TierChoiceField(RowsChoiceField[RoleTemplate]):
    def label_from_instance(self, obj: RoleTemplate) -> str:
        return obj.name


def active_people() -> Any:
    return User.objects.filter(is_active=True).order_by("username")


class GrantForm(forms.Form):
    team = forms.ModelChoiceField(
        queryset=Team.objects.order_by("name"), required=False, empty_label="—",
        help_text="Everyone in the team, while they are in it.",
    )
    person = PersonChoiceField(
        queryset=active_people(), required=False, empty_label="—",
        help_text="Or one person (a personal grant).",
    )
    client = forms.ModelChoiceField(
        queryset=client_model().objects.exclude(state=client_model().State.LEFT).order_by("name"), required=False,
        empty_label="—",
        help_text="All the client's accounts, including ones onboarded later.",
    )
    account = AccountChoiceField(
        queryset=account_model().objects.filter(account_id__isnull=False).select_related("client")
        .order_by("client__name", "name"),
        required=False, empty_label="—", help_text="Or one account.",
    )
    templates = TierChoiceField(
        label="Tiers", queryset=RoleTemplate.objects.filter(is_active=True).order_by("pk"),
        widget=forms.CheckboxSelectMultiple,
    )
    expires_at = forms.DateTimeField(
        label="Expires (UTC)", required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        help_text="Access ends by itself then, in the portal at once and in AWS within a minute.",
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=1000,
                             help_text="Recorded with the grant and shown to auditors.")

    def clean_person(self) -> User | None:
        person = self.cleaned_data.get("person")
        if person is not None and not duties.may_hold_links(person):
            raise ValidationError(duties.AUDITOR_GRANTED)
        return person

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("team")) == bool(data.get("person")) and "person" not in self.errors:
            self.add_error("team", "Choose a team or a person (one of them).")
        if bool(data.get("client")) == bool(data.get("account")):
            self.add_error("client", "Choose a client or one account (one of them).")
        expires_at = data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            self.add_error("expires_at", "The expiry must be in the future.")
        return data


class RevokeForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=1000,
                             help_text="Recorded with the revocation and shown to auditors.")


class TeamForm(forms.Form):
    name = forms.CharField(max_length=100)
    iam_group_name = forms.CharField(
        label="IAM group in the main account", max_length=64, validators=[ROLE_NAME_VALIDATOR],
        help_text="Switchyard creates it (path /switchyard/) with the team's first grant and keeps its "
                  "members and policies in step with the portal.",
    )

    notification_webhook_url = forms.URLField(
        label="Slack or Teams incoming webhook", required=False, max_length=500, assume_scheme="https",
        help_text="Optional: the team's notices are also posted there.",
    )

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if Team.objects.filter(name__iexact=name).exists():
            raise ValidationError("A team with this name exists.")
        return name

    def clean_iam_group_name(self) -> str:
        group: str = self.cleaned_data["iam_group_name"].strip()
        if Team.objects.filter(iam_group_name__iexact=group).exists():
            raise ValidationError("Another team uses this IAM group.")
        return group


class TeamWebhookForm(forms.Form):
    notification_webhook_url = forms.URLField(
        label="Slack or Teams incoming webhook", required=False, max_length=500, assume_scheme="https",
        help_text="Leave empty to stop posting. The URL is a secret: only managers see that one is set.",
    )


class TeamMemberForm(forms.Form):
    person = PersonChoiceField(queryset=active_people())

    def __init__(self, *args: Any, team: Team, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = team.memberships.filter(removed_at__isnull=True).values("person")
        self.fields["person"].queryset = active_people().exclude(pk__in=current)  # type: ignore[attr-defined]

    def clean_person(self) -> User:
        person: User = self.cleaned_data["person"]
        if not duties.may_hold_links(person):
            raise ValidationError(duties.AUDITOR_IN_TEAM)
        return person


class PersonForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="What they sign in with.")
    first_name = forms.CharField(max_length=150, required=False)
    last_name = forms.CharField(max_length=150, required=False)
    email = forms.EmailField(max_length=254)
    iam_username = forms.CharField(
        label="IAM user name in the main account", max_length=64, required=False,
        validators=[ROLE_NAME_VALIDATOR],
        help_text="Their switch-role sessions are named after it; teams' IAM groups list it.",
    )
    capabilities = forms.MultipleChoiceField(
        choices=[(name, name) for name in CAPABILITY_NAMES], required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Manager: onboard clients, grant access, add people. Engineer: use granted links. "
                  "Auditor: read everything, change nothing, hold no links. "
                  "Reviewer: decide the access reviews they are chosen for (give it to auditors).",
    )
    teams = RowsChoiceField(
        queryset=Team.objects.order_by("name"), required=False, widget=forms.CheckboxSelectMultiple,
    )

    def __init__(self, *args: Any, person: User | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.person = person
        if person is not None:
            self.fields["username"].disabled = True
            self.fields["username"].required = False

    def clean_username(self) -> str:
        if self.person is not None:
            return self.person.username
        username: str = self.cleaned_data["username"].strip()
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError("This user name is taken.")
        return username

    def clean_email(self) -> str:
        email: str = self.cleaned_data["email"].strip()
        others = User.objects.filter(email__iexact=email)
        if self.person is not None:
            others = others.exclude(pk=self.person.pk)
        if others.exists():
            raise ValidationError("Someone already has this e-mail address.")
        return email

    def clean_iam_username(self) -> str:
        name: str = self.cleaned_data["iam_username"].strip()
        if not name:
            return name
        others = User.objects.filter(iam_username__iexact=name)
        if self.person is not None:
            others = others.exclude(pk=self.person.pk)
        if others.exists():
            raise ValidationError("Another person has this IAM user name.")
        return name


class LeaverForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=1000,
                             help_text="Why they leave (e.g. last day 30 November). Recorded in the audit log.")
