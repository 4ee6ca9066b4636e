"""The onboarding pages: who may see and do what, the form's field errors, and the account page's
live timeline (htmx polling) with plain failures and the raw AWS code beside them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from django.db import connection
from django.test import Client as HttpClient
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from onboarding.models import AwsAccount, Client, OnboardingStep
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles.models import AccountRole, RoleTemplate
from tests.onboarding.conftest import AwsMustNotBeCalled, make_account, mark_reauthenticated, templates

pytestmark = pytest.mark.django_db

Kind = OnboardingStep.Kind
Status = OnboardingStep.Status
SignedIn = Callable[[User], HttpClient]


def _form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "client": "", "client_name": "Acme Retail", "client_slug": "acme", "origin": "created",
        "account_name": "production", "root_email": "awsaccounts+acme@example.com", "account_id": "",
        "templates": [t.pk for t in templates("SwitchyardEngineer", "SwitchyardOnCall")],
        "reason": "New contract",
    }
    data.update(overrides)
    return data


def _failed_account() -> tuple[AwsAccount, OnboardingStep]:
    account = make_account(at=Kind.AWAIT_CREATION, create_request_id="car-0123456789abcdef",
                           state=AwsAccount.State.FAILED)
    step = account.steps.get(kind=Kind.AWAIT_CREATION)
    step.status = Status.FAILED
    step.attempts = 1
    step.last_error_code = "EMAIL_ALREADY_EXISTS"
    step.last_error_raw = "CreateAccount car-0123456789abcdef failed: EMAIL_ALREADY_EXISTS"
    step.last_error_message = "An AWS account already uses this e-mail address. Choose another address."
    step.save()
    return account, step


# --------------------------------------------------------------------------------------------------
# Lists and the form
# --------------------------------------------------------------------------------------------------


def _queries(http: HttpClient, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert http.get(url).status_code == 200
    return len(queries)


def test_client_list_shows_each_client_with_its_account_counts(manager: User, signed_in: SignedIn) -> None:
    make_account(client_slug="acme", state=AwsAccount.State.ACTIVE)
    http = signed_in(manager)
    url = reverse("onboarding:client_list")
    with_one_client = _queries(http, url)
    make_account(client_slug="acme", name="staging", root_email="awsaccounts+acme-staging@example.com",
                 state=AwsAccount.State.FAILED)
    make_account(client_slug="globex", state=AwsAccount.State.CREATING)

    page = http.get(url)

    assert _queries(http, url) == with_one_client  # no query per client

    html = page.content.decode()
    assert page.status_code == 200
    assert "Acme Retail" in html and "Globex Retail" in html
    assert '<span class="status status-failed">1</span>' in html
    assert '<span class="status status-running">1</span>' in html
    assert reverse("onboarding:client_new") in html


def test_auditors_read_clients_and_accounts_without_any_write_button(auditor: User, signed_in: SignedIn) -> None:
    account, _ = _failed_account()
    http = signed_in(auditor)

    pages = [http.get(reverse("onboarding:client_list")), http.get(account.client.get_absolute_url()),
             http.get(account.get_absolute_url())]

    assert [p.status_code for p in pages] == [200, 200, 200]
    html = "".join(p.content.decode() for p in pages)
    assert ">Retry this step<" not in html and "Cancel this onboarding" not in html and "What to do next" not in html
    assert "Onboard a client" not in html and "Add an account" not in html
    assert 'method="post" action="/clients' not in html
    assert http.get(reverse("onboarding:client_new")).status_code == 403


@pytest.mark.parametrize("name", ["onboarding:client_list", "onboarding:client_new"])
def test_engineers_cannot_open_onboarding_pages(engineer: User, signed_in: SignedIn, name: str) -> None:
    assert signed_in(engineer).get(reverse(name)).status_code == 403


def test_the_form_suggests_the_root_email_for_an_existing_client(manager_http: HttpClient) -> None:
    acme = Client.objects.create(name="Acme Retail", slug="acme")

    page = manager_http.get(reverse("onboarding:client_new") + f"?client={acme.pk}")

    html = page.content.decode()
    assert page.status_code == 200
    assert 'value="awsaccounts+acme@example.com"' in html
    assert 'data-mailbox="awsaccounts@example.com"' in html
    assert "js/onboarding.js" in html
    assert f'"{acme.pk}": "acme"' in html.replace("&quot;", '"')
    for template in templates():
        assert f'value="{template.pk}"' in html


def test_submitting_the_form_starts_onboarding_and_opens_the_account(
    org: Boto3ClientFactory, manager: User, manager_http: HttpClient
) -> None:
    response = manager_http.post(reverse("onboarding:client_new"), _form())

    account = AwsAccount.objects.get()
    assert response.status_code == 302 and response["Location"] == account.get_absolute_url()
    assert account.requested_by == manager and account.roles.count() == 2
    assert AuditEvent.objects.get(action="onboarding.requested").actor == manager


def test_submitting_asks_a_manager_to_confirm_their_password_first(
    manager: User, signed_in: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("onboarding.services.default_client_factory", AwsMustNotBeCalled)

    response = signed_in(manager).post(reverse("onboarding:client_new"), _form())

    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert not AwsAccount.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"origin": "invited", "account_id": "12345"}, "account_id", "exactly 12 digits"),
        ({"root_email": "not-an-email"}, "root_email", "valid e-mail"),
        ({"account_name": "x" * 51}, "account_name", "at most 50 characters"),
        ({"client_slug": "Acme!"}, "client_slug", "lower-case"),
        ({"templates": ["999999"]}, "templates", "999999 is not a role template you can choose"),
        ({"templates": []}, "templates", "Choose at least one role template"),
        ({"reason": ""}, "reason", "required"),
    ],
)
def test_bad_input_is_shown_under_its_field_and_nothing_is_written_or_sent(
    manager_http: HttpClient, monkeypatch: pytest.MonkeyPatch, overrides: dict[str, Any], field: str, message: str
) -> None:
    # given a factory that fails if AWS is called
    monkeypatch.setattr("onboarding.services.default_client_factory", AwsMustNotBeCalled)

    # when the form is submitted with one bad value
    response = manager_http.post(reverse("onboarding:client_new"), _form(**overrides))

    # then the form comes back with the message under that field, and nothing exists
    html = response.content.decode()
    assert response.status_code == 400
    errors = html.split(f'id="id_{field}_errors"', 1)
    assert len(errors) == 2, f"no errors under {field}"
    assert message in errors[1].split("</ul>", 1)[0]
    assert not (AwsAccount.objects.exists() or Client.objects.exists() or AuditEvent.objects.exists())


def test_aws_unreachable_is_said_at_the_top_of_the_form(
    manager_http: HttpClient, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from botocore.config import Config

    # given an AWS endpoint nobody answers on
    def unreachable() -> Boto3ClientFactory:
        return Boto3ClientFactory(endpoint_url="http://127.0.0.1:9",
                                  config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1))

    monkeypatch.setattr("onboarding.services.default_client_factory", unreachable)

    response = manager_http.post(reverse("onboarding:client_new"), _form())

    assert response.status_code == 400
    assert "could not check the Organization in AWS, so nothing was sent" in response.content.decode()
    assert not AwsAccount.objects.exists()


# --------------------------------------------------------------------------------------------------
# The account page
# --------------------------------------------------------------------------------------------------


def test_account_page_polls_its_timeline_while_onboarding_runs(manager: User, signed_in: SignedIn) -> None:
    account = make_account(at=Kind.AWAIT_CREATION, state=AwsAccount.State.CREATING, create_request_id="car-1")
    OnboardingStep.objects.filter(account=account, kind=Kind.AWAIT_CREATION).update(
        status=Status.WAITING, attempts=2, detail={"note": "AWS is still creating the account."})
    http = signed_in(manager)
    progress_url = reverse("onboarding:account_progress", kwargs={"account_id": account.pk})

    page = http.get(account.get_absolute_url()).content.decode()
    partial = http.get(progress_url)

    assert f'hx-get="{progress_url}"' in page and 'hx-trigger="every 2s"' in page and 'hx-swap="outerHTML"' in page
    assert 'id="timeline"' in page and "AWS is still creating the account." in page
    assert "attempts: 2" in page
    body = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<div id="onboarding-progress"') and 'hx-trigger="every 2s"' in body
    assert body.count("data-step=") == 6


def test_polling_stops_once_the_account_is_active(manager: User, signed_in: SignedIn) -> None:
    account = make_account(at=Kind.PUBLISH_LINKS, state=AwsAccount.State.ACTIVE, account_id="210987654321")
    OnboardingStep.objects.filter(account=account).update(status=Status.SUCCEEDED)
    AccountRole.objects.filter(account=account).update(
        state=AccountRole.State.ACTIVE, arn="arn:aws:iam::210987654321:role/switchyard/acme/SwitchyardOnCall")

    body = signed_in(manager).get(reverse("onboarding:account_progress", kwargs={"account_id": account.pk}))

    html = body.content.decode()
    assert "hx-trigger" not in html and "hx-get" not in html
    # the published links go through /go/ (the use is recorded), never straight to the console
    role = AccountRole.objects.filter(account=account).first()
    assert role is not None and f'href="{reverse("switchroles:go", args=[role.pk])}"' in html
    assert "signin.aws.amazon.com" not in html


def test_a_failed_step_shows_the_plain_message_the_raw_code_and_a_retry_button(
    manager: User, signed_in: SignedIn
) -> None:
    account, step = _failed_account()

    html = signed_in(manager).get(account.get_absolute_url()).content.decode()

    assert "An AWS account already uses this e-mail address. Choose another address." in html
    assert "<code>EMAIL_ALREADY_EXISTS</code>" in html
    assert "CreateAccount car-0123456789abcdef failed" in html
    assert "What to do next:" in html
    assert reverse("onboarding:step_retry", kwargs={"account_id": account.pk, "step_id": step.pk}) in html
    assert "Cancel this onboarding" in html  # nothing was created: it can still be cancelled


def test_a_manager_retries_a_failed_step_from_the_page(manager: User, signed_in: SignedIn) -> None:
    account, step = _failed_account()

    response = mark_reauthenticated(signed_in(manager), manager).post(
        reverse("onboarding:step_retry", kwargs={"account_id": account.pk, "step_id": step.pk}))

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.state == AwsAccount.State.CREATING
    assert account.steps.get(kind=Kind.CREATE_ACCOUNT).status == Status.PENDING


def test_a_manager_cancels_from_the_page(manager: User, signed_in: SignedIn) -> None:
    account = make_account()

    response = mark_reauthenticated(signed_in(manager), manager).post(
        reverse("onboarding:account_cancel", kwargs={"account_id": account.pk}))

    assert response.status_code == 302
    account.refresh_from_db()
    assert account.state == AwsAccount.State.CANCELLED


def test_an_invited_account_shows_its_access_role_template_and_verify_button(
    manager: User, signed_in: SignedIn
) -> None:
    account = make_account(origin=AwsAccount.Origin.INVITED, at=Kind.AWAIT_ACCESS_ROLE,
                           state=AwsAccount.State.AWAITING_ACCESS_ROLE, handshake_id="h-0123456789abcdef")
    OnboardingStep.objects.filter(account=account, kind=Kind.AWAIT_ACCESS_ROLE).update(status=Status.WAITING)
    http = signed_in(manager)

    html = http.get(account.get_absolute_url()).content.decode()
    download = http.get(reverse("onboarding:access_role_template", kwargs={"account_id": account.pk}))

    assert "Verify access now" in html and "CloudFormation" in html
    assert "switchyard-access-role.yaml" in html
    assert download["Content-Disposition"] == 'attachment; filename="switchyard-access-role.yaml"'
    template = yaml.safe_load(download.content)
    role = template["Resources"]["SwitchyardAccessRole"]["Properties"]
    assert template["Parameters"]["RoleName"]["Default"] == account.access_role == "SwitchyardAccessRole"
    assert role["RoleName"] == {"Ref": "RoleName"}
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert "SwitchyardAccessRole" in html and "OrganizationAccountAccessRole" in html


def test_an_unknown_account_is_not_found(manager: User, signed_in: SignedIn) -> None:
    url = reverse("onboarding:account_detail", kwargs={"account_id": 999999})
    assert signed_in(manager).get(url).status_code == 404


# --------------------------------------------------------------------------------------------------
# Every POST refuses auditors and engineers
# --------------------------------------------------------------------------------------------------


def _posts(account: AwsAccount, step: OnboardingStep, template: RoleTemplate) -> list[str]:
    return [
        reverse("onboarding:client_new"),
        reverse("onboarding:step_retry", kwargs={"account_id": account.pk, "step_id": step.pk}),
        reverse("onboarding:account_cancel", kwargs={"account_id": account.pk}),
        reverse("onboarding:access_verify", kwargs={"account_id": account.pk}),
        reverse("roletemplates:new"),
        reverse("roletemplates:edit", kwargs={"template_id": template.pk}),
    ]


@pytest.mark.parametrize("who", ["auditor", "engineer"])
def test_auditors_and_engineers_get_403_on_every_onboarding_post(
    who: str, request: pytest.FixtureRequest, signed_in: SignedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a failed account and someone who may not change anything
    monkeypatch.setattr("onboarding.services.default_client_factory", AwsMustNotBeCalled)
    person: User = request.getfixturevalue(who)
    account, step = _failed_account()
    template = RoleTemplate.objects.first()
    assert template is not None
    http = mark_reauthenticated(signed_in(person), person)
    events_before = AuditEvent.objects.count()

    # when they post to every onboarding action
    codes = {url: http.post(url, _form()).status_code for url in _posts(account, step, template)}

    # then each answers 403 and nothing changed
    assert set(codes.values()) == {403}, codes
    account.refresh_from_db()
    assert account.state == AwsAccount.State.FAILED
    assert AuditEvent.objects.count() == events_before
    assert AwsAccount.objects.count() == 1
