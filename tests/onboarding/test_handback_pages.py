"""The hand-back pages: pre-checks first, confirmations, the choice about roles and a reason, each
problem next to its field; managers only, after re-authentication; the steps then show on the
account page like onboarding's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils.html import escape

from onboarding import handback
from onboarding.models import AwsAccount, OnboardingStep
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles import services as grants
from switchroles.models import AccountRole, Grant
from tests.onboarding.conftest import MAIN_ACCOUNT_ID, AwsMustNotBeCalled, make_account, mark_reauthenticated, templates
from tests.onboarding.handback_support import ALL_CONFIRMED

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
SignedIn = Callable[[User], HttpClient]


def _member_of(org: Boto3ClientFactory, name: str = "production") -> str:
    """A new account in the moto Organization; its id."""
    organizations = boto3.client("organizations", region_name="us-east-1")
    status = organizations.create_account(Email=f"awsaccounts+acme-{name}@example.com", AccountName=name)
    return str(organizations.describe_create_account_status(
        CreateAccountRequestId=status["CreateAccountStatus"]["Id"])["CreateAccountStatus"]["AccountId"])


def _active_account(account_id: str, *, name: str = "production", **fields: Any) -> AwsAccount:
    """An onboarded account as rows: every step done, its roles active."""
    account = make_account(account_id=account_id, name=name, root_email=f"awsaccounts+acme-{name}@example.com",
                           state=AwsAccount.State.ACTIVE, role_names=("SwitchyardEngineer", "SwitchyardOnCall"),
                           **fields)
    account.steps.update(status=OnboardingStep.Status.SUCCEEDED)
    for role in AccountRole.objects.filter(account=account):
        role.arn = f"arn:aws:iam::{account_id}:role{role.role_path}{role.role_name}"
        role.state = AccountRole.State.ACTIVE
        role.save()
    return account


def _form(**overrides: Any) -> dict[str, Any]:
    return {"confirmations": ALL_CONFIRMED, "roles": "delete", "reason": "The client leaves", **overrides}


def test_the_page_shows_the_pre_checks_before_anything_can_start(
    org: Boto3ClientFactory, manager_http: HttpClient, manager: User,
) -> None:
    # given an active account in the Organization with a grant on it
    account = _active_account(_member_of(org))
    grant = grants.grant_create(granted_by=manager, person=manager, account=account,
                                templates=templates("SwitchyardEngineer"), reason="x")

    # when a manager opens its hand-back page (offered on the account's page)
    assert reverse("onboarding:account_handback", args=[account.pk]) in manager_http.get(
        account.get_absolute_url()).content.decode()
    response = manager_http.get(reverse("onboarding:account_handback", args=[account.pk]))

    # then they see what AWS requires (to confirm), what Switchyard checked, and what will be affected
    page = response.content.decode()
    assert response.status_code == 200
    for _key, text in handback.AWS_REQUIREMENTS:
        assert escape(text) in page
    assert "✓ A member of the Organization, ACTIVE" in page
    assert "✓ Not our management account" in page
    assert reverse("switchroles:grant_detail", args=[grant.pk]) in page
    assert f"arn:aws:iam::{account.account_id}:role/switchyard/acme/SwitchyardOnCall" in page
    assert 'name="roles"' in page and 'name="reason"' in page
    # and nothing has started
    assert not account.steps.filter(kind=Kind.REVOKE_GRANTS).exists()


def test_starting_appends_the_steps_and_the_account_page_shows_them(
    org: Boto3ClientFactory, manager_http: HttpClient, manager: User,
) -> None:
    # given an active account
    account = _active_account(_member_of(org))

    # when a manager confirms everything, chooses to keep the roles and gives a reason
    response = manager_http.post(reverse("onboarding:account_handback", args=[account.pk]),
                                 _form(roles="keep", reason="Moving to their own team"))

    # then the account page opens with the four hand-back steps pending, and polls for their progress
    assert response.status_code == 302 and response["Location"] == account.get_absolute_url()
    account.refresh_from_db()
    assert account.state == AwsAccount.State.HANDING_BACK
    steps = list(account.steps.order_by("position").values_list("kind", "status", "detail"))
    assert [kind for kind, _s, _d in steps[-5:]] == [Kind.REVOKE_GRANTS, Kind.DELETE_ROLES, Kind.ROOT_ENABLE_RECOVERY,
                                                     Kind.LEAVE_ORGANIZATION, Kind.RECORD_HANDBACK]
    assert all(status == "pending" for _k, status, _d in steps[-5:])
    assert steps[-1][2]["handback"] == {"scope": "account", "requested_by": manager.pk,
                                        "reason": "Moving to their own team", "delete_roles": False}
    page = manager_http.get(account.get_absolute_url()).content.decode()
    assert "Hand-back" in page and "Switchyard's roles are kept" in page
    assert reverse("onboarding:account_progress", args=[account.pk]) in page
    event = AuditEvent.objects.get(action="onboarding.handback.requested")
    assert event.actor == manager and event.details["confirmed_with_client"] == sorted(ALL_CONFIRMED)


def test_missing_confirmations_and_reason_are_said_next_to_their_fields_and_nothing_is_sent(
    org: Boto3ClientFactory, manager_http: HttpClient, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an active account, and an AWS that must not be asked anything
    account = _active_account(_member_of(org))
    never = AwsMustNotBeCalled()
    monkeypatch.setattr(handback, "default_client_factory", lambda: never)

    # when the form is sent with one requirement unconfirmed, no choice about roles and no reason
    response = manager_http.post(reverse("onboarding:account_handback", args=[account.pk]),
                                 {"confirmations": ALL_CONFIRMED[:-1], "reason": " "})

    # then each problem is under its field, nothing was written and AWS was not called
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_confirmations_errors"' in page and "Confirm every requirement" in page
    assert 'id="id_roles_errors"' in page
    assert 'id="id_reason_errors"' in page
    assert never.calls == []
    account.refresh_from_db()
    assert account.state == AwsAccount.State.ACTIVE
    assert not account.steps.filter(kind=Kind.REVOKE_GRANTS).exists()


def test_the_management_account_cannot_be_handed_back(org: Boto3ClientFactory, manager_http: HttpClient) -> None:
    # given an account row that is our management account
    account = _active_account(MAIN_ACCOUNT_ID)

    # when a manager looks at its pre-checks, and sends the form anyway
    page = manager_http.get(reverse("onboarding:account_handback", args=[account.pk])).content.decode()
    response = manager_http.post(reverse("onboarding:account_handback", args=[account.pk]), _form())

    # then the pre-checks say why, and nothing starts
    assert "This is our management account: it cannot leave the Organization." in page
    assert response.status_code == 400
    assert "management account" in response.content.decode()
    assert not account.steps.filter(kind=Kind.REVOKE_GRANTS).exists()


def test_an_account_still_being_onboarded_cannot_be_handed_back(
    org: Boto3ClientFactory, manager_http: HttpClient
) -> None:
    # given an account whose onboarding has not finished
    account = make_account(at=Kind.ASSUME_ACCESS_ROLE, account_id=_member_of(org),
                           state=AwsAccount.State.PROVISIONING)

    # when a manager sends the hand-back form
    response = manager_http.post(reverse("onboarding:account_handback", args=[account.pk]), _form())

    # then it is refused with the reason, and nothing starts
    assert response.status_code == 400
    assert "only an active account can be handed back" in response.content.decode()
    assert not account.steps.filter(kind=Kind.REVOKE_GRANTS).exists()


def test_a_client_hand_back_covers_its_active_accounts_and_says_which_are_left_out(
    org: Boto3ClientFactory, manager_http: HttpClient, manager: User,
) -> None:
    # given a client with two active accounts and a cancelled one
    production = _active_account(_member_of(org, "production"), name="production")
    staging = _active_account(_member_of(org, "staging"), name="staging", client=production.client)
    cancelled = make_account(name="sandbox", root_email="awsaccounts+acme-sandbox@example.com",
                             state=AwsAccount.State.CANCELLED, client=production.client)
    client_grant = Grant.objects.create(team=None, person=manager, client=production.client, reason="x",
                                        granted_by=manager, granted_at=production.created_at)
    url = reverse("onboarding:client_handback", args=[production.client_id])

    # when the manager opens the client's hand-back page, then starts it
    page = manager_http.get(url).content.decode()
    response = manager_http.post(url, _form())

    # then both active accounts were checked and started, the cancelled one left out, the grant listed
    assert f'data-account="{production.pk}"' in page and f'data-account="{staging.pk}"' in page
    assert f'data-account="{cancelled.pk}"' not in page and "Cancelled: nothing to hand back." in page
    assert reverse("switchroles:grant_detail", args=[client_grant.pk]) in page
    assert response.status_code == 302
    assert set(AwsAccount.objects.filter(state=AwsAccount.State.HANDING_BACK).values_list("pk", flat=True)) == {
        production.pk, staging.pk}
    production.client.refresh_from_db()
    assert production.client.state == "leaving"


def test_starting_a_hand_back_asks_a_manager_to_confirm_their_password_first(
    org: Boto3ClientFactory, manager: User, signed_in: SignedIn
) -> None:
    # given a manager who signed in a while ago (not re-authenticated)
    account = _active_account(_member_of(org))
    http = signed_in(manager)

    # when they open the hand-back page or send the form
    opened = http.get(reverse("onboarding:account_handback", args=[account.pk]))
    sent = http.post(reverse("onboarding:account_handback", args=[account.pk]), _form())

    # then they are sent to confirm their password, and nothing starts
    assert opened.status_code == sent.status_code == 302
    assert opened["Location"].startswith(reverse("account_reauthenticate"))
    assert not account.steps.filter(kind=Kind.REVOKE_GRANTS).exists()


@pytest.mark.parametrize("name", ["account_handback", "client_handback"])
def test_auditors_and_engineers_cannot_open_or_send_the_hand_back_pages(
    auditor: User, engineer: User, signed_in: SignedIn, name: str
) -> None:
    # given an active account
    account = _active_account("111122223333")
    target = account.pk if name == "account_handback" else account.client_id
    url = reverse(f"onboarding:{name}", args=[target])

    # when an auditor or an engineer (freshly re-authenticated) opens or sends it, then it is refused
    for person in (auditor, engineer):
        http = mark_reauthenticated(signed_in(person), person)
        assert http.get(url).status_code == 403
        assert http.post(url, _form()).status_code == 403
    assert not account.steps.filter(kind=Kind.REVOKE_GRANTS).exists()
