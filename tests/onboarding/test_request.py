"""A manager's onboarding request: what it writes, and every guardrail that refuses it before
anything is sent (malformed input, duplicates, the Organization's quota, AWS
unreachable), each as a message for its field, with nothing written."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import connection

from onboarding.models import AwsAccount, Client, OnboardingStep
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory, TemporaryCredentials
from switchroles.models import AccountRole, RoleTemplate
from tests.onboarding.conftest import AwsMustNotBeCalled, CountingClients, RequestAccount, make_account, templates
from tests.onboarding.test_aws import StubbedClients, creation_status

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind


def _nothing_written() -> bool:
    return not (
        Client.objects.exists() or AwsAccount.objects.exists() or OnboardingStep.objects.exists()
        or AccountRole.objects.exists() or AuditEvent.objects.exists()
    )


def _field_errors(raised: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return raised.value.message_dict


def test_request_writes_the_account_its_roles_and_the_steps_of_the_created_path(
    org: Boto3ClientFactory, request_account: RequestAccount, django_capture_on_commit_callbacks: Any
) -> None:
    # given a manager asking for a new account with two roles
    with django_capture_on_commit_callbacks() as callbacks:
        account = request_account(clients=org, templates=templates("SwitchyardAdministrator", "SwitchyardOnCall"))

    # then the client, the account (requested) and one pending role per template exist
    assert (account.client.name, account.client.slug) == ("Acme Retail", "acme")
    assert (account.state, account.origin, account.root_email) == (
        AwsAccount.State.REQUESTED, AwsAccount.Origin.CREATED, "awsaccounts+acme@example.com"
    )
    roles = list(account.roles.order_by("template_id").values_list(
        "role_path", "role_name", "display_name", "color", "state"))
    assert roles == [
        ("/switchyard/acme/", "SwitchyardAdministrator", "Acme Retail / production / Administrator", "f2b0a9",
         "pending"),
        ("/switchyard/acme/", "SwitchyardOnCall", "Acme Retail / production / On-call support", "b7ca9d", "pending"),
    ]
    # and the created path's steps, all pending, then one audit event and one task after commit
    assert list(account.steps.values_list("kind", "status")) == [
        (kind, "pending") for kind in (Kind.CREATE_ACCOUNT, Kind.AWAIT_CREATION, Kind.ASSUME_ACCESS_ROLE,
                                       Kind.PROVISION_ROLES, Kind.VERIFY_ROLES, Kind.PUBLISH_LINKS)
    ]
    event = AuditEvent.objects.get(action="onboarding.requested")
    assert event.details["templates"] == ["Administrator", "On-call support"]
    assert event.details["reason"] == "New managed-services contract"
    assert len(callbacks) == 1


def test_invited_account_gets_the_invite_path_and_keeps_no_email(
    org: Boto3ClientFactory, request_account: RequestAccount
) -> None:
    # when a manager invites an existing account
    account = request_account(clients=org, origin=AwsAccount.Origin.INVITED, account_id="210987654321",
                              root_email="ignored@example.com")

    # then it follows the invite path
    assert (account.account_id, account.root_email) == ("210987654321", None)
    assert list(account.steps.values_list("kind", flat=True)) == [
        Kind.INVITE_ACCOUNT, Kind.AWAIT_HANDSHAKE, Kind.AWAIT_ACCESS_ROLE, Kind.ASSUME_ACCESS_ROLE,
        Kind.PROVISION_ROLES, Kind.VERIFY_ROLES, Kind.PUBLISH_LINKS,
    ]


BAD_INPUT = [
    ({"origin": "invited", "account_id": "12345"}, "account_id"),
    ({"origin": "invited", "account_id": "12345678901a"}, "account_id"),
    ({"origin": "invited", "account_id": "1234567890123"}, "account_id"),
    ({"origin": "invited", "account_id": ""}, "account_id"),
    ({"root_email": "not-an-email"}, "root_email"),
    ({"root_email": "a@b.c"}, "root_email"),
    ({"root_email": "awsaccounts+" + "x" * 50 + "@example.com"}, "root_email"),
    ({"root_email": ""}, "root_email"),
    ({"account_name": ""}, "account_name"),
    ({"account_name": "x" * 51}, "account_name"),
    ({"account_name": "prod\u0007uction"}, "account_name"),
    ({"client_name": ""}, "client_name"),
    ({"client_name": "Acme\u202eRetail"}, "client_name"),
    ({"client_slug": "Acme!"}, "client_slug"),
    ({"client_slug": "-acme"}, "client_slug"),
    ({"client_slug": ""}, "client_slug"),
    ({"client_slug": "a" * 33}, "client_slug"),
    ({"client_slug": "a" * 32}, "templates"),  # switchyard/<32>/SwitchyardAdministrator is over 64
    ({"templates": []}, "templates"),
    ({"reason": "   "}, "reason"),
    ({"origin": "stolen"}, "origin"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUT, ids=[f"{f}:{o}"[:60] for o, f in BAD_INPUT])
def test_malformed_input_is_refused_with_a_field_error_before_any_write_or_aws_call(
    request_account: RequestAccount, overrides: dict[str, Any], field: str
) -> None:
    # given a factory that fails the test if AWS is called at all
    no_aws = AwsMustNotBeCalled()

    # when the request has one malformed value
    with pytest.raises(ValidationError) as raised:
        request_account(clients=no_aws, **overrides)

    # then that field has a message, nothing was written and AWS was never asked
    assert field in _field_errors(raised)
    assert no_aws.calls == []
    assert _nothing_written()


def test_a_retired_template_is_refused(request_account: RequestAccount) -> None:
    retired = RoleTemplate.objects.create(name="Old", tier="custom", role_name="Old", console_color="efda95",
                                          managed_policy_arns=["arn:aws:iam::aws:policy/ReadOnlyAccess"],
                                          is_active=False)
    with pytest.raises(ValidationError) as raised:
        request_account(clients=AwsMustNotBeCalled(), templates=[retired])
    assert "retired" in _field_errors(raised)["templates"][0]


def test_duplicates_in_the_database_are_refused_without_asking_aws(request_account: RequestAccount) -> None:
    # given an account that already uses the address, and an invited account with this id
    make_account(client_slug="acme", root_email="awsaccounts+acme@example.com")
    make_account(client_slug="other", origin=AwsAccount.Origin.INVITED, account_id="210987654321",
                 name="legacy")
    no_aws = AwsMustNotBeCalled()

    # when the same address, the same client and the same account id are asked for again
    with pytest.raises(ValidationError) as by_email:
        request_account(clients=no_aws, root_email="AWSAccounts+ACME@example.com")
    with pytest.raises(ValidationError) as by_id:
        request_account(clients=no_aws, client_slug="acme2", client_name="Acme Two", origin="invited",
                        account_id="210987654321")

    # then each is refused next to its field
    assert "already uses this address" in _field_errors(by_email)["root_email"][0]
    assert "client_slug" in _field_errors(by_email)
    assert "Switchyard already has this account" in _field_errors(by_id)["account_id"][0]
    assert no_aws.calls == []
    assert AwsAccount.objects.count() == 2


def test_an_email_or_account_already_in_the_organization_is_refused(
    org: Boto3ClientFactory, request_account: RequestAccount
) -> None:
    # given an account created in the Organization outside Switchyard
    organizations = org.client("organizations")
    existing = organizations.create_account(Email="awsaccounts+acme@example.com", AccountName="by hand")
    existing_id = existing["CreateAccountStatus"]["AccountId"]

    # when a manager asks for the same address, or invites that account
    with pytest.raises(ValidationError) as by_email:
        request_account(clients=org)
    with pytest.raises(ValidationError) as by_id:
        request_account(clients=org, origin="invited", account_id=existing_id)

    # then both are refused next to their field, and nothing is written
    assert "already uses this address" in _field_errors(by_email)["root_email"][0]
    assert "already a member of the Organization" in _field_errors(by_id)["account_id"][0]
    assert _nothing_written()


def test_the_organization_quota_counts_accounts_in_aws_and_our_own_on_the_way(
    org: Boto3ClientFactory, request_account: RequestAccount, settings: Any
) -> None:
    # given an Organization of one account, one of ours on the way, and a quota of two
    settings.SWITCHYARD_ORG_ACCOUNT_QUOTA = 2
    make_account(client_slug="globex")

    # when a manager asks for another
    with pytest.raises(ValidationError) as raised:
        request_account(clients=org)

    # then the quota is named next to the choice of account
    assert "quota of 2 accounts (1 in it, 1 on the way)" in _field_errors(raised)["origin"][0]
    assert AwsAccount.objects.count() == 1


def test_creations_in_flight_do_not_refuse_a_request(
    org: Boto3ClientFactory, request_account: RequestAccount, settings: Any
) -> None:
    # given two creations of ours in flight, and a limit of two
    settings.SWITCHYARD_MAX_CREATIONS_IN_FLIGHT = 2
    make_account(client_slug="globex")
    make_account(client_slug="initech", state=AwsAccount.State.CREATING)

    # when a manager asks for a third
    account = request_account(clients=org)

    # then it is accepted: it will wait for a creation slot (onboarding.creation_queue)
    assert account.state == AwsAccount.State.REQUESTED
    assert AwsAccount.objects.count() == 3


def test_a_request_reads_the_organization_once(request_account: RequestAccount, settings: Any) -> None:
    # given an Organization of 25 accounts (two pages of ListAccounts), one of them taken by the
    # address asked for, and one creation in flight; the Stubber answers each call once, in order
    settings.SWITCHYARD_ORG_ACCOUNT_QUOTA = 25
    stubbed = StubbedClients()
    org = stubbed.stub("organizations")
    members = [
        {"Id": f"{index:012d}", "Arn": f"arn:aws:organizations::123456789012:account/o-abcdefghij/{index:012d}",
         "Email": f"member{index}@example.com", "Name": f"member {index}", "State": "ACTIVE"}
        for index in range(1, 26)
    ]
    members[-1]["Email"] = "awsaccounts+acme@example.com"
    org.add_response("list_accounts", {"Accounts": members[:20], "NextToken": "page-2"}, {})
    org.add_response("list_accounts", {"Accounts": members[20:]}, {"NextToken": "page-2"})
    org.add_response("list_create_account_status",
                     {"CreateAccountStatuses": [creation_status("IN_PROGRESS")["CreateAccountStatus"]]},
                     {"States": ["IN_PROGRESS"]})

    # when a manager asks for an account
    with pytest.raises(ValidationError) as raised:
        request_account(clients=stubbed)

    # then one walk of the accounts and one of the creations in flight decided every check
    stubbed.verify()
    errors = _field_errors(raised)
    assert "quota of 25 accounts (25 in it, 0 on the way)" in errors["origin"][0]
    assert "already uses this address" in errors["root_email"][0]
    assert _nothing_written()


class Unreachable:
    def client(self, service: str, credentials: TemporaryCredentials | None = None, **_: Any) -> Any:
        return self

    def get_paginator(self, operation: str) -> Any:
        raise EndpointConnectionError(endpoint_url="https://organizations.us-east-1.amazonaws.com")


def test_aws_unreachable_during_the_checks_is_said_next_to_the_form(request_account: RequestAccount) -> None:
    # when AWS cannot be reached while the quota is checked
    with pytest.raises(ValidationError) as raised:
        request_account(clients=Unreachable())

    # then the form says so, and nothing was written
    message = _field_errors(raised)[NON_FIELD_ERRORS][0]
    assert "could not check the Organization" in message and "EndpointConnectionError" in message
    assert _nothing_written()


def test_a_second_request_for_an_existing_client_reuses_it(
    org: Boto3ClientFactory, request_account: RequestAccount
) -> None:
    first = request_account(clients=org)
    second = request_account(clients=org, client=first.client, client_name="", client_slug="",
                             account_name="staging", root_email="awsaccounts+acme-staging@example.com")
    assert second.client == first.client
    assert Client.objects.count() == 1


# --------------------------------------------------------------------------------------------------
# Two submissions of the same form at the same moment
# --------------------------------------------------------------------------------------------------


class RacingClients(CountingClients):
    """Runs ``rival`` (the same form, submitted again) while this submission is between its checks
    and its write: just as it reads the Organization's accounts."""

    def __init__(self, inner: Any, rival: Any) -> None:
        super().__init__(inner)
        self.rival = rival
        self.raced = False

    def client(self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True) -> Any:
        client = super().client(service, credentials, retries=retries)
        client.meta.events.register("before-call.organizations.ListAccounts", self._race, unique_id=f"race-{id(self)}")
        return client

    def _race(self, **_: Any) -> None:
        if not self.raced:
            self.raced = True
            self.rival()


@pytest.mark.parametrize("existing_client", [True, False], ids=["existing client", "new client"])
def test_two_racing_submissions_of_the_same_form_create_one_account(
    org: Boto3ClientFactory, request_account: RequestAccount, existing_client: bool
) -> None:
    # given the same form submitted twice, the second landing while the first is still checking
    extra: dict[str, Any] = {}
    if existing_client:
        extra = {"client": Client.objects.create(name="Acme Retail", slug="acme"), "client_name": "",
                 "client_slug": ""}
    winners = []
    # (each submission with a client factory of its own, as two requests to the portal have)
    racing = RacingClients(Boto3ClientFactory(region_name="us-east-1"),
                           rival=lambda: winners.append(request_account(clients=org, **extra)))

    # when both go through
    with pytest.raises(ValidationError) as raised:
        request_account(clients=racing, **extra)

    # then the database decided: one account, and the loser is told why next to a field
    assert len(winners) == 1 and AwsAccount.objects.count() == 1
    assert AccountRole.objects.count() == len(templates())
    errors = _field_errors(raised)
    assert ("root_email" in errors) if existing_client else ({"client_name", "client_slug"} & set(errors))
    assert Client.objects.count() == 1
    assert AuditEvent.objects.filter(action="onboarding.requested").count() == 1


class BarrierClients(CountingClients):
    """Holds each submission just before it reads the Organization's accounts until both got there."""

    def __init__(self, inner: Any, barrier: threading.Barrier) -> None:
        super().__init__(inner)
        self.barrier = barrier

    def client(self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True) -> Any:
        client = super().client(service, credentials, retries=retries)
        client.meta.events.register("before-call.organizations.ListAccounts", self._wait, unique_id=f"wait-{id(self)}")
        return client

    def _wait(self, **_: Any) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=10)


# SQLite's in-memory test database serialises writers with "table is locked" errors instead of
# waiting on a unique index, so the real two-connection race runs where CI runs: on PostgreSQL.
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (CI sets DATABASE_URL)")
@pytest.mark.django_db(transaction=True)  # the suite's fixture puts the migrations' rows back
@pytest.mark.parametrize("existing_client", [True, False], ids=["existing client", "new client"])
def test_two_concurrent_submissions_in_two_connections_create_one_account(
    org: Boto3ClientFactory, request_account: RequestAccount, existing_client: bool
) -> None:
    # given the same form submitted from two browsers at once, both past their checks
    extra: dict[str, Any] = {}
    if existing_client:
        extra = {"client": Client.objects.create(name="Acme Retail", slug="acme"), "client_name": "",
                 "client_slug": ""}
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def submit() -> None:
        try:
            factory = Boto3ClientFactory(region_name="us-east-1")  # one per request, as the portal makes them
            outcomes.append(request_account(clients=BarrierClients(factory, barrier), **extra))
        except ValidationError as error:
            outcomes.append(error)
        finally:
            connection.close()

    # when both write at the same moment
    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then one account exists, and the other submission got a field error
    assert AwsAccount.objects.count() == 1
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["AwsAccount", "ValidationError"]
    assert AuditEvent.objects.filter(action="onboarding.requested").count() == 1
