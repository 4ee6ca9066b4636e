"""The role-template form: IAM's limits checked before anything is saved, the custom policy through
``switchroles.policies.validate_custom_policy`` (errors block, warnings need an explicit "I understand")."""

from __future__ import annotations

import json
import re
from typing import Any

from django import forms

from switchroles.links import CONSOLE_COLORS
from switchroles.models import RoleTemplate
from switchroles.policies import (
    MAX_MANAGED_POLICIES_PER_ROLE,
    MAX_SESSION_DURATION,
    MIN_SESSION_DURATION,
    ROLE_NAME_RE,
    validate_custom_policy,
)

MANAGED_POLICY_ARN_RE = re.compile(
    r"\Aarn:aws[a-z-]*:iam::(?:aws|[0-9]{12}):policy/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,128}\Z", re.ASCII
)
COLOR_CHOICES = [(hex_value, f"{name.title()} (#{hex_value})") for name, hex_value in CONSOLE_COLORS.items()]


class RoleTemplateForm(forms.Form):
    name = forms.CharField(max_length=64)
    tier = forms.ChoiceField(choices=RoleTemplate.Tier.choices)
    role_name = forms.CharField(
        max_length=64, label="IAM role name",
        help_text="1–64 letters, digits and + , . @ _ -. The role is created as /switchyard/<client>/<name>.",
    )
    description = forms.CharField(max_length=1000, required=False, widget=forms.Textarea(attrs={"rows": 2}))
    managed_policy_arns = forms.CharField(
        required=False, label="AWS managed policies", widget=forms.Textarea(attrs={"rows": 3}),
        help_text=f"One policy ARN per line, at most {MAX_MANAGED_POLICIES_PER_ROLE}, "
        "e.g. arn:aws:iam::aws:policy/ReadOnlyAccess.",
    )
    custom_policy = forms.CharField(
        required=False, label="Custom policy (JSON)", widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}),
        help_text="An IAM permission policy: Version, Statement (Effect, Action or NotAction, Resource); no Principal; "
        "at most 6,144 characters.",
    )
    require_mfa = forms.BooleanField(required=False, initial=True, label="Require MFA to assume the role")
    max_session_seconds = forms.IntegerField(
        min_value=MIN_SESSION_DURATION, max_value=MAX_SESSION_DURATION, initial=3600, label="Maximum session (seconds)",
        help_text="3,600 (1 hour) to 43,200 (12 hours).",
    )
    region = forms.RegexField(
        regex=r"\A[a-z]{2}(-[a-z]+)+-[0-9]\Z", max_length=32, required=False, label="Region",
        help_text="Optional: the AWS Region the console and CLI profiles open in, e.g. eu-west-1.",
        error_messages={"invalid": "Enter an AWS Region code such as eu-west-1."},
    )
    console_color = forms.ChoiceField(choices=COLOR_CHOICES, label="Console colour", widget=forms.RadioSelect)
    is_active = forms.BooleanField(required=False, initial=True, label="Offered for new accounts")
    acknowledge_warnings = forms.BooleanField(
        required=False, label="I understand the warnings about this policy and want to save it anyway"
    )

    def __init__(self, *args: Any, instance: RoleTemplate | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": instance.name, "tier": instance.tier, "role_name": instance.role_name,
                "description": instance.description,
                "managed_policy_arns": "\n".join(instance.managed_policy_arns or []),
                "custom_policy": json.dumps(instance.custom_policy, indent=2) if instance.custom_policy else "",
                "require_mfa": instance.require_mfa, "max_session_seconds": instance.max_session_seconds,
                "console_color": instance.console_color, "is_active": instance.is_active,
                "region": instance.region,
            }
        super().__init__(*args, **kwargs)
        self.policy_warnings: list[str] = []

    def _others(self) -> Any:
        others = RoleTemplate.objects.all()
        return others.exclude(pk=self.instance.pk) if self.instance is not None else others

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if self._others().filter(name__iexact=name).exists():
            raise forms.ValidationError("Another template has this name.")
        return name

    def clean_role_name(self) -> str:
        role_name: str = self.cleaned_data["role_name"].strip()
        if not ROLE_NAME_RE.match(role_name):
            raise forms.ValidationError("Use 1–64 letters, digits and + = , . @ _ - only.")
        if "=" in role_name:
            # IAM accepts "=", but AWS Extend Switch Roles cuts a value at its first "=": the
            # engineers' browser extension would ask the console for another role.
            raise forms.ValidationError(
                'Leave out "=": IAM accepts it, but the AWS Extend Switch Roles browser extension cuts the '
                "role name there and would switch to the wrong role.")
        if self._others().filter(role_name__iexact=role_name).exists():
            raise forms.ValidationError("Another template creates a role with this name.")
        return role_name

    def clean_managed_policy_arns(self) -> list[str]:
        arns = [line.strip() for line in self.cleaned_data["managed_policy_arns"].splitlines() if line.strip()]
        bad = [arn for arn in arns if not MANAGED_POLICY_ARN_RE.match(arn)]
        if bad:
            raise forms.ValidationError(
                [f"{arn[:80]} is not a managed policy ARN (arn:aws:iam::aws:policy/Name)." for arn in bad[:5]]
            )
        if len(set(arns)) != len(arns):
            raise forms.ValidationError("A policy is listed twice.")
        if len(arns) > MAX_MANAGED_POLICIES_PER_ROLE:
            raise forms.ValidationError(
                f"{len(arns)} policies: AWS allows at most {MAX_MANAGED_POLICIES_PER_ROLE} per role."
            )
        return arns

    def clean_custom_policy(self) -> dict[str, Any] | None:
        text = self.cleaned_data["custom_policy"]
        if not text.strip():
            return None
        check = validate_custom_policy(text)
        if check.errors:
            raise forms.ValidationError(check.errors)
        self.policy_warnings = list(check.warnings)
        return check.document

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("managed_policy_arns") and not cleaned.get("custom_policy") \
                and "managed_policy_arns" not in self.errors and "custom_policy" not in self.errors:
            self.add_error("managed_policy_arns", "Give the role at least one managed policy or a custom policy.")
        if self.policy_warnings and not cleaned.get("acknowledge_warnings"):
            self.add_error("acknowledge_warnings", "Read the warnings under the custom policy, then tick this box.")
        return cleaned

    def template_fields(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {name: data[name] for name in (
            "name", "tier", "role_name", "description", "managed_policy_arns", "custom_policy", "require_mfa",
            "max_session_seconds", "console_color", "is_active", "region",
        )}
