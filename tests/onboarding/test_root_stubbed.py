"""What AWS answers about root access that the sandbox cannot: a caller outside the management
account, a service control policy denying root sessions, throttling. botocore Stubber at the seam;
the plain messages are checked from the stub to what a manager reads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from onboarding import root_services
from onboarding.models import AwsAccount, Client, RootPosture
from portal import aws
from portal.aws import AwsError
from portal.models import User
from tests.onboarding.test_aws import NOW, StubbedClients

MEMBER = "210987654321"
SCP_DENIAL = (
    "User: arn:aws:sts::123456789012:assumed-role/switchyard-workers/worker is not authorized to perform: "
    "sts:AssumeRoot on resource: arn:aws:iam::210987654321:root with an explicit deny in a service control policy"
)


@pytest.fixture
def stubbed() -> Iterator[StubbedClients]:
    clients = StubbedClients()
    yield clients
    clients.verify()


def trusted_access_on(stubbed: StubbedClients) -> None:
    stubbed.stub("organizations").add_response(
        "list_aws_service_access_for_organization",
        {"EnabledServicePrincipals": [{"ServicePrincipal": "iam.amazonaws.com", "DateEnabled": NOW}]},
    )


def test_a_caller_outside_the_management_account_is_told_where_to_run(stubbed: StubbedClients) -> None:
    # given AWS answering that the caller is neither the management account nor IAM's delegated admin
    trusted_access_on(stubbed)
    stubbed.stub("iam").add_client_error(
        "list_organizations_features", service_error_code="AccountNotManagementOrDelegatedAdministratorException",
        service_message="You can only call this from the management account.", http_status_code=400,
    )

    # when the features are read
    with pytest.raises(AwsError) as refused:
        aws.root_features(clients=stubbed)

    # then the error says what to do, keeps AWS's code, and is not retried
    assert refused.value.code == "AccountNotManagementOrDelegatedAdministratorException"
    assert not refused.value.retryable
    assert "management account" in refused.value.plain_message
    assert "delegated administrator" in refused.value.plain_message


@pytest.mark.django_db
def test_the_features_page_shows_that_refusal_plainly(stubbed: StubbedClients, manager: User, signed_in: object,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # given AWS refusing the caller, and the page's AWS clients being the stub
    trusted_access_on(stubbed)
    stubbed.stub("iam").add_client_error(
        "list_organizations_features", service_error_code="AccountNotManagementOrDelegatedAdministratorException",
        service_message="Not the management account.", http_status_code=400,
    )
    monkeypatch.setattr("onboarding.root_views.default_client_factory", lambda: stubbed)

    # when a manager opens the root-access page
    page = signed_in(manager).get(reverse("onboarding:root_access"))  # type: ignore[operator]

    # then it shows the plain message, the raw code, and the permissions the workers need
    body = page.content.decode()
    assert page.status_code == 200
    assert "Switchyard&#x27;s AWS identity is in neither" in body or "Switchyard's AWS identity is in neither" in body
    assert "AccountNotManagementOrDelegatedAdministratorException" in body
    assert "iam:EnableOrganizationsRootSessions" in body and "sts:AssumeRoot" in body


@pytest.mark.django_db
def test_a_service_control_policy_denying_root_sessions_is_named_on_the_posture(stubbed: StubbedClients) -> None:
    # given an account and an SCP that denies sts:AssumeRoot on it
    client = Client.objects.create(name="Acme Retail", slug="acme")
    account = AwsAccount.objects.create(client=client, name="production", origin=AwsAccount.Origin.INVITED,
                                        account_id=MEMBER, reason="test", state=AwsAccount.State.ACTIVE)
    stubbed.stub("sts").add_client_error("assume_root", service_error_code="AccessDenied",
                                         service_message=SCP_DENIAL, http_status_code=403)

    # when the workers check its root user
    posture = root_services.root_posture_check(account=account, clients=stubbed)

    # then the posture is unknown, and the message names the SCP and what to ask for
    assert posture.checked_at is None and posture.last_error_code == "AccessDenied"
    assert "service control policy (SCP)" in posture.last_error_message
    assert "allow sts:AssumeRoot" in posture.last_error_message
    assert RootPosture.objects.get(account=account).last_error_message == posture.last_error_message


@pytest.mark.django_db
def test_throttling_is_retried_and_said_plainly(stubbed: StubbedClients) -> None:
    # given an account and STS throttling AssumeRoot
    client = Client.objects.create(name="Acme Retail", slug="acme")
    account = AwsAccount.objects.create(client=client, name="production", origin=AwsAccount.Origin.INVITED,
                                        account_id=MEMBER, reason="test", state=AwsAccount.State.ACTIVE)
    stubbed.stub("sts").add_client_error("assume_root", service_error_code="Throttling",
                                         service_message="Rate exceeded", http_status_code=400)

    # when the workers check its root user
    with pytest.raises(AwsError) as throttled:
        root_services.root_posture_check(account=account, clients=stubbed)

    # then the error is retryable (the task retries it) and recorded in plain words
    assert throttled.value.retryable and throttled.value.code == "Throttling"
    assert RootPosture.objects.get(account=account).last_error_message == (
        "AWS is throttling Switchyard's requests. Switchyard will try again automatically.")


@pytest.mark.django_db
def test_a_refused_enable_tells_the_manager_and_records_nothing(
    stubbed: StubbedClients, manager: User, manager_http: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given trusted access off and AWS refusing to enable it (not the management account)
    org = stubbed.stub("organizations")
    org.add_response("list_aws_service_access_for_organization", {"EnabledServicePrincipals": []})
    org.add_client_error(
        "enable_aws_service_access", service_error_code="AccessDeniedException",
        service_message="You don't have permissions to access this resource.", http_status_code=400,
    )
    # (the page reads the features again to show them)
    org.add_response("list_aws_service_access_for_organization", {"EnabledServicePrincipals": []})
    monkeypatch.setattr("onboarding.root_services.default_client_factory", lambda: stubbed)
    monkeypatch.setattr("onboarding.root_views.default_client_factory", lambda: stubbed)

    # when the manager turns it on
    response = manager_http.post(reverse("onboarding:root_access_enable"))

    # then the page says what the workers need, and no audit event claims it was enabled
    from portal.models import AuditEvent

    body = response.content.decode()
    assert response.status_code == 400
    assert "AWS denied Switchyard organizations:EnableAWSServiceAccess" in body and "AccessDeniedException" in body
    assert "The workers&#x27; AWS identity needs" in body
    assert not AuditEvent.objects.filter(action="onboarding.root.features_enabled").exists()
