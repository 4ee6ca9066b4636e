"""The access matrix, now and as of past moments, against a history laid out row by row."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from portal.evidence.matrix import AccessMatrix, MatrixFilters, access_as_of
from switchroles.models import AccountRole
from tests.conftest import MakePerson
from tests.factories import add_member, make_account, make_client, make_grant, make_role, make_team

pytestmark = pytest.mark.django_db


# Fixed once: computed afresh on each call, "day 4" of the fixture and "day 4" of an assertion could
# fall either side of a second boundary (this test failed that way once).
HISTORY_STARTS = timezone.now().replace(microsecond=0) - timedelta(days=30)


def day(n: float) -> datetime:
    """Day ``n`` of a history that ended a while ago."""
    return HISTORY_STARTS + timedelta(days=n)


@pytest.fixture
def history(make_person: MakePerson) -> dict[str, object]:
    """Acme's production account over nine days:

    day 1  the administrator and engineer roles are published
    day 2  eli joins Ops; ada gets a personal administrator grant on the account
    day 3  Ops is granted engineer + on-call on the whole client
    day 4  bo joins Ops
    day 5  the on-call role is published
    day 6  ada's grant is revoked
    day 7  bo leaves Ops; at 7.2 bo gets a personal engineer grant on the client
    day 8  the engineer role is removed
    Beta (another client) has its own grant to Ops throughout, which must never leak into Acme.
    """
    boss = make_person("boss", "Manager")
    eli, ada, bo = make_person("eli", "Engineer"), make_person("ada2", "Engineer"), make_person("bo", "Engineer")
    acme = make_client("Acme")
    prod = make_account(acme, "Production")
    admin = make_role(prod, "administrator", activated_at=day(1))
    engineer = make_role(prod, "engineer", activated_at=day(1), removed_at=day(8))
    oncall = make_role(prod, "oncall", activated_at=day(5))
    ops = make_team("Ops")
    add_member(ops, eli, at=day(2))
    add_member(ops, bo, at=day(4), until=day(7))
    team_grant = make_grant(by=boss, team=ops, client=acme, tiers=("engineer", "oncall"), at=day(3))
    personal = make_grant(by=boss, person=ada, account=prod, tiers=("administrator",), at=day(2), revoked_at=day(6))
    bo_grant = make_grant(by=boss, person=bo, client=acme, tiers=("engineer",), at=day(7.2))
    beta = make_client("Beta")
    beta_role = make_role(make_account(beta), "engineer", activated_at=day(0))
    beta_grant = make_grant(by=boss, team=ops, client=beta, tiers=("engineer",), at=day(0))
    return {
        "eli": eli, "ada": ada, "bo": bo, "acme": acme, "admin": admin, "engineer": engineer, "oncall": oncall,
        "team_grant": team_grant, "personal": personal, "bo_grant": bo_grant, "beta_role": beta_role,
        "beta_grant": beta_grant, "ops": ops,
    }


def triples(*rows: tuple[object, object, object]) -> set[tuple[int, int, int]]:
    return {(person.pk, role.pk, grant.pk) for person, role, grant in rows}  # type: ignore[attr-defined]


def test_as_of_three_past_moments_matches_the_access_that_existed(history: dict) -> None:
    h = history
    # Day 3.5: eli through Ops on the engineer role (on-call not published yet), ada personally.
    assert access_as_of(at=day(3.5), client=h["acme"].pk) == triples(
        (h["eli"], h["engineer"], h["team_grant"]),
        (h["ada"], h["admin"], h["personal"]),
    )
    # Day 5.5: bo has joined and on-call is published; ada's grant still stands.
    assert access_as_of(at=day(5.5), client=h["acme"].pk) == triples(
        (h["eli"], h["engineer"], h["team_grant"]), (h["eli"], h["oncall"], h["team_grant"]),
        (h["bo"], h["engineer"], h["team_grant"]), (h["bo"], h["oncall"], h["team_grant"]),
        (h["ada"], h["admin"], h["personal"]),
    )
    # Day 7.5: ada revoked, bo left Ops but holds a personal engineer grant.
    assert access_as_of(at=day(7.5), client=h["acme"].pk) == triples(
        (h["eli"], h["engineer"], h["team_grant"]), (h["eli"], h["oncall"], h["team_grant"]),
        (h["bo"], h["engineer"], h["bo_grant"]),
    )


def test_as_of_before_anything_was_granted_is_empty(history: dict) -> None:
    assert access_as_of(at=day(0.5), client=history["acme"].pk) == set()


def test_now_follows_the_published_roles_and_open_grants(history: dict) -> None:
    h = history
    # The engineer role was removed on day 8 (state "removed"), so only on-call remains for Acme.
    assert {(r.person_id, r.link_id, r.grant_id) for r in AccessMatrix(MatrixFilters())} == triples(
        (h["eli"], h["oncall"], h["team_grant"]), (h["eli"], h["beta_role"], h["beta_grant"]),
    )


def test_since_is_the_latest_of_grant_membership_and_role_activation(history: dict) -> None:
    h = history
    rows = {(r.person_id, r.link_id): r for r in AccessMatrix(MatrixFilters(as_of=day(5.5), client=h["acme"].pk))}

    bo_engineer = rows[(h["bo"].pk, h["engineer"].pk)]
    assert bo_engineer.since == day(4)  # bo joined after the grant and the role
    assert bo_engineer.member_since == day(4)
    assert rows[(h["eli"].pk, h["oncall"].pk)].since == day(5)  # the role came last
    assert rows[(h["eli"].pk, h["engineer"].pk)].since == day(3)  # the grant came last
    assert rows[(h["ada"].pk, h["admin"].pk)].via == "personal grant"
    assert rows[(h["eli"].pk, h["engineer"].pk)].via == "team Ops"
    assert rows[(h["eli"].pk, h["engineer"].pk)].granted_by == "boss"


@pytest.mark.parametrize(
    ("filter_name", "expected"),
    [
        ("person", {("bo", "engineer"), ("bo", "oncall"), ("bo", "beta")}),
        ("tier", {("eli", "oncall"), ("bo", "oncall")}),
        ("team", {("eli", "engineer"), ("eli", "oncall"), ("bo", "engineer"), ("bo", "oncall"), ("eli", "beta"),
                  ("bo", "beta")}),
        ("account", {("eli", "engineer"), ("eli", "oncall"), ("bo", "engineer"), ("bo", "oncall"), ("ada", "admin")}),
    ],
)
def test_each_filter_narrows_the_matrix(history: dict, filter_name: str, expected: set[tuple[str, str]]) -> None:
    h = history
    value = {"person": h["bo"].pk, "tier": "oncall", "team": h["ops"].pk,
             "account": h["personal"].account_id}[filter_name]
    names = {h["engineer"].pk: "engineer", h["oncall"].pk: "oncall", h["admin"].pk: "admin", h["beta_role"].pk: "beta"}
    people = {h["eli"].pk: "eli", h["bo"].pk: "bo", h["ada"].pk: "ada"}

    rows = AccessMatrix(MatrixFilters(as_of=day(5.5), **{filter_name: value}))

    assert {(people[r.person_id], names[r.link_id]) for r in rows} == expected


def test_expired_grants_and_unpublished_roles_give_nothing(make_person: MakePerson) -> None:
    boss, eli = make_person("boss", "Manager"), make_person("eli", "Engineer")
    acme = make_client("Acme")
    account = make_account(acme)
    pending = make_role(account, "engineer")
    AccountRole.objects.filter(pk=pending.pk).update(state=AccountRole.State.PENDING)
    make_role(account, "oncall")
    make_grant(by=boss, person=eli, client=acme, tiers=("engineer",))
    make_grant(by=boss, person=eli, client=acme, tiers=("oncall",), at=day(1), expires_at=day(2))

    assert list(AccessMatrix(MatrixFilters())) == []


def test_sorting_and_pages(history: dict) -> None:
    h = history
    by_person_desc = AccessMatrix(MatrixFilters(as_of=day(5.5), sort="person", descending=True))
    people = [row.person for row in by_person_desc[0:10]]
    assert people == sorted(people, reverse=True)
    assert by_person_desc.count() == 7  # five on Acme, eli and bo through Ops on Beta
    assert len(by_person_desc[2:4]) == 2
    by_since = [row.since for row in AccessMatrix(MatrixFilters(as_of=day(5.5), sort="since"))]
    assert by_since == sorted(by_since)
    assert h  # the fixture built the history


def test_one_page_is_a_fixed_number_of_queries(history: dict) -> None:
    def queries_for(filters: MatrixFilters) -> int:
        matrix = AccessMatrix(filters)
        with CaptureQueriesContext(connection) as queries:
            matrix.count()
            matrix[0:50]
        return len(queries)

    one_row = queries_for(MatrixFilters(as_of=day(3.5), person=history["ada"].pk))
    every_row = queries_for(MatrixFilters(as_of=day(5.5)))

    assert one_row == every_row <= 6  # count and page (and on PostgreSQL, planner settings around each)


def test_the_planner_settings_are_put_back_after_the_matrix(history: dict) -> None:
    def settings_now() -> list[str]:
        if connection.vendor != "postgresql":  # the settings exist only there
            return []
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('enable_nestloop'), current_setting('cursor_tuple_fraction')")
            return list(cursor.fetchone())

    before = settings_now()
    matrix = AccessMatrix(MatrixFilters(client=history["acme"].pk))
    matrix.count()
    list(matrix)
    matrix[0:2]

    assert settings_now() == before
