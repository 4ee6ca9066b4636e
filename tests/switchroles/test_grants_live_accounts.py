"""Grants only on live accounts, once: a grant on a handed-back account (or a client that left) is
refused under its field with no AWS call, existing ones show as ended, and a grant identical to
one in force is refused."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from onboarding.models import AwsAccount, Client
from switchroles import services
from switchroles.models import Grant, Team
from switchroles.selectors import grants_in_force, grants_listed

from .conftest import Estate, reauthenticated, tier


@pytest.fixture
def team(manager: Any) -> Team:
    return services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)


def test_a_grant_on_a_handed_back_account_is_refused_under_the_field_with_no_aws_call(
    estate: Estate, manager: Any, team: Team, signed_in: Any, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given an account that was handed back, and any AWS call failing the test
    acme = estate.client_with_roles("Acme Retail")
    account = acme.accounts.get()
    AwsAccount.objects.filter(pk=account.pk).update(state=AwsAccount.State.HANDED_BACK)

    def no_aws() -> Any:
        raise AssertionError("no AWS call may be made")

    monkeypatch.setattr("switchroles.tasks.default_client_factory", no_aws)
    # when a manager grants on it through the form
    browser = reauthenticated(signed_in(manager), manager)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = browser.post(reverse("switchroles:grant_new"), {
            "team": team.pk, "account": account.pk, "templates": [tier("engineer").pk], "reason": "x",
        })
    # then the form comes back with the message under the account field, nothing is saved, nothing sent
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="id_account_errors"' in html
    assert "grants are only for active accounts" in html.split('id="id_account_errors"', 1)[1][:300]
    assert not Grant.objects.exists()
    assert callbacks == []


def test_a_client_wide_grant_on_a_client_that_left_is_refused(estate: Estate, manager: Any, team: Team) -> None:
    # given a client that left
    acme = estate.client_with_roles("Acme Retail")
    Client.objects.filter(pk=acme.pk).update(state=Client.State.LEFT)
    acme.refresh_from_db()
    # when a client-wide grant is made, then it is refused on the client field
    with pytest.raises(ValidationError) as error:
        services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    assert "client" in error.value.message_dict


def test_grants_on_an_account_handed_back_later_show_as_ended_not_in_force(
    estate: Estate, manager: Any, team: Team, signed_in: Any,
) -> None:
    # given a grant in force on an account
    acme = estate.client_with_roles("Acme Retail")
    account = acme.accounts.get()
    grant = services.grant_create(granted_by=manager, team=team, account=account, templates=[tier("engineer")],
                                  reason="x")
    assert list(grants_in_force()) == [grant]
    # when the account is handed back
    AwsAccount.objects.filter(pk=account.pk).update(state=AwsAccount.State.HANDED_BACK)
    # then the grant is no longer in force, and the list shows it as ended
    assert list(grants_in_force()) == []
    assert list(grants_listed(status="in_force")) == []
    page = signed_in(manager).get(reverse("switchroles:grant_list") + "?status=all").content.decode()
    assert 'data-grant-ended="1"' in page and "Ended: the account is handed back" in page


def test_a_grant_identical_to_one_in_force_is_refused(estate: Estate, manager: Any, team: Team) -> None:
    # given a grant in force
    acme = estate.client_with_roles("Acme Retail")
    first = services.grant_create(granted_by=manager, team=team, client=acme,
                                  templates=[tier("engineer"), tier("oncall")], reason="x")
    # when the same is granted again, then it is refused naming the first; a different set of tiers is fine
    with pytest.raises(ValidationError) as error:
        services.grant_create(granted_by=manager, team=team, client=acme,
                              templates=[tier("oncall"), tier("engineer")], reason="again")
    assert f"Grant #{first.pk}" in error.value.message_dict["templates"][0]
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("administrator")], reason="y")
    assert Grant.objects.count() == 2


def test_a_directory_link_aws_would_refuse_says_so_with_what_to_do(
    estate: Estate, manager: Any, make_person: Any, signed_in: Any
) -> None:
    # given a person granted a role but without an IAM user name, and one whose name IAM refuses
    acme = estate.client_with_roles("Acme Retail")
    nameless = make_person("nia", "Engineer")
    type(nameless).objects.filter(pk=nameless.pk).update(iam_username="")
    mistyped = make_person("jose", "Engineer", iam_username="jösé")
    for person in (nameless, mistyped):
        services.grant_create(granted_by=manager, person=person, client=acme, templates=[tier("engineer")],
                              reason="x")
    # when each opens their directory
    nameless.refresh_from_db()
    first = signed_in(nameless).get(reverse("switchroles:directory")).content.decode()
    second = signed_in(mistyped).get(reverse("switchroles:directory")).content.decode()
    # then the links are marked as refused by AWS, with what to do
    assert 'data-aws-refuses="1"' in first and "no IAM user name" in first and "Ask a manager" in first
    assert 'data-aws-refuses="1"' in second and "IAM refuses your IAM user name" in second


def test_a_person_whose_sync_failed_is_told_on_their_directory(
    estate: Estate, manager: Any, make_person: Any, signed_in: Any, aws: Any
) -> None:
    # given a personal grant to someone whose IAM user does not exist, so the sync fails for them
    from switchroles import enforcement

    ghost = make_person("ghost", "Engineer", iam_username="ghost.user")
    acme = estate.client_with_roles("Acme Retail")
    services.grant_create(granted_by=manager, person=ghost, client=acme, templates=[tier("oncall")], reason="x")
    with enforcement.enforcement_lock():
        enforcement.enforcement_sync(clients=aws)
    # when they open their directory's AWS status, then it says why and what to do
    status = signed_in(ghost).get(reverse("switchroles:directory_aws_status")).content.decode()
    assert 'data-aws-refuses="1"' in status
    assert "could not write your access into AWS" in status and "ghost.user" in status
