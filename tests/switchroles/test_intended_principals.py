"""What the enforcement sync means to write, read from the grants alone (no AWS): which roles each
team and person is allowed, who is in each group, and what is wrong with a principal. Written for
the mutants of ``intended_principals`` that survived the moto tests (README, "Mutation testing")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from portal.people.models import User
from switchroles.enforcement import IntendedPrincipal, intended_principals, team_policy_prefix, user_policy_prefix
from switchroles.models import AccountRole, EnforcedPrincipal, Team
from tests.factories import (
    AccountRoleFactory,
    GrantFactory,
    TeamFactory,
    TeamMembershipFactory,
    make_account,
    make_client,
    seeded_template,
)

pytestmark = pytest.mark.django_db


def arn(role: AccountRole) -> str:
    return f"arn:aws:iam::{role.account.account_id}:role{role.role_path}{role.role_name}"


def of_team(team: Team, at: Any = None) -> IntendedPrincipal:
    return next(p for p in intended_principals(at=at) if p.team_id == team.pk)


def of_person(person: User) -> IntendedPrincipal:
    return next(p for p in intended_principals() if p.person_id == person.pk)


def arns(principal: IntendedPrincipal) -> set[str]:
    return {ref.arn for ref in principal.role_refs}


def without_iam_name(person: User) -> User:
    User.objects.filter(pk=person.pk).update(iam_username="")
    person.refresh_from_db()
    return person


def test_only_active_roles_are_allowed_whatever_the_grant_covers() -> None:
    client = make_client("Acme Retail")
    account = make_account(client)
    active = AccountRoleFactory(account=account, tier="engineer")
    for state in ("pending", "provisioned", "conflict", "failed", "removed"):
        AccountRoleFactory(account=make_account(client, name=f"Account {state}"), tier="engineer", state=state)
    grant = GrantFactory(client=client, tiers=("engineer",))

    assert arns(of_team(grant.team)) == {arn(active)}


def test_a_client_wide_grant_of_a_tier_the_client_has_no_role_of_allows_nothing_and_breaks_nothing() -> None:
    client = make_client("Globex Logistics")
    engineer_role = AccountRoleFactory(account=make_account(client), tier="engineer")
    team = TeamFactory()
    GrantFactory(team=team, client=client, tiers=("administrator",))  # no Administrator role there yet
    GrantFactory(team=team, client=client, tiers=("engineer",))

    assert arns(of_team(team)) == {arn(engineer_role)}


def test_each_team_writes_under_its_own_policy_names_and_each_person_under_theirs(make_person: Any) -> None:
    first, second = TeamFactory(), TeamFactory()
    sam = make_person("sam", "Engineer")
    GrantFactory(team=None, person=sam, client=make_client("Initech"), tiers=("oncall",))

    assert of_team(first).policy_name_prefix == team_policy_prefix(first.pk)
    assert of_team(second).policy_name_prefix == team_policy_prefix(second.pk) != team_policy_prefix(first.pk)
    assert of_person(sam).policy_name_prefix == user_policy_prefix(sam.pk)
    assert of_person(sam).principal_type == EnforcedPrincipal.Type.USER


def test_group_members_are_the_members_at_the_moment_asked_about(make_person: Any) -> None:
    team = TeamFactory()
    now = timezone.now()
    leaver = make_person("lee", "Engineer")
    TeamMembershipFactory(team=team, person=leaver, added_at=now - timedelta(days=10),
                          removed_at=now - timedelta(days=1))
    TeamMembershipFactory(team=team, person=make_person("kim", "Engineer"), added_at=now - timedelta(days=10))

    assert of_team(team).members == ("kim",)
    assert of_team(team, at=now - timedelta(days=2)).members == ("kim", "lee")


def test_members_without_an_iam_user_name_are_left_out_and_the_others_stay(make_person: Any) -> None:
    team = TeamFactory()
    # the nameless members come first in the table and in between: none may end the reading
    for username in ("a-nameless", "b-named", "c-nameless", "d-named"):
        person = make_person(username, "Engineer")
        if "nameless" in username:
            without_iam_name(person)
        TeamMembershipFactory(team=team, person=person)

    principal = of_team(team)

    assert principal.members == ("b-named", "d-named")
    assert principal.problem == ""


def test_a_person_whose_iam_user_name_iam_refuses_gets_nothing_written_and_the_reason(make_person: Any) -> None:
    jose = make_person("jose", "Engineer")
    User.objects.filter(pk=jose.pk).update(iam_username="jösé")
    role = AccountRoleFactory(account=make_account(make_client("Umbrella")), tier="engineer")
    GrantFactory(team=None, person=jose, client=role.account.client, tiers=("engineer",))
    zoe = make_person("zoe", "Engineer")  # read after him
    GrantFactory(team=None, person=zoe, client=role.account.client, tiers=("engineer",))

    principal = of_person(jose)

    assert principal.principal_type == EnforcedPrincipal.Type.USER
    assert principal.principal_name == ""  # no user of that name can exist in IAM
    assert principal.policy_name_prefix == user_policy_prefix(jose.pk)
    assert arns(principal) == {arn(role)}  # what the grant means, shown with the problem
    assert principal.problem.startswith("IAM refuses the user name 'jösé': only ASCII letters")
    assert (of_person(zoe).principal_name, arns(of_person(zoe)), of_person(zoe).problem) == ("zoe", {arn(role)}, "")


def test_a_person_granted_links_without_an_iam_user_name_is_told_why_nothing_is_written(make_person: Any) -> None:
    pat = without_iam_name(make_person("pat", "Engineer"))
    role = AccountRoleFactory(account=make_account(make_client("Hooli")), tier="engineer")
    GrantFactory(team=None, person=pat, client=role.account.client, tiers=("engineer",))

    principal = of_person(pat)

    assert principal.principal_name == ""
    assert principal.problem == "The person has no IAM user name on their profile."


def test_a_template_with_roles_in_one_client_only_reaches_that_clients_roles() -> None:
    acme, globex = make_client("Acme"), make_client("Globex")
    acme_role = AccountRoleFactory(account=make_account(acme), tier="oncall")
    AccountRoleFactory(account=make_account(globex), tier="oncall")
    grant = GrantFactory(client=acme, templates=[seeded_template("oncall")])

    assert arns(of_team(grant.team)) == {arn(acme_role)}
