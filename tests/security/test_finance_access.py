"""The finance column of the URL × persona matrix (tests/security/test_access_matrix.py has the
seven other visitors): finance reads every billing URL, sets markups, and nothing outside billing
beyond what every signed-in person has."""

from __future__ import annotations

import pytest

from tests.conftest import MakePerson
from tests.security.support import (
    OK,
    AwsUnreachable,
    World,
    all_routes,
    changed_tables,
    classify,
    path_of,
    row_counts,
    signed_in_client,
)
from tests.security.test_access_matrix import MATRIX

pytestmark = pytest.mark.django_db

FINANCE_BILLING = {
    "billing:index": OK, "billing:month": OK, "billing:clients_csv": OK, "billing:accounts_csv": OK,
    "billing:invoice": OK, "billing:invoice_csv": OK, "billing:markup": OK, "billing:refetch": 405,
}
# Outside billing, finance is a signed-in person without any other capability: exactly what the
# engineer of another team (no grants on these rows) gets.


def test_finance_answers_every_billing_url_as_the_matrix_says(
    world: World, make_person: MakePerson, aws_unreachable: AwsUnreachable
) -> None:
    # Given the security world and a finance person
    browser = signed_in_client(make_person("fiona", "Finance"))
    browser.raise_request_exception = False
    routes = [route for route in all_routes() if route.name.startswith("billing:")]
    assert {route.name for route in routes} == set(FINANCE_BILLING) and set(FINANCE_BILLING) <= set(MATRIX)

    # When finance GETs each of them, Then the answer is finance's cell, and nothing changes
    for route in routes:
        before = row_counts()
        assert classify(browser.get(path_of(route, world))) == FINANCE_BILLING[route.name], route.name
        assert not changed_tables(before, row_counts()), route.name
    assert not aws_unreachable.calls


def test_finance_gets_nothing_that_is_not_billing_beyond_a_signed_in_person(
    world: World, make_person: MakePerson, aws_unreachable: AwsUnreachable
) -> None:
    # Given the security world and a finance person
    browser = signed_in_client(make_person("fiona", "Finance"))
    browser.raise_request_exception = False
    eng_b = 3  # the column of the engineer of another team

    # When finance asks for every URL outside billing and the admin
    failures = []
    for route in all_routes():
        if route.name.startswith("billing:") or route.is_admin:
            continue
        got = classify(browser.get(path_of(route, world)))
        expected = MATRIX[route.name][eng_b]

        # Then it is what a signed-in person without capabilities gets
        if not (got in expected if isinstance(expected, frozenset) else got == expected):
            failures.append(f"{route.name}: expected {expected}, got {got}")
    assert not failures, "\n".join(failures)
