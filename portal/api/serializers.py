"""What the API answers, field by field (also the OpenAPI schema's components). Request bodies
are described here for the schema only: the pages' forms validate them (``portal.api.inputs``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from onboarding.models import AwsAccount, OnboardingStep
from portal.people.permissions import CAPABILITIES
from switchroles.models import AccountRole


class ErrorsSerializer(serializers.Serializer[dict[str, Any]]):
    # A declared field, not the serializer's attribute of that name: DRF's metaclass moves it aside.
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),  # type: ignore[assignment]
                                   help_text="Field name → the form's messages; `__all__` for the whole request.")


class DetailSerializer(serializers.Serializer[dict[str, Any]]):
    detail = serializers.CharField()


class MeSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    username = serializers.CharField()
    iam_username = serializers.CharField()
    capabilities = serializers.ListField(child=serializers.ChoiceField(choices=list(CAPABILITIES)))


class ClientRefSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()


class LinkSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    client = ClientRefSerializer()
    account_name = serializers.CharField()
    aws_account_id = serializers.CharField()
    tier = serializers.CharField()
    role_name = serializers.CharField()
    role_arn = serializers.CharField()
    switch_role_url = serializers.CharField(help_text="Empty when the stored role cannot make a console link.")
    go_url = serializers.CharField(help_text="Switchyard's click-through: records the use, then opens the console.")


class AccountSummarySerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    aws_account_id = serializers.CharField(allow_null=True)
    origin = serializers.ChoiceField(choices=AwsAccount.Origin.choices)
    state = serializers.ChoiceField(choices=AwsAccount.State.choices)


class ClientSerializer(ClientRefSerializer):
    pass


class ClientDetailSerializer(ClientRefSerializer):
    accounts = AccountSummarySerializer(many=True)


class StepErrorSerializer(serializers.Serializer[dict[str, Any]]):
    code = serializers.CharField()
    message = serializers.CharField()


class StepSerializer(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(choices=OnboardingStep.Kind.values)
    status = serializers.ChoiceField(choices=OnboardingStep.Status.values)
    attempts = serializers.IntegerField()
    last_error = StepErrorSerializer(allow_null=True)


class AccountRoleSerializer(serializers.Serializer[dict[str, Any]]):
    tier = serializers.CharField()
    role_name = serializers.CharField()
    role_arn = serializers.CharField()
    state = serializers.ChoiceField(choices=AccountRole.State.choices)


class RootCredentialsSerializer(serializers.Serializer[dict[str, Any]]):
    password = serializers.BooleanField()
    mfa_devices = serializers.IntegerField()
    access_keys = serializers.IntegerField()
    signing_certificates = serializers.IntegerField()
    checked_at = serializers.DateTimeField()


class AccountDetailSerializer(AccountSummarySerializer):
    client = ClientRefSerializer()
    steps = StepSerializer(many=True)
    roles = AccountRoleSerializer(many=True)
    root_credentials = RootCredentialsSerializer(allow_null=True, help_text="null until the workers first checked")


class OnboardingAcceptedSerializer(serializers.Serializer[dict[str, Any]]):
    account = AccountDetailSerializer()


class OnboardingRequestSerializer(serializers.Serializer[dict[str, Any]]):
    client = serializers.IntegerField(required=False, help_text="An existing client's id, or:")
    client_name = serializers.CharField(required=False, help_text="A new client's name (with client_slug).")
    client_slug = serializers.CharField(required=False)
    account_name = serializers.CharField()
    origin = serializers.ChoiceField(choices=["create", "invite", "adopt"])
    root_email = serializers.CharField(required=False, help_text="For create.")
    aws_account_id = serializers.CharField(required=False, help_text="For invite: the 12-digit account id.")
    tiers = serializers.ListField(child=serializers.CharField(),
                                  help_text="Role templates: a tier (administrator, engineer, oncall) or a role name.")
    reason = serializers.CharField()


class GrantRequestSerializer(serializers.Serializer[dict[str, Any]]):
    team = serializers.IntegerField(required=False, help_text="A team's id, or:")
    person = serializers.IntegerField(required=False, help_text="A person's id.")
    client = serializers.IntegerField(required=False, help_text="A client's id (all its accounts), or:")
    account = serializers.IntegerField(required=False, help_text="One account's id.")
    tiers = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class GrantSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    team = serializers.IntegerField(allow_null=True)
    person = serializers.IntegerField(allow_null=True)
    client = serializers.IntegerField(allow_null=True)
    account = serializers.IntegerField(allow_null=True)
    tiers = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField()
    granted_by = serializers.CharField()
    granted_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoke_reason = serializers.CharField()


class RevokeRequestSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField()


class AccessRowSerializer(serializers.Serializer[dict[str, Any]]):
    person_id = serializers.IntegerField()
    person = serializers.CharField()
    person_name = serializers.CharField()
    client_id = serializers.IntegerField()
    client = serializers.CharField()
    account = serializers.CharField()
    account_pk = serializers.IntegerField(help_text="The account's id in Switchyard.")
    aws_account_id = serializers.CharField()
    link_id = serializers.IntegerField()
    link = serializers.CharField()
    role = serializers.CharField()
    tier = serializers.CharField()
    via = serializers.CharField()
    team_id = serializers.IntegerField(allow_null=True)
    team = serializers.CharField()
    grant_id = serializers.IntegerField()
    granted_by = serializers.CharField()
    granted_at = serializers.DateTimeField()
    member_since = serializers.DateTimeField(allow_null=True)
    role_activated_at = serializers.DateTimeField(allow_null=True)
    since = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)


class AccessPageSerializer(serializers.Serializer[dict[str, Any]]):
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = AccessRowSerializer(many=True)


class TeamSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    iam_group = serializers.CharField()
    members = serializers.ListField(child=serializers.CharField(), help_text="User names of the members now.")


class PersonRequestSerializer(serializers.Serializer[dict[str, Any]]):
    username = serializers.CharField()
    email = serializers.CharField()
    first_name = serializers.CharField(required=False)
    last_name = serializers.CharField(required=False)
    iam_username = serializers.CharField(required=False)
    teams = serializers.ListField(child=serializers.IntegerField(), required=False)
    capabilities = serializers.ListField(child=serializers.ChoiceField(choices=list(CAPABILITIES)), required=False)


class PersonCreatedSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    iam_username = serializers.CharField()
    capabilities = serializers.ListField(child=serializers.CharField())
    teams = serializers.ListField(child=serializers.IntegerField())
    temporary_password = serializers.CharField(help_text="Shown once, in this answer only.")


class DeactivateRequestSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(help_text="Why they leave (recorded in the audit log).")


class DepartureRefSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    aws_state = serializers.CharField(help_text="Their IAM user's removal in AWS: pending, then verified or failed.")


class PersonDeactivatedSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_active = serializers.BooleanField()
    departure = DepartureRefSerializer()


class FindingSerializer(serializers.Serializer[dict[str, Any]]):
    # A declared field, not the serializer's attribute of that name: DRF's metaclass moves it aside.
    source = serializers.ChoiceField(choices=["drift", "effective_access"])  # type: ignore[assignment]
    kind = serializers.CharField()
    account = serializers.IntegerField(allow_null=True)
    role_arn = serializers.CharField()
    principal = serializers.CharField(help_text="Drift: the role's name; effective access: the IAM principal.")
    detail = serializers.CharField()
    opened_at = serializers.DateTimeField()


class FindingsPageSerializer(serializers.Serializer[dict[str, Any]]):
    count = serializers.IntegerField()
    page = serializers.IntegerField()
    pages = serializers.IntegerField()
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = FindingSerializer(many=True)


class ElevationRequestSerializer(serializers.Serializer[dict[str, Any]]):
    account = serializers.IntegerField(help_text="An account's id (one you already reach with another tier).")
    tier = serializers.CharField(help_text="A role template's tier (or role name).")
    duration_minutes = serializers.IntegerField()
    reason = serializers.CharField()


class DecisionRequestSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(required=False, help_text="Required to decline.")


class ElevationSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    state = serializers.CharField()
    requester = serializers.CharField()
    account = serializers.IntegerField()
    client = serializers.IntegerField()
    tier = serializers.CharField()
    duration_minutes = serializers.IntegerField()
    reason = serializers.CharField()
    approvers = serializers.CharField()
    requested_at = serializers.DateTimeField()
    answer_by = serializers.DateTimeField()
    approved_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    grant = serializers.IntegerField(allow_null=True)
    can_decide = serializers.BooleanField()


class CheckAcceptedSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField(help_text="The check request's id (its audit event).")


class CheckSerializer(serializers.Serializer[dict[str, Any]]):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["running", "done", "failed"])
    requested_at = serializers.DateTimeField()
    drift_check = serializers.IntegerField(allow_null=True)
    access_check = serializers.IntegerField(allow_null=True)
    # A declared field, not the serializer's attribute of that name: DRF's metaclass moves it aside.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    findings = FindingSerializer(many=True, help_text="The open findings, once both checks are done.")
