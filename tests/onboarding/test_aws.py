"""The onboarding AWS seam, against moto (in-process) and botocore's Stubber (for what moto lacks:
invitations, in-progress and failed account creation, throttling and other AWS errors)."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import boto3
import botocore.session
import pytest
import yaml
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from moto import mock_aws

from portal.aws import (
    FAILURE_REASON_MESSAGES,
    AwsError,
    Boto3ClientFactory,
    ClientFactory,
    RoleSpec,
    TemporaryCredentials,
    access_role_cloudformation_template,
    assume_access_role,
    cancel_handshake,
    classify_botocore_error,
    classify_client_error,
    creation_failure_error,
    delete_role,
    describe_account_creation,
    describe_handshake,
    describe_organization,
    ensure_role,
    failure_message,
    find_account_creation,
    invite_account,
    list_accounts,
    organization_quota_status,
    organization_status,
    read_role,
    remove_account_from_organization,
    start_account_creation,
    trust_policy_for_console,
)

MAIN_ACCOUNT_ID = "123456789012"  # moto's default account, the Organization's management account
MEMBER_ACCOUNT_ID = "210987654321"
ACME_EMAIL = "awsaccounts+acme@example.com"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
VIEW_ONLY = "arn:aws:iam::aws:policy/job-function/ViewOnlyAccess"
NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LIST_BUCKETS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
}


# --------------------------------------------------------------------------------------------------
# Fixtures and helpers
# --------------------------------------------------------------------------------------------------


def _mocked_aws(monkeypatch: pytest.MonkeyPatch, *, managed_policies: bool) -> Iterator[ClientFactory]:
    """moto in-process with an Organization, reached through the portal's real client factory."""
    for name in list(os.environ):
        if name.startswith("AWS_ENDPOINT_URL") or name in {"AWS_PROFILE", "AWS_SESSION_TOKEN"}:
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # moto loads AWS managed policies when it builds an account's IAM backend, i.e. on first use
    # inside the mock, if MOTO_IAM_LOAD_MANAGED_POLICIES=true or the mock's config says so. The
    # config is scoped to this mock; the variable (which a shared conftest may set) would also be
    # read while moto resets every backend on exit, reloading ~1,000 policies per account for nothing.
    monkeypatch.delenv("MOTO_IAM_LOAD_MANAGED_POLICIES", raising=False)
    with mock_aws(config={"iam": {"load_aws_managed_policies": managed_policies}}):
        boto3.client("organizations").create_organization(FeatureSet="ALL")
        yield Boto3ClientFactory(region_name="us-east-1")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """An Organization in moto, without AWS managed policies (fast)."""
    yield from _mocked_aws(monkeypatch, managed_policies=False)


@pytest.fixture
def aws_with_managed_policies(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """An Organization in moto whose accounts know AWS managed policies such as ReadOnlyAccess."""
    yield from _mocked_aws(monkeypatch, managed_policies=True)


@dataclass(frozen=True)
class Member:
    clients: ClientFactory
    account_id: str
    credentials: TemporaryCredentials

    def iam(self) -> Any:
        return self.clients.client("iam", credentials=self.credentials)


@pytest.fixture
def member(aws_with_managed_policies: ClientFactory) -> Member:
    """A freshly created account, reached through its OrganizationAccountAccessRole."""
    aws = aws_with_managed_policies
    request = start_account_creation(
        clients=aws, email=ACME_EMAIL, account_name="acme", tags={"client": "acme"}
    )
    assert request.account_id is not None
    credentials = assume_access_role(
        clients=aws, account_id=request.account_id, session_name="switchyard-test"
    )
    return Member(clients=aws, account_id=request.account_id, credentials=credentials)


@dataclass
class RecordingClients:
    """Passes calls through and records every AWS operation sent."""

    inner: ClientFactory
    operations: list[str] = field(default_factory=list)

    def client(self, service: str, credentials: TemporaryCredentials | None = None, **_: Any) -> Any:
        client = self.inner.client(service, credentials)
        # The factory hands out the same client again: record each call once however often it is.
        client.meta.events.register("before-call.*.*", self._record, unique_id=f"recording-{id(self)}")
        return client

    def _record(self, model: Any, **_: Any) -> None:
        self.operations.append(model.name)


@dataclass
class RacingClients:
    """Runs ``rival`` (another worker) once, just before our CreateRole reaches IAM."""

    inner: ClientFactory
    rival: Callable[[], None]
    raced: bool = False

    def client(self, service: str, credentials: TemporaryCredentials | None = None, **_: Any) -> Any:
        client = self.inner.client(service, credentials)
        client.meta.events.register("before-call.iam.CreateRole", self._race, unique_id=f"racing-{id(self)}")
        return client

    def _race(self, **_: Any) -> None:
        if not self.raced:
            self.raced = True
            self.rival()


class StubbedClients:
    """A ClientFactory handing out real botocore clients wrapped in a Stubber, one per service."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._stubbers: dict[str, Stubber] = {}

    def stub(self, service: str) -> Stubber:
        client = boto3.client(  # type: ignore[call-overload]  # any service name
            service,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            aws_session_token="x",
        )
        stubber = Stubber(client)
        stubber.activate()
        self._clients[service] = client
        self._stubbers[service] = stubber
        return stubber

    def client(self, service: str, credentials: TemporaryCredentials | None = None, **_: Any) -> Any:
        return self._clients[service]

    def verify(self) -> None:
        for stubber in self._stubbers.values():
            stubber.assert_no_pending_responses()
            stubber.deactivate()


@pytest.fixture
def stubbed() -> Iterator[StubbedClients]:
    clients = StubbedClients()
    yield clients
    clients.verify()


def console_spec(**overrides: Any) -> RoleSpec:
    values: dict[str, Any] = {
        "path": "/switchyard/acme/",
        "name": "acme-engineer",
        "trust_policy": trust_policy_for_console(main_account_id=MAIN_ACCOUNT_ID),
        "managed_policy_arns": (READ_ONLY,),
        "inline_policy": LIST_BUCKETS,
        "inline_policy_name": "switchyard-acme",
        "max_session_duration": 7200,
        "description": "Switchyard: acme engineers",
        "tags": (("client", "acme"), ("tier", "engineer")),
    }
    values.update(overrides)
    return RoleSpec(**values)


def creation_status(state: str, **extra: Any) -> dict[str, Any]:
    return {
        "CreateAccountStatus": {
            "Id": "car-0123456789abcdef",
            "AccountName": "acme",
            "State": state,
            "RequestedTimestamp": NOW,
            **extra,
        }
    }


def handshake(state: str) -> dict[str, Any]:
    return {
        "Handshake": {
            "Id": "h-0123456789abcdef",
            "Arn": "arn:aws:organizations::123456789012:handshake/o-abcdefghij/invite/h-0123456789abcdef",
            "Parties": [
                {"Id": "o-abcdefghij", "Type": "ORGANIZATION"},
                {"Id": MEMBER_ACCOUNT_ID, "Type": "ACCOUNT"},
            ],
            "State": state,
            "RequestedTimestamp": NOW,
            "ExpirationTimestamp": NOW + timedelta(days=15),
            "Action": "INVITE",
        }
    }


def client_error(code: str, status: int = 400) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"raw {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "AnyOperation")


# --------------------------------------------------------------------------------------------------
# Organizations, against moto
# --------------------------------------------------------------------------------------------------


def test_created_account_is_in_the_organization(aws: ClientFactory) -> None:
    # given an Organization
    # when an account is created
    request = start_account_creation(
        clients=aws, email=ACME_EMAIL, account_name="acme", tags={"client": "acme"}
    )

    # then AWS recorded a car- request and the account is a member with that e-mail
    assert request.request_id is not None and request.request_id.startswith("car-")
    emails = {account.email: account.id for account in list_accounts(clients=aws)}
    assert emails[ACME_EMAIL] == request.account_id


def test_find_account_creation_returns_the_existing_request_without_creating_again(
    aws: ClientFactory,
) -> None:
    # given a CreateAccount that went through, but whose answer the worker lost
    sent = start_account_creation(clients=aws, email=ACME_EMAIL, account_name="acme", tags={})
    recording = RecordingClients(aws)

    # when the retry reconciles
    found = find_account_creation(clients=recording, email=ACME_EMAIL.upper(), account_name="acme")

    # then it finds that request and account, and sent no second CreateAccount
    assert found == sent
    assert "CreateAccount" not in recording.operations
    assert {"ListAccounts", "ListCreateAccountStatus"} <= set(recording.operations)
    assert [a.email for a in list_accounts(clients=aws)].count(ACME_EMAIL) == 1


def test_find_account_creation_returns_none_when_nothing_was_sent(aws: ClientFactory) -> None:
    # given an Organization where acme's account was never requested
    # when reconciling
    found = find_account_creation(clients=aws, email=ACME_EMAIL, account_name="acme")

    # then it is safe to send CreateAccount
    assert found is None


def test_organization_quota_status_counts_members_and_creations(aws: ClientFactory) -> None:
    # given the management account and one created account (moto finishes creations at once)
    start_account_creation(clients=aws, email=ACME_EMAIL, account_name="acme", tags={})

    # when the quota is checked
    accounts_in_org, creations_in_progress = organization_quota_status(clients=aws)

    # then both accounts count and nothing is in flight
    assert (accounts_in_org, creations_in_progress) == (2, 0)


def test_describe_organization_names_the_management_account(aws: ClientFactory) -> None:
    # given an Organization created by moto's default account
    # when it is described
    organization = describe_organization(clients=aws)

    # then the management account is the main account
    assert organization.management_account_id == MAIN_ACCOUNT_ID
    assert organization.id.startswith("o-")


def test_removed_account_leaves_the_organization(member: Member) -> None:
    # given a member account
    # when it is removed
    removed = remove_account_from_organization(clients=member.clients, account_id=member.account_id)

    # then it is no longer listed
    assert removed is True
    assert member.account_id not in {a.id for a in list_accounts(clients=member.clients)}


# --------------------------------------------------------------------------------------------------
# Member-account IAM, against moto
# --------------------------------------------------------------------------------------------------


def test_ensure_role_creates_the_role_exactly_as_specified(member: Member) -> None:
    # given credentials in a new account and a console role spec
    spec = console_spec()

    # when the role is ensured
    result = ensure_role(clients=member.clients, credentials=member.credentials, spec=spec)

    # then it was created at the client's path, and reads back exactly as specified
    assert result.outcome == "created"
    assert result.arn == f"arn:aws:iam::{member.account_id}:role/switchyard/acme/acme-engineer"
    state = read_role(clients=member.clients, credentials=member.credentials, path=spec.path, name=spec.name)
    assert state is not None
    assert state.trust_policy == spec.trust_policy
    assert state.path == "/switchyard/acme/"
    assert state.managed_policy_arns == frozenset({READ_ONLY})
    assert state.inline_policies == {"switchyard-acme": LIST_BUCKETS}
    assert state.max_session_duration == 7200
    assert state.tags == {"client": "acme", "tier": "engineer", "managed-by": "switchyard"}


def test_ensured_role_lives_in_the_member_account_only(member: Member) -> None:
    # given a role ensured with the member account's credentials
    spec = console_spec()
    ensure_role(clients=member.clients, credentials=member.credentials, spec=spec)

    # when the main account looks for it
    in_main = read_role(clients=member.clients, credentials=None, path=spec.path, name=spec.name)

    # then it is not there
    assert in_main is None


def test_ensure_role_twice_adopts_the_same_role(member: Member) -> None:
    # given a role ensured once
    spec = console_spec()
    first = ensure_role(clients=member.clients, credentials=member.credentials, spec=spec)

    # when it is ensured again
    second = ensure_role(clients=member.clients, credentials=member.credentials, spec=spec)

    # then the existing role is adopted unchanged
    assert (second.outcome, second.arn, second.differences) == ("adopted", first.arn, ())


def test_ensure_role_updates_a_switchyard_role_that_drifted(member: Member) -> None:
    # given a Switchyard role made from an older template
    old = console_spec(
        managed_policy_arns=(VIEW_ONLY,),
        max_session_duration=3600,
        inline_policy=None,
        trust_policy=trust_policy_for_console(main_account_id=MAIN_ACCOUNT_ID, require_mfa=False),
    )
    ensure_role(clients=member.clients, credentials=member.credentials, spec=old)
    member.iam().put_role_policy(
        RoleName="acme-engineer", PolicyName="hand-made", PolicyDocument=json.dumps(LIST_BUCKETS)
    )
    new = console_spec()

    # when the current template is ensured
    result = ensure_role(clients=member.clients, credentials=member.credentials, spec=new)

    # then the role is brought to the spec and the differences are reported
    assert result.outcome == "updated"
    assert result.differences == (
        "trust policy differs",
        "maximum session duration is 3600s, expected 7200s",
        f"managed policy {READ_ONLY} is not attached",
        f"managed policy {VIEW_ONLY} is attached but not expected",
        "inline policy switchyard-acme is missing",
        "inline policy hand-made is not expected",
    )
    state = read_role(clients=member.clients, credentials=member.credentials, path=new.path, name=new.name)
    assert state is not None
    assert state.trust_policy == new.trust_policy
    assert state.max_session_duration == 7200
    assert state.managed_policy_arns == frozenset({READ_ONLY})
    assert state.inline_policies == {"switchyard-acme": LIST_BUCKETS}


def test_ensure_role_moves_a_switchyard_role_to_the_specified_path(member: Member) -> None:
    # given a Switchyard role at an old path
    ensure_role(
        clients=member.clients, credentials=member.credentials, spec=console_spec(path="/switchyard/old/")
    )

    # when the spec's path is ensured
    result = ensure_role(clients=member.clients, credentials=member.credentials, spec=console_spec())

    # then the role now lives at the spec's path
    assert result.outcome == "updated"
    assert result.differences == ("path is /switchyard/old/, expected /switchyard/acme/",)
    assert result.arn.endswith(":role/switchyard/acme/acme-engineer")
    state = read_role(
        clients=member.clients, credentials=member.credentials, path="/switchyard/acme/", name="acme-engineer"
    )
    assert state is not None and state.path == "/switchyard/acme/"


def test_ensure_role_refuses_to_change_a_foreign_role(member: Member) -> None:
    # given a role of the same name that the client made by hand, trusting someone else
    foreign_trust = trust_policy_for_console(main_account_id="999999999999")
    member.iam().create_role(
        Path="/switchyard/acme/", RoleName="acme-engineer", AssumeRolePolicyDocument=json.dumps(foreign_trust)
    )

    # when Switchyard ensures its role
    with pytest.raises(AwsError) as raised:
        ensure_role(clients=member.clients, credentials=member.credentials, spec=console_spec())

    # then it stops with a plain conflict naming the differences, and leaves the role alone
    assert raised.value.code == "RoleConflict"
    assert raised.value.retryable is False
    assert "trust policy differs" in raised.value.plain_message
    assert f"managed policy {READ_ONLY} is not attached" in raised.value.plain_message
    state = read_role(
        clients=member.clients, credentials=member.credentials, path="/switchyard/acme/", name="acme-engineer"
    )
    assert (
        state is not None and state.trust_policy == foreign_trust and state.managed_policy_arns == frozenset()
    )


def test_ensure_role_adopts_a_role_another_worker_created_meanwhile(member: Member) -> None:
    # given another worker that creates the same role between our look and our CreateRole
    spec = console_spec()

    def other_worker() -> None:
        ensure_role(clients=member.clients, credentials=member.credentials, spec=spec)

    racing = RacingClients(member.clients, rival=other_worker)

    # when we ensure the role
    result = ensure_role(clients=racing, credentials=member.credentials, spec=spec)

    # then our CreateRole met EntityAlreadyExists and the identical role was adopted
    assert racing.raced is True
    assert result.outcome == "adopted"


def test_delete_role_removes_the_role_and_is_idempotent(member: Member) -> None:
    # given a Switchyard role with managed and inline policies
    spec = console_spec()
    ensure_role(clients=member.clients, credentials=member.credentials, spec=spec)

    # when it is deleted twice
    first = delete_role(clients=member.clients, credentials=member.credentials, name=spec.name)
    second = delete_role(clients=member.clients, credentials=member.credentials, name=spec.name)

    # then the first call deleted it and the second found it already gone
    assert (first, second) == (True, False)
    assert (
        read_role(clients=member.clients, credentials=member.credentials, path=spec.path, name=spec.name)
        is None
    )


def test_delete_role_leaves_a_foreign_role_alone(member: Member) -> None:
    # given a role Switchyard did not create
    member.iam().create_role(
        RoleName="client-admin",
        AssumeRolePolicyDocument=json.dumps(trust_policy_for_console(main_account_id=MAIN_ACCOUNT_ID)),
    )

    # when Switchyard is asked to delete it
    with pytest.raises(AwsError) as raised:
        delete_role(clients=member.clients, credentials=member.credentials, name="client-admin")

    # then it refuses and the role is still there
    assert raised.value.code == "RoleNotManaged"
    assert (
        read_role(clients=member.clients, credentials=member.credentials, path="/", name="client-admin")
        is not None
    )


# --------------------------------------------------------------------------------------------------
# Account creation, with Stubber (moto finishes every creation at once and never fails one)
# --------------------------------------------------------------------------------------------------


def test_describe_account_creation_follows_in_progress_to_succeeded(stubbed: StubbedClients) -> None:
    # given AWS still creating the account, then done
    org = stubbed.stub("organizations")
    request_id = {"CreateAccountRequestId": "car-0123456789abcdef"}
    org.add_response("describe_create_account_status", creation_status("IN_PROGRESS"), request_id)
    org.add_response(
        "describe_create_account_status",
        creation_status("SUCCEEDED", AccountId=MEMBER_ACCOUNT_ID, CompletedTimestamp=NOW),
        request_id,
    )

    # when the worker polls twice
    first = describe_account_creation(clients=stubbed, request_id="car-0123456789abcdef")
    second = describe_account_creation(clients=stubbed, request_id="car-0123456789abcdef")

    # then it sees the account appear
    assert (first.state, first.account_id, first.is_finished) == ("IN_PROGRESS", None, False)
    assert (second.state, second.account_id, second.is_finished) == ("SUCCEEDED", MEMBER_ACCOUNT_ID, True)


@pytest.mark.parametrize("reason", sorted(FAILURE_REASON_MESSAGES))
def test_each_failure_reason_keeps_the_raw_reason_and_a_plain_message(
    stubbed: StubbedClients, reason: str
) -> None:
    # given AWS failing the creation for this reason
    stubbed.stub("organizations").add_response(
        "describe_create_account_status",
        creation_status("FAILED", FailureReason=reason, CompletedTimestamp=NOW),
    )

    # when the worker polls
    request = describe_account_creation(clients=stubbed, request_id="car-0123456789abcdef")

    # then the raw reason is kept and the plain message is the one for that reason
    assert (request.state, request.failure_reason) == ("FAILED", reason)
    assert request.failure_message == FAILURE_REASON_MESSAGES[reason] == failure_message(reason)
    assert creation_failure_error(request).code == reason


def test_failure_messages_cover_every_reason_in_the_organizations_api() -> None:
    # given botocore's Organizations model
    model = botocore.session.get_session().get_service_model("organizations")

    # when its FailureReason enum is read
    reasons = set(model.shape_for("CreateAccountFailureReason").metadata["enum"])

    # then every reason has its own plain message
    assert set(FAILURE_REASON_MESSAGES) == reasons


def test_unknown_failure_reason_falls_back_naming_the_reason() -> None:
    # given a reason AWS added later
    # when it is put in plain words
    message = failure_message("SOMETHING_NEW")

    # then the fallback names it
    assert "SOMETHING_NEW" in message


def test_failed_creation_is_retryable_only_for_aws_side_reasons(stubbed: StubbedClients) -> None:
    # given one creation failed by AWS itself and one failed because the e-mail is taken
    org = stubbed.stub("organizations")
    org.add_response(
        "describe_create_account_status", creation_status("FAILED", FailureReason="INTERNAL_FAILURE")
    )
    org.add_response(
        "describe_create_account_status", creation_status("FAILED", FailureReason="EMAIL_ALREADY_EXISTS")
    )
    internal = describe_account_creation(clients=stubbed, request_id="car-0123456789abcdef")
    taken = describe_account_creation(clients=stubbed, request_id="car-0123456789abcdef")

    # when they become errors
    internal_error, taken_error = creation_failure_error(internal), creation_failure_error(taken)

    # then only AWS's own failure may be retried with a new CreateAccount
    assert (internal_error.code, internal_error.retryable) == ("INTERNAL_FAILURE", True)
    assert (taken_error.code, taken_error.retryable) == ("EMAIL_ALREADY_EXISTS", False)


def test_find_account_creation_returns_a_request_still_in_progress(stubbed: StubbedClients) -> None:
    # given a creation AWS is still working on (so ListAccounts does not show it yet)
    org = stubbed.stub("organizations")
    org.add_response("list_accounts", {"Accounts": []})
    org.add_response(
        "list_create_account_status",
        {
            "CreateAccountStatuses": [
                creation_status("FAILED", FailureReason="INTERNAL_FAILURE")["CreateAccountStatus"]
                | {"Id": "car-00000000000old", "RequestedTimestamp": NOW - timedelta(days=1)},
                creation_status("IN_PROGRESS")["CreateAccountStatus"],
            ]
        },
    )

    # when the worker reconciles
    found = find_account_creation(clients=stubbed, email=ACME_EMAIL, account_name="acme")

    # then it waits on that request instead of sending another
    assert found is not None
    assert (found.request_id, found.state) == ("car-0123456789abcdef", "IN_PROGRESS")


def test_find_account_creation_reports_a_failed_attempt_but_not_an_older_one(stubbed: StubbedClients) -> None:
    # given a failed creation named acme, requested at NOW
    org = stubbed.stub("organizations")
    failed = creation_status("FAILED", FailureReason="EMAIL_ALREADY_EXISTS")
    for _ in range(2):
        org.add_response("list_accounts", {"Accounts": []})
        org.add_response(
            "list_create_account_status", {"CreateAccountStatuses": [failed["CreateAccountStatus"]]}
        )

    # when reconciling an attempt made before it, then one made after it
    ours = find_account_creation(
        clients=stubbed, email=ACME_EMAIL, account_name="acme", requested_after=NOW - timedelta(minutes=1)
    )
    later = find_account_creation(
        clients=stubbed, email=ACME_EMAIL, account_name="acme", requested_after=NOW + timedelta(minutes=1)
    )

    # then the failure is shown for our attempt, and ignored for the later one
    assert ours is not None and (ours.state, ours.failure_reason) == ("FAILED", "EMAIL_ALREADY_EXISTS")
    assert later is None


def test_organization_quota_status_reads_every_page(stubbed: StubbedClients) -> None:
    # given two pages of accounts and two creations in flight
    org = stubbed.stub("organizations")
    account = {
        "Id": MAIN_ACCOUNT_ID,
        "Arn": "arn:aws:organizations::123456789012:account/o-abcdefghij/123456789012",
        "Email": "root@example.com",
        "Name": "main",
        "State": "ACTIVE",
    }
    org.add_response("list_accounts", {"Accounts": [account], "NextToken": "page-2"})
    org.add_response(
        "list_accounts", {"Accounts": [account | {"Id": MEMBER_ACCOUNT_ID}]}, {"NextToken": "page-2"}
    )
    org.add_response(
        "list_create_account_status",
        {"CreateAccountStatuses": [creation_status("IN_PROGRESS")["CreateAccountStatus"]] * 2},
        {"States": ["IN_PROGRESS"]},
    )

    # when the quota is checked
    status = organization_quota_status(clients=stubbed)

    # then both pages count
    assert (status.accounts_in_org, status.creations_in_progress) == (2, 2)


def test_organization_status_walks_the_accounts_once_and_only_creations_in_progress(
    stubbed: StubbedClients,
) -> None:
    # given two pages of accounts and one creation in flight (the Stubber answers each call once:
    # a second walk of ListAccounts would find no answer left)
    org = stubbed.stub("organizations")
    account = {
        "Id": MAIN_ACCOUNT_ID,
        "Arn": "arn:aws:organizations::123456789012:account/o-abcdefghij/123456789012",
        "Email": "root@example.com",
        "Name": "main",
        "State": "ACTIVE",
    }
    org.add_response("list_accounts", {"Accounts": [account], "NextToken": "page-2"}, {})
    org.add_response(
        "list_accounts",
        {"Accounts": [account | {"Id": MEMBER_ACCOUNT_ID, "Email": ACME_EMAIL}]},
        {"NextToken": "page-2"},
    )
    org.add_response(
        "list_create_account_status",
        {"CreateAccountStatuses": [creation_status("IN_PROGRESS")["CreateAccountStatus"]]},
        {"States": ["IN_PROGRESS"]},
    )

    # when the Organization is read for a manager's request
    status = organization_status(clients=stubbed)

    # then both pages of members and the creation in flight come from that one read
    assert [member.id for member in status.members] == [MAIN_ACCOUNT_ID, MEMBER_ACCOUNT_ID]
    assert [request.request_id for request in status.creations_in_progress] == ["car-0123456789abcdef"]
    assert status.quota == (2, 1)


def test_account_quota_reached_is_not_retryable(stubbed: StubbedClients) -> None:
    # given an Organization at its account quota
    stubbed.stub("organizations").add_client_error(
        "create_account",
        "ConstraintViolationException",
        "You have exceeded the allowed number of accounts.",
        modeled_fields={"Reason": "ACCOUNT_NUMBER_LIMIT_EXCEEDED"},
    )

    # when an account is requested
    with pytest.raises(AwsError) as raised:
        start_account_creation(clients=stubbed, email=ACME_EMAIL, account_name="acme", tags={})

    # then it stops, keeping the reason, with a plain message about the quota
    error = raised.value
    assert (error.code, error.reason, error.retryable) == (
        "ConstraintViolationException",
        "ACCOUNT_NUMBER_LIMIT_EXCEEDED",
        False,
    )
    assert "quota" in error.plain_message
    assert error.raw_message == "You have exceeded the allowed number of accounts."


# --------------------------------------------------------------------------------------------------
# Invitations, with Stubber (moto does not implement handshakes)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("answer", ["ACCEPTED", "DECLINED", "EXPIRED"])
def test_invitation_goes_from_open_to_the_clients_answer(stubbed: StubbedClients, answer: str) -> None:
    # given an invitation AWS opens, then the client's answer (or its expiry)
    org = stubbed.stub("organizations")
    org.add_response(
        "invite_account_to_organization",
        handshake("OPEN"),
        {"Target": {"Id": MEMBER_ACCOUNT_ID, "Type": "ACCOUNT"}, "Notes": "Switchyard: acme"},
    )
    org.add_response("describe_handshake", handshake(answer), {"HandshakeId": "h-0123456789abcdef"})

    # when the account is invited and the worker polls
    sent = invite_account(clients=stubbed, account_id=MEMBER_ACCOUNT_ID, notes="Switchyard: acme")
    polled = describe_handshake(clients=stubbed, handshake_id=sent.id)

    # then the handshake is recorded open with its expiry, and then carries the answer
    assert (sent.id, sent.state, sent.is_final) == ("h-0123456789abcdef", "OPEN", False)
    assert sent.expires_at == NOW + timedelta(days=15)
    assert sent.account_id == MEMBER_ACCOUNT_ID
    assert (polled.state, polled.is_final) == (answer, True)


def test_cancelled_invitation_is_canceled(stubbed: StubbedClients) -> None:
    # given an open invitation
    stubbed.stub("organizations").add_response(
        "cancel_handshake", handshake("CANCELED"), {"HandshakeId": "h-0123456789abcdef"}
    )

    # when the manager cancels it
    cancelled = cancel_handshake(clients=stubbed, handshake_id="h-0123456789abcdef")

    # then AWS reports it canceled
    assert cancelled.state == "CANCELED"


def test_concurrent_modification_on_invite_is_not_retryable(stubbed: StubbedClients) -> None:
    # given AWS busy with another change to the Organization
    stubbed.stub("organizations").add_client_error(
        "invite_account_to_organization", "ConcurrentModificationException", "The target is being modified."
    )

    # when an account is invited
    with pytest.raises(AwsError) as raised:
        invite_account(clients=stubbed, account_id=MEMBER_ACCOUNT_ID, notes="")

    # then it is not retried blindly
    assert (raised.value.code, raised.value.retryable) == ("ConcurrentModificationException", False)


def test_invitation_to_an_account_in_another_organization_explains_why(stubbed: StubbedClients) -> None:
    # given a client account still in someone else's Organization
    stubbed.stub("organizations").add_client_error(
        "invite_account_to_organization",
        "HandshakeConstraintViolationException",
        "raw",
        modeled_fields={"Reason": "ALREADY_IN_AN_ORGANIZATION"},
    )

    # when it is invited
    with pytest.raises(AwsError) as raised:
        invite_account(clients=stubbed, account_id=MEMBER_ACCOUNT_ID, notes="")

    # then the manager learns the client must leave that Organization first
    assert raised.value.retryable is False
    assert "leave it" in raised.value.plain_message


# --------------------------------------------------------------------------------------------------
# Leaving the Organization, with Stubber
# --------------------------------------------------------------------------------------------------


def test_removing_an_account_that_already_left_is_a_no_op(stubbed: StubbedClients) -> None:
    # given an account no longer in the Organization
    stubbed.stub("organizations").add_client_error(
        "remove_account_from_organization", "AccountNotFoundException", "not found", 404
    )

    # when the hand-back retries the removal
    removed = remove_account_from_organization(clients=stubbed, account_id=MEMBER_ACCOUNT_ID)

    # then nothing fails and it says so
    assert removed is False


def test_account_without_payment_method_cannot_leave(stubbed: StubbedClients) -> None:
    # given a member account with no payment method of its own
    stubbed.stub("organizations").add_client_error(
        "remove_account_from_organization",
        "ConstraintViolationException",
        "raw",
        modeled_fields={"Reason": "MEMBER_ACCOUNT_PAYMENT_INSTRUMENT_REQUIRED"},
    )

    # when it is handed back
    with pytest.raises(AwsError) as raised:
        remove_account_from_organization(clients=stubbed, account_id=MEMBER_ACCOUNT_ID)

    # then the failure is reported with what the client must do
    assert raised.value.retryable is False
    assert "payment method" in raised.value.plain_message


# --------------------------------------------------------------------------------------------------
# STS and IAM errors, with Stubber
# --------------------------------------------------------------------------------------------------


def test_assume_role_denied_right_after_creation_is_retryable_not_ready(stubbed: StubbedClients) -> None:
    # given a brand-new account whose IAM is not ready
    stubbed.stub("sts").add_client_error(
        "assume_role", "AccessDenied", "not authorized to perform sts:AssumeRole", 403
    )

    # when Switchyard assumes its access role
    with pytest.raises(AwsError) as raised:
        assume_access_role(
            clients=stubbed, account_id=MEMBER_ACCOUNT_ID, session_name="switchyard-onboarding"
        )

    # then the caller is told to retry: IAM is not ready yet
    assert (raised.value.code, raised.value.retryable) == ("AccessDenied", True)
    assert "not ready yet" in raised.value.plain_message


def test_assume_role_denied_in_an_account_reached_before_is_for_a_person(stubbed: StubbedClients) -> None:
    # given an account Switchyard reached before, whose access role now refuses it
    stubbed.stub("sts").add_client_error(
        "assume_role", "AccessDenied", "not authorized to perform sts:AssumeRole", 403
    )

    # when roll-out, drift or hand-back assumes the access role
    with pytest.raises(AwsError) as raised:
        assume_access_role(
            clients=stubbed, account_id=MEMBER_ACCOUNT_ID, session_name="switchyard-rollout",
            account_may_be_new=False,
        )

    # then it is not retried: the message says the role must be restored, with AWS's code kept
    assert (raised.value.code, raised.value.retryable) == ("AccessDenied", False)
    assert "any more" in raised.value.plain_message and "not ready" not in raised.value.plain_message


def test_assume_role_returns_temporary_credentials(stubbed: StubbedClients) -> None:
    # given STS granting the role
    stubbed.stub("sts").add_response(
        "assume_role",
        {
            "Credentials": {
                "AccessKeyId": "ASIAEXAMPLEEXAMPLE",
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": NOW,
            }
        },
        {
            "RoleArn": f"arn:aws:iam::{MEMBER_ACCOUNT_ID}:role/OrganizationAccountAccessRole",
            "RoleSessionName": "switchyard-onboarding",
            "DurationSeconds": 3600,
        },
    )

    # when Switchyard assumes it
    credentials = assume_access_role(
        clients=stubbed, account_id=MEMBER_ACCOUNT_ID, session_name="switchyard-onboarding"
    )

    # then it gets the three parts of the temporary credentials
    assert credentials == TemporaryCredentials("ASIAEXAMPLEEXAMPLE", "secret", "token")


def test_iam_throttling_is_retryable(stubbed: StubbedClients) -> None:
    # given IAM throttling
    stubbed.stub("iam").add_client_error("get_role", "Throttling", "Rate exceeded")

    # when a role is read
    with pytest.raises(AwsError) as raised:
        read_role(clients=stubbed, credentials=None, path="/", name="acme-engineer")

    # then the caller retries later
    assert (raised.value.code, raised.value.retryable) == ("Throttling", True)


def test_organizations_throttling_is_retryable(stubbed: StubbedClients) -> None:
    # given Organizations throttling
    stubbed.stub("organizations").add_client_error(
        "describe_create_account_status", "TooManyRequestsException", "Rate exceeded", 429
    )

    # when the worker polls
    with pytest.raises(AwsError) as raised:
        describe_account_creation(clients=stubbed, request_id="car-0123456789abcdef")

    # then the caller retries later
    assert (raised.value.code, raised.value.retryable) == ("TooManyRequestsException", True)


@pytest.mark.parametrize("likely_new", [False, True], ids=["looking first", "creating first"])
def test_iam_role_quota_is_not_retryable(stubbed: StubbedClients, likely_new: bool) -> None:
    # given an account at its IAM role quota
    iam = stubbed.stub("iam")
    if not likely_new:
        iam.add_client_error("get_role", "NoSuchEntity", "not found", 404)
    iam.add_client_error("create_role", "LimitExceeded", "Cannot exceed quota for RolesPerAccount: 1000", 409)

    # when a role is ensured
    with pytest.raises(AwsError) as raised:
        ensure_role(clients=stubbed, credentials=None, spec=console_spec(), likely_new=likely_new)

    # then a person must act
    assert (raised.value.code, raised.value.retryable) == ("LimitExceeded", False)
    assert "quota" in raised.value.plain_message


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("Throttling", 400, True),
        ("TooManyRequestsException", 400, True),
        ("ServiceUnavailable", 503, True),
        ("InternalFailure", 500, True),
        ("RequestLimitExceeded", 400, True),
        ("ServiceFailure", 500, True),
        ("SomethingNewAndBroken", 502, True),
        ("LimitExceeded", 409, False),
        ("ConstraintViolationException", 400, False),
        ("ConcurrentModification", 409, False),
        ("ConcurrentModificationException", 400, False),
        ("ValidationError", 400, False),
        ("InvalidInputException", 400, False),
        ("MalformedPolicyDocument", 400, False),
        ("AccessDenied", 403, False),
        ("AccessDeniedException", 400, False),
        ("EntityAlreadyExists", 409, False),
        ("SomethingNewAndRefused", 400, False),
    ],
)
def test_client_errors_are_classified(code: str, status: int, retryable: bool) -> None:
    # given an AWS error
    # when it is classified
    error = classify_client_error(client_error(code, status))

    # then the raw code and message are kept, with a plain message and the right retry advice
    assert (error.code, error.raw_message, error.retryable) == (code, f"raw {code}", retryable)
    assert error.plain_message and error.plain_message != error.raw_message


@pytest.mark.parametrize(
    "exc",
    [
        EndpointConnectionError(endpoint_url="https://organizations.us-east-1.amazonaws.com"),
        ConnectTimeoutError(endpoint_url="https://iam.amazonaws.com"),
        ReadTimeoutError(endpoint_url="https://sts.amazonaws.com"),
    ],
)
def test_network_errors_are_retryable(exc: Exception) -> None:
    # given AWS unreachable
    # when the error is classified
    error = classify_botocore_error(exc)  # type: ignore[arg-type]

    # then the caller retries
    assert (error.code, error.retryable) == (type(exc).__name__, True)


def test_aws_error_survives_pickling_for_celery() -> None:
    # given a classified error
    error = classify_client_error(client_error("Throttling"))

    # when it crosses a process boundary
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes

    # then nothing is lost
    assert (copy.code, copy.raw_message, copy.plain_message, copy.retryable) == (
        error.code,
        error.raw_message,
        error.plain_message,
        error.retryable,
    )


def test_read_role_decodes_url_encoded_policy_documents(stubbed: StubbedClients) -> None:
    # given IAM answering with URL-encoded policy documents, as it does on the wire (and GetRole
    # without tags, so they are read with ListRoleTags)
    trust = trust_policy_for_console(main_account_id=MAIN_ACCOUNT_ID)
    iam = stubbed.stub("iam")
    name = {"RoleName": "acme-engineer"}
    iam.add_response(
        "get_role",
        {
            "Role": {
                "Path": "/switchyard/acme/",
                "RoleName": "acme-engineer",
                "RoleId": "AROAEXAMPLEEXAMPLE01",
                "Arn": f"arn:aws:iam::{MEMBER_ACCOUNT_ID}:role/switchyard/acme/acme-engineer",
                "CreateDate": NOW,
                "AssumeRolePolicyDocument": quote(json.dumps(trust)),
                "MaxSessionDuration": 7200,
            }
        },
        name,
    )
    iam.add_response(
        "list_attached_role_policies",
        {"AttachedPolicies": [{"PolicyName": "ReadOnlyAccess", "PolicyArn": READ_ONLY}]},
        name,
    )
    iam.add_response("list_role_policies", {"PolicyNames": ["switchyard-acme"]}, name)
    iam.add_response(
        "get_role_policy",
        {
            "RoleName": "acme-engineer",
            "PolicyName": "switchyard-acme",
            "PolicyDocument": quote(json.dumps(LIST_BUCKETS)),
        },
        name | {"PolicyName": "switchyard-acme"},
    )
    iam.add_response("list_role_tags", {"Tags": [{"Key": "managed-by", "Value": "switchyard"}]}, name)

    # when the role is read
    state = read_role(clients=stubbed, credentials=None, path="/switchyard/acme/", name="acme-engineer")

    # then the documents compare as parsed JSON
    assert state is not None
    assert state.trust_policy == trust
    assert state.inline_policies == {"switchyard-acme": LIST_BUCKETS}
    assert state.managed_by_switchyard is True


def _role_answer(**extra: Any) -> dict[str, Any]:
    return {
        "Role": {
            "Path": "/switchyard/acme/",
            "RoleName": "acme-engineer",
            "RoleId": "AROAEXAMPLEEXAMPLE01",
            "Arn": f"arn:aws:iam::{MEMBER_ACCOUNT_ID}:role/switchyard/acme/acme-engineer",
            "CreateDate": NOW,
            "AssumeRolePolicyDocument": json.dumps(trust_policy_for_console(main_account_id=MAIN_ACCOUNT_ID)),
            "MaxSessionDuration": 7200,
            "Description": "Switchyard: acme engineers",
            **extra,
        }
    }


def _role_policies(iam: Stubber, *, managed: tuple[str, ...], inline: dict[str, Any]) -> None:
    name = {"RoleName": "acme-engineer"}
    iam.add_response(
        "list_attached_role_policies",
        {"AttachedPolicies": [{"PolicyName": arn.rsplit("/", 1)[-1], "PolicyArn": arn} for arn in managed]},
        name,
    )
    iam.add_response("list_role_policies", {"PolicyNames": sorted(inline)}, name)
    for policy_name, document in sorted(inline.items()):
        iam.add_response(
            "get_role_policy",
            {"RoleName": "acme-engineer", "PolicyName": policy_name, "PolicyDocument": json.dumps(document)},
            name | {"PolicyName": policy_name},
        )


def test_read_role_takes_the_tags_get_role_answers_with(stubbed: StubbedClients) -> None:
    # given IAM answering GetRole with the role's tags, as it does (no ListRoleTags is stubbed)
    iam = stubbed.stub("iam")
    iam.add_response(
        "get_role",
        _role_answer(Tags=[{"Key": "managed-by", "Value": "switchyard"}, {"Key": "client", "Value": "acme"}]),
        {"RoleName": "acme-engineer"},
    )
    _role_policies(iam, managed=(READ_ONLY,), inline={})

    # when the role is read
    state = read_role(clients=stubbed, credentials=None, path="/switchyard/acme/", name="acme-engineer")

    # then its tags are those, read without asking IAM again
    assert state is not None
    assert state.tags == {"managed-by": "switchyard", "client": "acme"}
    assert state.managed_by_switchyard is True


def test_ensure_role_creating_first_sends_create_role_and_nothing_before_it(stubbed: StubbedClients) -> None:
    # given a new account (the Stubber answers exactly these calls, in this order)
    spec = console_spec()
    iam = stubbed.stub("iam")
    iam.add_response("create_role", _role_answer(), {
        "Path": spec.path, "RoleName": spec.name, "AssumeRolePolicyDocument": json.dumps(spec.trust_policy),
        "Description": spec.description, "MaxSessionDuration": spec.max_session_duration,
        "Tags": [{"Key": k, "Value": v} for k, v in spec.all_tags.items()],
    })
    iam.add_response("attach_role_policy", {}, {"RoleName": spec.name, "PolicyArn": READ_ONLY})
    iam.add_response("put_role_policy", {}, {
        "RoleName": spec.name, "PolicyName": "switchyard-acme", "PolicyDocument": json.dumps(LIST_BUCKETS),
    })

    # when onboarding ensures the role
    result = ensure_role(clients=stubbed, credentials=None, spec=spec, likely_new=True)

    # then CreateRole was the first call (no GetRole), and the role was created
    assert (result.outcome, result.arn) == ("created", _role_answer()["Role"]["Arn"])


@pytest.mark.parametrize(
    ("tags", "managed", "outcome"),
    [
        ([{"Key": "client", "Value": "acme"}, {"Key": "tier", "Value": "engineer"}], (READ_ONLY,), "adopted"),
        ([{"Key": "managed-by", "Value": "switchyard"}], (VIEW_ONLY,), "updated"),
        ([{"Key": "owner", "Value": "client"}], (VIEW_ONLY,), "RoleConflict"),
    ],
    ids=["identical: adopted", "switchyard's, drifted: updated", "foreign, different: conflict"],
)
def test_ensure_role_creating_first_reads_a_role_that_exists_and_goes_on_as_before(
    stubbed: StubbedClients, tags: list[dict[str, str]], managed: tuple[str, ...], outcome: str
) -> None:
    # given a role of that name already in the account: identical, Switchyard's but drifted, or foreign
    spec = console_spec()
    iam = stubbed.stub("iam")
    iam.add_client_error("create_role", "EntityAlreadyExists", "Role with name acme-engineer already exists.", 409)
    iam.add_response("get_role", _role_answer(Tags=tags), {"RoleName": spec.name})
    _role_policies(iam, managed=managed, inline={"switchyard-acme": LIST_BUCKETS})
    if outcome == "adopted":  # Switchyard's tags added to the identical role
        iam.add_response("tag_role", {},
                         {"RoleName": spec.name, "Tags": [{"Key": "managed-by", "Value": "switchyard"}]})
    if outcome == "updated":  # brought back to the spec, tags completed
        iam.add_response("detach_role_policy", {}, {"RoleName": spec.name, "PolicyArn": VIEW_ONLY})
        iam.add_response("attach_role_policy", {}, {"RoleName": spec.name, "PolicyArn": READ_ONLY})
        iam.add_response("tag_role", {}, {"RoleName": spec.name, "Tags": [
            {"Key": "client", "Value": "acme"}, {"Key": "tier", "Value": "engineer"}]})

    # when onboarding ensures the role, CreateRole first
    try:
        result = ensure_role(clients=stubbed, credentials=None, spec=spec, likely_new=True).outcome
    except AwsError as error:
        result = error.code

    # then the existing role is adopted, updated, or left alone with a conflict, exactly as when looking first
    assert result == outcome


# --------------------------------------------------------------------------------------------------
# Pure functions
# --------------------------------------------------------------------------------------------------


def test_console_trust_policy_trusts_main_account_with_mfa_and_named_sessions() -> None:
    # given the main account id
    # when the console trust policy is built
    policy = trust_policy_for_console(main_account_id=MAIN_ACCOUNT_ID)

    # then it is exactly this, with no ExternalId
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "Bool": {"aws:MultiFactorAuthPresent": "true"},
                    "StringLike": {"sts:RoleSessionName": "${aws:username}"},
                },
            }
        ],
    }


def test_access_role_template_parses_and_trusts_only_switchyards_workers() -> None:
    # given the main account id and the identity Switchyard's workers run as
    worker = f"arn:aws:iam::{MAIN_ACCOUNT_ID}:role/SwitchyardWorker"

    # when the template for an invited account is generated
    text = access_role_cloudformation_template(main_account_id=MAIN_ACCOUNT_ID, principal_arn=worker)

    # then it is valid YAML defining the access role by its RoleName parameter, trusted by the main
    # account's worker principal only, without administrator access
    template = yaml.safe_load(text)
    role = template["Resources"]["SwitchyardAccessRole"]
    assert role["Type"] == "AWS::IAM::Role"
    assert template["Parameters"]["RoleName"]["Default"] == "SwitchyardAccessRole"
    assert role["Properties"]["RoleName"] == {"Ref": "RoleName"}
    assert template["Parameters"]["SwitchyardPrincipalArn"]["Default"] == worker
    statement = role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert statement["Condition"] == {"ArnEquals": {"aws:PrincipalArn": {"Ref": "SwitchyardPrincipalArn"}}}
    assert "ManagedPolicyArns" not in role["Properties"]
    assert "AdministratorAccess" not in text


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "acme engineer"},
        {"name": "x" * 65},
        {"path": "switchyard/acme"},
        {"max_session_duration": 1800},
        {"max_session_duration": 43201},
        {"managed_policy_arns": tuple(f"arn:aws:iam::aws:policy/P{i}" for i in range(11))},
        {"trust_policy": {"Version": "2012-10-17", "Statement": [{"Sid": "x" * 2100}]}},
    ],
)
def test_role_spec_rejects_what_iam_would_refuse(overrides: dict[str, Any]) -> None:
    # given a value IAM would refuse
    # when a spec is built with it
    # then it is refused before anything is sent
    with pytest.raises(ValueError):
        console_spec(**overrides)
