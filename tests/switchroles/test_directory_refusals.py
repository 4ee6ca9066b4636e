"""A link the directory shows but AWS would refuse is marked on the link itself, with why and what
to do (issue 13): no IAM user name marks every link, a failing sync marks only the links that sync
was to allow, a healthy person sees no mark; the page costs the same queries either way."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.aws import Boto3ClientFactory
from switchroles import enforcement, services
from switchroles.models import EnforcedPrincipal

from .conftest import Estate, iam_user_create, tier

ROW = re.compile(r'<li class="link-row" data-id="(\d+)">(.*?)</li>', re.S)
MARK = "data-aws-refuses-link"


def rows_of(page: str) -> dict[int, str]:
    """Each link row the server drew (by role id; rows under the filter results are not drawn)."""
    return {int(role_id): body for role_id, body in ROW.findall(page.split('id="directory"', 1)[1]
                                                                    .split('id="link-row-template"', 1)[0])}


def index_of(page: str) -> dict[str, Any]:
    return json.loads(page.split('id="directory-index" type="application/json">')[1].split("</script>")[0])


def sync(clients: Boto3ClientFactory) -> enforcement.SyncReport:
    with enforcement.enforcement_lock():
        return enforcement.enforcement_sync(clients=clients)


def user_policies_refused(aws: Boto3ClientFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS refuses every IAM user policy write (say, a permission taken away from Switchyard)."""
    real_client = aws.client

    def client(service: str, *args: Any, **kwargs: Any) -> Any:
        made = real_client(service, *args, **kwargs)
        if service == "iam":
            def refuse(**_: Any) -> None:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not allowed"}}, "AttachUserPolicy")
            made.attach_user_policy = refuse
        return made

    monkeypatch.setattr(aws, "client", client)


@pytest.mark.django_db
def test_a_person_without_an_iam_user_name_sees_the_mark_on_each_link(
    estate: Estate, manager: Any, make_person: Any, signed_in: Any
) -> None:
    # given a person granted three roles but with no IAM user name
    acme = estate.client_with_roles("Acme Retail")
    nameless = make_person("nia", "Engineer")
    type(nameless).objects.filter(pk=nameless.pk).update(iam_username="")
    nameless.refresh_from_db()
    services.grant_create(granted_by=manager, person=nameless, client=acme,
                          templates=[tier("administrator"), tier("engineer"), tier("oncall")], reason="x")
    # when they open their directory
    page = signed_in(nameless).get(reverse("switchroles:directory")).content.decode()
    # then every link row carries the mark, in words, with what to do; so does every row the filter draws
    rows = rows_of(page)
    assert len(rows) == 3
    for body in rows.values():
        assert MARK in body
        assert "AWS will refuse this link." in body and "no IAM user name" in body and "Ask a manager" in body
    index = index_of(page)
    assert [row[9] for row in index["links"]] == [1, 1, 1]
    assert "no IAM user name" in index["refusals"][0]


@pytest.mark.django_db
def test_a_person_whose_sync_failed_sees_the_mark_on_the_affected_links_only(
    estate: Estate, manager: Any, engineer: Any, signed_in: Any, aws: Boto3ClientFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an engineer whose team is granted Acme's Engineer role, and who holds personal grants on
    # Acme's Engineer role (also the team's) and Globex's On-call role
    iam_user_create(engineer)
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    acme = estate.client_with_roles("Acme Retail")
    globex = estate.client_with_roles("Globex Logistics")
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="x")
    services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("engineer")],
                          reason="x")
    services.grant_create(granted_by=manager, person=engineer, client=globex, templates=[tier("oncall")],
                          reason="x")
    # and AWS refusing the engineer's own IAM user policy, so only that principal's sync fails
    user_policies_refused(aws, monkeypatch)
    sync(aws)
    assert EnforcedPrincipal.objects.get(person=engineer).last_error
    assert not EnforcedPrincipal.objects.get(team=team).last_error
    # when the engineer opens their directory
    page = signed_in(engineer).get(reverse("switchroles:directory")).content.decode()
    # then Globex's On-call link (only the failing sync gives it) is marked with why and what to do,
    # and Acme's Engineer link (the team's working sync gives it too) is not
    acme_engineer = acme.accounts.get().roles.get(template=tier("engineer"))
    globex_oncall = globex.accounts.get().roles.get(template=tier("oncall"))
    rows = rows_of(page)
    assert set(rows) == {acme_engineer.pk, globex_oncall.pk}
    assert MARK in rows[globex_oncall.pk]
    assert "could not write your access into AWS" in rows[globex_oncall.pk]
    assert engineer.iam_username in rows[globex_oncall.pk] and "enforcement page" in rows[globex_oncall.pk]
    assert MARK not in rows[acme_engineer.pk]
    assert "1 of your 2 links is affected" in page
    marks = {row[0]: row[9] for row in index_of(page)["links"]}
    assert marks[acme_engineer.pk] == 0 and marks[globex_oncall.pk] == 1


@pytest.mark.django_db
def test_a_healthy_person_sees_no_mark(
    estate: Estate, manager: Any, engineer: Any, signed_in: Any, aws: Boto3ClientFactory
) -> None:
    # given an engineer with an IAM user whose team's grant synced into AWS
    iam_user_create(engineer)
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer"), tier("oncall")],
                          reason="x")
    assert not sync(aws).failed
    # when they open their directory, then no link is marked and no notice is shown
    page = signed_in(engineer).get(reverse("switchroles:directory")).content.decode()
    assert len(rows_of(page)) == 4
    assert MARK not in page and 'data-aws-refuses="1"' not in page
    assert index_of(page)["refusals"] == []
    assert {row[9] for row in index_of(page)["links"]} == {0}


@pytest.mark.django_db
def test_marking_refused_links_costs_the_same_queries_for_few_and_many_links(
    estate: Estate, manager: Any, make_person: Any, signed_in: Any
) -> None:
    # given two people whose personal syncs fail, one with 3 links and one with 30
    few, many = make_person("few", "Engineer"), make_person("many", "Engineer")
    for person, clients in ((few, 1), (many, 10)):
        for number in range(clients):
            client = estate.client_with_roles(f"{person.username} client {number}")
            services.grant_create(granted_by=manager, person=person, client=client,
                                  templates=[tier("administrator"), tier("engineer"), tier("oncall")], reason="x")
        EnforcedPrincipal.objects.create(principal_type=EnforcedPrincipal.Type.USER, person=person,
                                         principal_name=person.iam_username, policy_name_prefix=person.username,
                                         last_error="AccessDenied: not allowed")
    counts = {}
    for person in (few, many):
        browser = signed_in(person)
        browser.get(reverse("switchroles:directory"))
        with CaptureQueriesContext(connection) as queries:
            page = browser.get(reverse("switchroles:directory")).content.decode()
        counts[person.username] = len(queries)
        # then every link is marked
        assert page.count(f"{MARK}>") == len(rows_of(page)) > 0
    assert counts["few"] == counts["many"]
