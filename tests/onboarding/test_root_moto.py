"""Root credentials against moto with the sandbox's root-access extension: the features off (clear
refusals, nothing written), turning them on, the posture of a created and of an invited account,
removal read back, the hand-back giving root back before the account leaves, and AssumeRoot's checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from django.core.exceptions import ValidationError
from django.test import Client as HttpClient
from django.urls import reverse

from onboarding import root_services, workflow
from onboarding.handback import handback_start
from onboarding.models import AwsAccount, Client, OnboardingStep, RootPosture
from onboarding.root_selectors import root_credentials_for
from portal import aws
from portal.aws import Boto3ClientFactory
from portal.models import AuditEvent, User
from portal.sandbox_moto import root_access
from tests.onboarding.conftest import CountingClients, RequestAccount, drive, mocked_organization
from tests.onboarding.handback_support import ALL_CONFIRMED

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
AUDIT_ARN = "arn:aws:iam::aws:policy/root-task/IAMAuditRootUserCredentials"


@pytest.fixture
def org_with_policies(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    """The Organization with AWS managed policies (the role templates attach them): slow, for the one
    test that onboards an account through the whole workflow."""
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


def active_account(*, name: str = "production") -> AwsAccount:
    """An account created in moto's Organization and active in Switchyard (its onboarding done,
    no roles: what root access touches is the root user, not the roles)."""
    email = f"awsaccounts+acme-{name}@example.com"
    created = boto3.client("organizations", region_name="us-east-1").create_account(Email=email, AccountName=name)
    client, _ = Client.objects.get_or_create(slug="acme", defaults={"name": "Acme Retail"})
    account = AwsAccount.objects.create(
        client=client, name=name, origin=AwsAccount.Origin.CREATED, reason="test", root_email=email,
        account_id=created["CreateAccountStatus"]["AccountId"], state=AwsAccount.State.ACTIVE,
    )
    for position, kind in enumerate(workflow.CREATED_PATH, start=1):
        OnboardingStep.objects.create(account=account, position=position, kind=kind, status=Status.SUCCEEDED)
    return account


def enable_features() -> None:
    boto3.client("organizations", region_name="us-east-1").enable_aws_service_access(
        ServicePrincipal="iam.amazonaws.com")
    iam = boto3.client("iam", region_name="us-east-1")
    iam.enable_organizations_root_credentials_management()
    iam.enable_organizations_root_sessions()


def joined_by_invitation(account_id: str) -> None:
    """moto has no invitations: mark a created member account as one that joined by invitation
    (what the sandbox's handshakes record), before its root user is first looked at."""
    member = root_access._member(account_id)
    assert member is not None
    member.joined_method = "INVITED"


def failures(account: AwsAccount) -> list[tuple[str, str, str]]:
    return [(s.kind, s.last_error_code, s.last_error_message)
            for s in OnboardingStep.objects.filter(account=account, status=Status.FAILED)]


def give_root_everything(account_id: str) -> None:
    user = root_access.root_user(account_id)
    user.password_created_at = root_access._now()
    user.mfa_devices.append(f"arn:aws:iam::{account_id}:mfa/root-account-mfa-device")
    user.access_keys.append("AKIAROOTKEYEXAMPLE01")
    user.signing_certificates.append("CERTROOTEXAMPLE0000000000000001")


# --- features off ---------------------------------------------------------------------------------


def test_features_off_removal_is_refused_plainly_and_nothing_is_written(
    org: Boto3ClientFactory, manager: User
) -> None:
    # given an active account and an Organization without centralized root access
    account = active_account()
    steps_before = OnboardingStep.objects.filter(account=account).count()
    events_before = AuditEvent.objects.count()

    # when a manager asks to remove its root credentials
    with pytest.raises(ValidationError) as refused:
        root_services.root_removal_request(account=account, actor=manager, reason="Contract", clients=org)

    # then the refusal says the feature is off, where to turn it on and what the workers need
    message = " ".join(refused.value.messages)
    assert "Centralized root access is off" in message
    assert "Root access page" in message and "sts:AssumeRoot" in message and "iam:ListOrganizationsFeatures" in message
    # and nothing was written: no step, same state, no audit event
    account.refresh_from_db()
    assert account.state == AwsAccount.State.ACTIVE
    assert OnboardingStep.objects.filter(account=account).count() == steps_before
    assert AuditEvent.objects.count() == events_before


def test_features_off_daily_check_records_why_without_opening_root_sessions(
    org: Boto3ClientFactory
) -> None:
    # given an active account and the features off
    account = active_account()
    counting = CountingClients(org)

    # when the daily check runs
    due = root_services.root_posture_check_due(clients=counting)

    # then the account's posture says why it is not known, and no AssumeRoot was sent
    assert due == [account.pk]
    posture = RootPosture.objects.get(account=account)
    assert posture.checked_at is None and posture.last_error_code == "RootAccessNotEnabled"
    assert "trusted access for IAM" in posture.last_error_message
    assert "AssumeRoot" not in counting.operations
    assert root_credentials_for(AwsAccount.objects.select_related("root_posture").get(pk=account.pk)) is None


def test_assume_root_is_refused_while_root_sessions_are_off(org: Boto3ClientFactory) -> None:
    # given an account and trusted access on but RootSessions off
    account = active_account()
    boto3.client("organizations", region_name="us-east-1").enable_aws_service_access(
        ServicePrincipal="iam.amazonaws.com")

    # when the workers open a root session
    with pytest.raises(aws.AwsError) as refused:
        aws.assume_root(clients=org, account_id=account.account_id or "", task=aws.AUDIT_TASK)

    # then AWS refuses and the message says root sessions are off
    assert refused.value.code == "AccessDenied" and not refused.value.retryable
    assert "Root sessions are not enabled" in refused.value.plain_message


# --- enabling ---------------------------------------------------------------------------------------


def test_manager_turns_on_centralized_root_access_from_the_page(
    org: Boto3ClientFactory, manager_http: HttpClient
) -> None:
    # given the features page with everything off
    page = manager_http.get(reverse("onboarding:root_access"))
    assert page.status_code == 200
    assert page.content.decode().count("status-failed") == 3

    # when the (re-authenticated) manager turns it on
    response = manager_http.post(reverse("onboarding:root_access_enable"))

    # then AWS reports all three on, and the change is audited
    assert response.status_code == 302
    features = aws.root_features(clients=org)
    assert features.trusted_access and features.root_credentials_management and features.root_sessions
    event = AuditEvent.objects.get(action="onboarding.root.features_enabled")
    assert event.details["before"] == {"trusted_access": False, "root_credentials_management": False,
                                       "root_sessions": False}
    assert all(event.details["after"].values())
    assert "Centralized root access is on" in manager_http.get(reverse("onboarding:root_access")).content.decode()


# --- posture ----------------------------------------------------------------------------------------


def test_a_created_account_has_no_root_credentials(org: Boto3ClientFactory) -> None:
    # given a created account and the features on
    account = active_account()
    enable_features()

    # when the workers look at its root user
    posture = root_services.root_posture_check(account=account, clients=org)

    # then it has none, and the API's dict says so
    assert posture.known and not posture.has_credentials
    found = root_credentials_for(AwsAccount.objects.select_related("root_posture").get(pk=account.pk))
    assert found is not None
    assert {k: v for k, v in found.items() if k != "checked_at"} == {
        "password": False, "mfa_devices": 0, "access_keys": 0, "signing_certificates": 0}


def test_an_invited_account_keeps_its_root_password(org: Boto3ClientFactory,
                                                    signed_in: Any, manager: User) -> None:
    # given an account that joined by invitation and the features on
    account = active_account()
    joined_by_invitation(account.account_id or "")
    enable_features()

    # when the workers look at its root user
    posture = root_services.root_posture_check(account=account, clients=org)

    # then it has a password, shown on the account page and in the list of all accounts
    assert posture.password and posture.mfa_devices == 0
    page = signed_in(manager).get(account.get_absolute_url()).content.decode()
    assert "Has root credentials" in page and "A password" in page
    listing = signed_in(manager).get(reverse("onboarding:root_posture_list")).content.decode()
    assert "1 account still has a root password" in listing


def test_created_account_onboarding_ends_by_checking_it_has_no_root_credentials(
    org_with_policies: Boto3ClientFactory, request_account: RequestAccount
) -> None:
    # given the features on and an account requested with the root check
    enable_features()
    account = request_account(clients=org_with_policies, root_credentials=True)

    # when the workers onboard it
    drive(account, clients=org_with_policies)

    # then its last step looked at the root user and found nothing
    account.refresh_from_db()
    step = OnboardingStep.objects.get(account=account, kind=Kind.ROOT_CHECK_NONE)
    assert account.state == AwsAccount.State.ACTIVE and step.status == Status.SUCCEEDED
    assert step.detail["root_credentials"] == "none"
    assert RootPosture.objects.get(account=account).known


def test_an_invited_accounts_onboarding_ends_with_the_removal_by_default() -> None:
    # given the onboarding form as a manager first sees it, and the invited path with that choice
    from onboarding.forms import OnboardingForm

    # then the choice is on, and the removal steps close the invited path
    assert OnboardingForm().fields["root_credentials"].initial is True
    path = workflow.path_for(AwsAccount.Origin.INVITED, root_credentials=True)
    assert path[-len(workflow.ROOT_REMOVAL_PATH):] == workflow.ROOT_REMOVAL_PATH
    assert path[:-len(workflow.ROOT_REMOVAL_PATH)] == workflow.INVITED_PATH


# --- removal ----------------------------------------------------------------------------------------


def test_removal_deletes_every_root_credential_and_reads_back_nothing_left(
    org: Boto3ClientFactory, manager: User
) -> None:
    # given an invited account whose root has a password, an MFA device, an access key and a certificate
    account = active_account()
    enable_features()
    give_root_everything(account.account_id or "")
    assert root_services.root_posture_check(account=account, clients=org).summary == (
        "a password, 1 MFA device, 1 access key, 1 signing certificate")

    # when a manager removes them and the workers run the steps
    root_services.root_removal_request(account=account, actor=manager, reason="Client asked", clients=org)
    account.refresh_from_db()
    assert account.state == AwsAccount.State.REMOVING_ROOT
    drive(account, clients=org)

    # then each removal is a recorded step, the account is active again, and the root has nothing left
    account.refresh_from_db()
    assert account.state == AwsAccount.State.ACTIVE, failures(account)
    steps = {s.kind: s for s in OnboardingStep.objects.filter(account=account, kind__in=workflow.ROOT_REMOVAL_PATH)}
    assert all(s.status == Status.SUCCEEDED for s in steps.values()) and len(steps) == 5
    assert steps[Kind.ROOT_DELETE_ACCESS_KEYS].detail["access_keys_deleted"] == ["AKIAROOTKEYEXAMPLE01"]
    assert steps[Kind.ROOT_DEACTIVATE_MFA].detail["mfa_devices_deactivated"] == [
        f"arn:aws:iam::{account.account_id}:mfa/root-account-mfa-device"]
    posture = RootPosture.objects.get(account=account)
    assert posture.known and not posture.has_credentials
    # read back independently through a new audit session
    credentials = aws.assume_root(clients=org, account_id=account.account_id or "", task=aws.AUDIT_TASK)
    assert aws.read_root_credentials(clients=org, credentials=credentials).none_left
    assert AuditEvent.objects.filter(action="onboarding.root.removal_requested", actor=manager).count() == 1
    succeeded = AuditEvent.objects.filter(action="onboarding.step.succeeded", target_id=str(account.pk))
    assert {e.details["step"] for e in succeeded} >= set(workflow.ROOT_REMOVAL_PATH)


def test_a_second_removal_runs_the_same_steps_again(org: Boto3ClientFactory,
                                                     manager: User) -> None:
    # given an account whose root credentials were removed once, then a new password appeared
    account = active_account()
    enable_features()
    give_root_everything(account.account_id or "")
    root_services.root_removal_request(account=account, actor=manager, reason="First", clients=org)
    drive(account, clients=org)
    root_access.root_user(account.account_id or "").password_created_at = root_access._now()
    account.refresh_from_db()

    # when a manager removes them again
    root_services.root_removal_request(account=account, actor=manager, reason="Second", clients=org)
    drive(account, clients=org)

    # then the password is gone again and the steps are the account's last ones
    assert not root_access.root_user(account.account_id or "").has_password
    last = list(OnboardingStep.objects.filter(account=account).order_by("-position")[:5])
    assert [s.kind for s in reversed(last)] == list(workflow.ROOT_REMOVAL_PATH)
    assert last[-1].detail["root_removal"]["reason"] == "Second"


# --- hand-back --------------------------------------------------------------------------------------


def test_hand_back_enables_root_password_recovery_before_the_account_leaves(
    org: Boto3ClientFactory, manager: User
) -> None:
    # given an active account whose root credentials Switchyard removed
    account = active_account()
    enable_features()
    give_root_everything(account.account_id or "")
    root_services.root_removal_request(account=account, actor=manager, reason="Onboarding", clients=org)
    drive(account, clients=org)
    account.refresh_from_db()
    counting = CountingClients(org)

    # when it is handed back
    handback_start(actor=manager, reason="Contract ended", delete_roles=True, confirmed=ALL_CONFIRMED,
                   account=account, clients=counting)
    drive(account, clients=counting)

    # then the root has a login profile again (recovery possible), created before the account left
    account.refresh_from_db()
    assert account.state == AwsAccount.State.HANDED_BACK
    assert root_access.root_user(account.account_id or "").has_password
    step = OnboardingStep.objects.get(account=account, kind=Kind.ROOT_ENABLE_RECOVERY)
    assert step.status == Status.SUCCEEDED and step.detail["recovery"] == "enabled"
    ops = counting.operations
    assert ops.index("AssumeRoot") < ops.index("CreateLoginProfile") < ops.index("RemoveAccountFromOrganization")


def test_hand_back_precheck_tells_the_manager_to_move_the_root_email(
    org: Boto3ClientFactory, manager_http: HttpClient
) -> None:
    # given an active account
    account = active_account()

    # when the manager opens its hand-back pre-checks
    page = manager_http.get(reverse("onboarding:account_handback", args=[account.pk])).content.decode()

    # then the page says to move the root e-mail to the client, which Switchyard does not change
    assert "move the account&#x27;s root e-mail address" in page or "move the account's root e-mail address" in page
    assert account.root_email in page and "Switchyard does not change it" in page


# --- AssumeRoot's own checks --------------------------------------------------------------------------


def test_assume_root_with_a_task_policy_that_is_not_a_root_task_is_refused(
    org: Boto3ClientFactory
) -> None:
    # given the features on and a member account
    account = active_account()
    enable_features()
    sts = boto3.client("sts", region_name="us-east-1")

    # when AssumeRoot is asked for with AdministratorAccess as the task policy
    with pytest.raises(ClientError) as refused:
        sts.assume_root(TargetPrincipal=account.account_id,
                        TaskPolicyArn={"arn": "arn:aws:iam::aws:policy/AdministratorAccess"})

    # then AWS refuses it; the seam refuses to even send one it does not use
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    with pytest.raises(ValueError, match="not a root task policy"):
        aws.assume_root(clients=org, account_id=account.account_id or "", task="AdministratorAccess")


def test_root_sessions_last_at_most_fifteen_minutes_and_stay_in_their_task(
    org: Boto3ClientFactory
) -> None:
    # given the features on and a member account with a root password
    account = active_account()
    enable_features()
    give_root_everything(account.account_id or "")
    sts = boto3.client("sts", region_name="us-east-1")

    # when a longer session is asked for, an audit session tries to delete the password or list roles
    with pytest.raises(ClientError) as too_long:
        sts.assume_root(TargetPrincipal=account.account_id, TaskPolicyArn={"arn": AUDIT_ARN}, DurationSeconds=3600)
    credentials = aws.assume_root(clients=org, account_id=account.account_id or "", task=aws.AUDIT_TASK)
    with pytest.raises(aws.AwsError) as not_allowed:
        aws.delete_root_login_profile(clients=org, credentials=credentials)

    with pytest.raises(ClientError) as other_iam:
        org.client("iam", credentials).list_roles()

    # then all three are refused and the password is still there
    assert too_long.value.response["Error"]["Code"] == "ValidationError"
    assert not_allowed.value.code == "AccessDenied"
    assert other_iam.value.response["Error"]["Code"] == "AccessDenied"
    assert root_access.root_user(account.account_id or "").has_password


def test_a_failed_removal_says_what_to_do_and_can_be_requested_again(
    org: Boto3ClientFactory, manager: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a removal whose certificate step AWS refuses (an SCP, say)
    account = active_account()
    enable_features()
    give_root_everything(account.account_id or "")

    def refused(**_: Any) -> None:
        raise aws.AwsError("AccessDenied", "explicit deny in a service control policy",
                           "A service control policy (SCP) of the Organization denies it.", False)

    with monkeypatch.context() as patched:
        patched.setattr(aws, "delete_root_signing_certificates", refused)
        root_services.root_removal_request(account=account, actor=manager, reason="First try", clients=org)
        drive(account, clients=org)
    account.refresh_from_db()
    failed = OnboardingStep.objects.get(account=account, status=Status.FAILED)
    assert account.state == AwsAccount.State.FAILED and failed.kind == Kind.ROOT_DELETE_CERTIFICATES
    assert "Root access page" in workflow.next_action_for(failed, account)

    # when the SCP is fixed and the manager requests the removal again
    root_services.root_removal_request(account=account, actor=manager, reason="Second try", clients=org)
    drive(account, clients=org)

    # then every step ran again and nothing is left
    account.refresh_from_db()
    assert account.state == AwsAccount.State.ACTIVE, failures(account)
    assert not RootPosture.objects.get(account=account).has_credentials
