"""The pages that bring accounts in: adopt members (list, search, pick), adopt or invite a list or a
CSV, a batch's progress; errors next to their fields; managers only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as HttpClient
from django.urls import reverse

from onboarding.models import AwsAccount, OnboardingBatch
from portal import aws, sandbox_moto
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles.models import RoleTemplate
from tests.onboarding.conftest import mocked_organization

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    sandbox_moto.install()
    yield from mocked_organization(monkeypatch, settings, managed_policies=False)


def _member(org: Boto3ClientFactory, name: str) -> str:
    return aws.start_account_creation(clients=org, email=f"{name}@legacy.example", account_name=name,
                                      tags={}).account_id or ""


def _template() -> RoleTemplate:
    return RoleTemplate.objects.order_by("pk").first()  # type: ignore[return-value]


def test_the_adopt_page_lists_unmanaged_members_and_adopts_the_picked_ones(
    org: Boto3ClientFactory, manager_http: HttpClient, django_capture_on_commit_callbacks: Any
) -> None:
    # given two members made before Switchyard
    billing, lake = _member(org, "legacy-billing"), _member(org, "data-lake")

    # when a manager searches, then picks one for a new client
    searched = manager_http.get(reverse("onboarding:adopt"), {"q": "billing"}).content.decode()
    with django_capture_on_commit_callbacks():
        response = manager_http.post(reverse("onboarding:adopt"), {
            "members": [billing], "client_name": "Legacy Corp", "templates": [_template().pk],
            "existing_roles": "adopt", "reason": "Made before Switchyard",
        })

    # then the search shows only the match, and the adoption started in a batch of one
    assert billing in searched and lake not in searched and "legacy-billing@legacy.example" in searched
    batch = OnboardingBatch.objects.get()
    assert response.status_code == 302 and response["Location"] == batch.get_absolute_url()
    account = AwsAccount.objects.get(account_id=billing)
    assert (account.origin, account.name, account.client.name, account.existing_roles) == (
        AwsAccount.Origin.ADOPTED, "legacy-billing", "Legacy Corp", "adopt")
    page = manager_http.get(batch.get_absolute_url()).content.decode()
    assert "Legacy Corp / legacy-billing" in page


def test_a_duplicate_account_name_in_a_list_is_refused_next_to_the_list(
    org: Boto3ClientFactory, manager_http: HttpClient
) -> None:
    # given two members, listed with the same name for one client
    first, second = _member(org, "one"), _member(org, "two")

    # when a manager adopts them
    response = manager_http.post(reverse("onboarding:bulk"), {
        "origin": "adopted", "rows": f"{first},Acme Retail,production\n{second},Acme Retail,production",
        "templates": [_template().pk], "existing_roles": "report", "reason": "Bulk",
    })

    # then the page says which line clashes, under the list, and nothing was created
    html = response.content.decode()
    assert response.status_code == 400
    assert "Line 2 (account name)" in html and "links would read the same" in html
    assert 'id="id_rows_errors"' in html
    assert not AwsAccount.objects.exists()


def test_a_csv_upload_invites_each_account(
    org: Boto3ClientFactory, manager_http: HttpClient, django_capture_on_commit_callbacks: Any
) -> None:
    # given a CSV of two outside accounts of one client
    upload = SimpleUploadedFile("accounts.csv", b"account id,client,account name\n"
                                b"111122223333,Globex,production\n111122224444,Globex,staging\n", "text/csv")

    # when a manager uploads it to invite them
    with django_capture_on_commit_callbacks():
        response = manager_http.post(reverse("onboarding:bulk"), {
            "origin": "invited", "csv_file": upload, "templates": [_template().pk], "reason": "Bulk invite",
        })

    # then each is its own invited account, in one batch
    assert response.status_code == 302
    batch = OnboardingBatch.objects.get()
    assert sorted(batch.accounts.values_list("account_id", "origin")) == [
        ("111122223333", "invited"), ("111122224444", "invited")]


@pytest.mark.parametrize("who", ["engineer", "auditor"])
def test_only_managers_bring_accounts_in(
    who: str, request: pytest.FixtureRequest, signed_in: Callable[[User], HttpClient]
) -> None:
    http = signed_in(request.getfixturevalue(who))
    assert http.get(reverse("onboarding:adopt")).status_code == 403
    assert http.post(reverse("onboarding:bulk"), {"rows": "x"}).status_code == 403


def test_an_unknown_batch_is_not_found(manager_http: HttpClient) -> None:
    assert manager_http.get(reverse("onboarding:batch_detail", kwargs={"batch_id": 999})).status_code == 404


def test_a_manager_sets_the_access_role_an_account_uses(manager_http: HttpClient) -> None:
    from onboarding.models import Client
    from portal.audit.models import AuditEvent

    # given an invited account waiting for its access role
    client = Client.objects.create(name="Acme Retail", slug="acme")
    account = AwsAccount.objects.create(client=client, name="production", origin=AwsAccount.Origin.INVITED,
                                        account_id="210987654321", reason="x",
                                        state=AwsAccount.State.AWAITING_ACCESS_ROLE)
    url = reverse("onboarding:access_role_change", kwargs={"account_id": account.pk})

    # when the manager names another role, then a name IAM would refuse
    manager_http.post(url, {"access_role_name": "AcmeAccess"})
    refused = manager_http.post(url, {"access_role_name": "not a role"}, follow=True).content.decode()

    # then the first is used from now on (and audited), the second refused with a message
    account.refresh_from_db()
    assert account.access_role == "AcmeAccess"
    assert AuditEvent.objects.filter(action="onboarding.access_role.changed").count() == 1
    assert "An IAM role name has 1–64" in refused


def test_an_access_role_name_iam_would_refuse_is_refused_by_the_page_and_the_model(manager_http: HttpClient) -> None:
    from django.core.exceptions import ValidationError as DjangoValidationError

    from onboarding.models import Client

    # given an invited account waiting for its access role
    client = Client.objects.create(name="Acme Retail", slug="acme")
    account = AwsAccount.objects.create(client=client, name="production", origin=AwsAccount.Origin.INVITED,
                                        account_id="210987654321", reason="x",
                                        state=AwsAccount.State.AWAITING_ACCESS_ROLE)
    url = reverse("onboarding:access_role_change", kwargs={"account_id": account.pk})

    # when the manager names a role with a letter IAM refuses (not ASCII)
    refused = manager_http.post(url, {"access_role_name": "Zugriffsrölle"}, follow=True).content.decode()

    # then the page refuses it and the account keeps its role; the model's own rule agrees
    account.refresh_from_db()
    assert "An IAM role name has 1–64" in refused
    assert account.access_role_name == ""
    account.access_role_name = "Zugriffsrölle"
    with pytest.raises(DjangoValidationError) as raised:
        account.full_clean()
    assert "access_role_name" in raised.value.message_dict
