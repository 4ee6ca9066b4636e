"""Reading policies back (``allowed_role_arns``): the forms a policy read from IAM can take besides
the one Switchyard writes, and what the drift check is told when it cannot be read.

Written for the mutants the mutation-testing pass found alive (README, "Mutation testing").
"""

from __future__ import annotations

from typing import Any

import pytest

from portal.aws import RoleRef, allowed_role_arns, compile_assume_policies
from portal.aws.limits import MANAGED_POLICY_MAX_CHARS, policy_size
from portal.aws.policy_compiler import MAX_POLICY_DOCUMENTS

ACME_ACCOUNT = "111111111111"
MFA = {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


def statement(resource: Any, accounts: Any = None) -> dict[str, Any]:
    condition: dict[str, Any] = dict(MFA)
    if accounts is not None:
        condition["StringEquals"] = {"aws:ResourceAccount": accounts}
    return {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": resource, "Condition": condition}


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_a_document_without_statements_allows_nothing() -> None:
    # given a policy document with no Statement at all (an emptied hand-edited policy)
    # when it is read back, then it allows no role (and reading does not fail)
    assert allowed_role_arns([{"Version": "2012-10-17"}]) == set()


def test_a_single_statement_written_as_an_object_is_read() -> None:
    # given a document whose Statement is one object, not a list (valid IAM JSON)
    single = {"Version": "2012-10-17",
              "Statement": statement([f"arn:aws:iam::{ACME_ACCOUNT}:role/switchyard/acme/Engineer"])}

    # then the role it allows is read
    assert allowed_role_arns([single]) == {f"arn:aws:iam::{ACME_ACCOUNT}:role/switchyard/acme/Engineer"}


def test_a_resource_and_an_account_written_as_single_strings_are_read() -> None:
    # given IAM's short form: one resource and one account as plain strings, not lists
    short = document(statement("arn:aws:iam::*:role/switchyard/acme/Engineer", accounts=ACME_ACCOUNT))

    # then it allows that role in that account
    assert allowed_role_arns([short], account_clients={ACME_ACCOUNT: "acme"}) == {
        f"arn:aws:iam::{ACME_ACCOUNT}:role/switchyard/acme/Engineer"
    }


def test_a_wildcard_inside_a_client_path_is_reported_not_expanded() -> None:
    # given a hand-edited resource with a wildcard in the client part of the path
    edited = document(statement(["arn:aws:iam::*:role/switchyard/ac*/Engineer"], accounts=[ACME_ACCOUNT]))

    # then reading it says what is wrong instead of guessing which roles it allows
    with pytest.raises(ValueError, match=r"Unexpected wildcard in role path '/switchyard/ac\*/'"):
        allowed_role_arns([edited], account_clients={ACME_ACCOUNT: "acme"})


@pytest.mark.parametrize("account_clients", [None, {"222222222222": "globex"}], ids=["no map", "account unknown"])
def test_the_any_client_path_needs_the_client_of_each_account(account_clients: dict[str, str] | None) -> None:
    # given Switchyard's most compressed form: any client's path, narrowed by account
    compressed = document(statement(["arn:aws:iam::*:role/switchyard/*/Engineer"], accounts=[ACME_ACCOUNT]))

    # when the client of the account is not known, then reading it says which account is missing
    with pytest.raises(ValueError, match=f"Need the client of account {ACME_ACCOUNT} to expand /switchyard/\\*/"):
        allowed_role_arns([compressed], account_clients=account_clients)


def test_a_path_outside_switchyard_is_expanded_literally_whoever_owns_the_account() -> None:
    # given a statement for a role path that is not Switchyard's (/ops/acme/), in an account of Globex
    foreign = document(statement(["arn:aws:iam::*:role/ops/acme/Engineer"], accounts=[ACME_ACCOUNT]))

    # then the client rule of /switchyard/<slug>/ paths does not drop it: it allows that role there
    assert allowed_role_arns([foreign], account_clients={ACME_ACCOUNT: "globex"}) == {
        f"arn:aws:iam::{ACME_ACCOUNT}:role/ops/acme/Engineer"
    }


def test_a_switchyard_path_of_another_client_allows_nothing_in_the_account() -> None:
    # given a shared statement naming Acme's path for an account that belongs to Globex
    shared = document(statement(["arn:aws:iam::*:role/switchyard/acme/Engineer"], accounts=[ACME_ACCOUNT]))

    # then no such role exists there: nothing is allowed
    assert allowed_role_arns([shared], account_clients={ACME_ACCOUNT: "globex"}) == set()


ENGINEER = f"arn:aws:iam::{ACME_ACCOUNT}:role/switchyard/acme/Engineer"


@pytest.mark.parametrize(
    ("edited", "reported"),
    [
        # an extra key (here NotResource) changes what a statement allows
        ({**statement([ENGINEER]), "NotResource": ["*"]}, "Statement not in Switchyard's form"),
        ({**statement([ENGINEER]), "Action": "sts:*"}, "Statement not in Switchyard's form"),
        ({**statement([ENGINEER]), "Condition": {"BoolIfExists": MFA["Bool"]}}, "Statement does not require MFA"),
        # a condition added by hand narrows (or widens) access: reported, never ignored
        ({**statement([ENGINEER], accounts=[ACME_ACCOUNT]),
          "Condition": {**MFA, "StringEquals": {"aws:ResourceAccount": [ACME_ACCOUNT]},
                        "IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}}, "Unexpected condition"),
        ({**statement([ENGINEER]),
          "Condition": {**MFA, "StringEquals": {"aws:ResourceAccount": [ACME_ACCOUNT], "aws:userid": "x"}}},
         "Unexpected condition"),
        (statement([ENGINEER], accounts=[]), "Unexpected aws:ResourceAccount values: \\[\\]"),
        (statement([ENGINEER], accounts=["12345"]), "Unexpected aws:ResourceAccount values: \\['12345'\\]"),
        (statement([]), "Unexpected Resource: \\[\\]"),
        (statement([123]), "Unexpected Resource: \\[123\\]"),
        (statement(["arn:aws:iam::*:role/switchyard/acme/Engineer"]), "Not a role ARN: 'arn:aws:iam::\\*:role/"),
        (statement(["*"], accounts=[ACME_ACCOUNT]), "Not a Switchyard role pattern: '\\*'"),
    ],
    ids=["extra key", "other action", "mfa if exists", "extra condition", "extra string condition",
         "no accounts", "not an account id", "no resource", "resource not text", "wildcard without accounts",
         "not a role pattern"],
)
def test_a_hand_edited_statement_is_reported_with_what_is_wrong(edited: dict[str, Any], reported: str) -> None:
    # given a statement changed by hand in IAM; when it is read back, then the drift check is told why
    # it cannot say what the policy allows (the message is shown on the drift finding)
    with pytest.raises(ValueError, match=reported):
        allowed_role_arns([document(edited)], account_clients={ACME_ACCOUNT: "acme"})


def test_a_statement_with_a_sid_is_read() -> None:
    # given a statement someone labelled with a Sid (which changes nothing it allows)
    labelled = {"Sid": "AcmeEngineers", **statement([ENGINEER])}

    # then it is read like any other
    assert allowed_role_arns([document(labelled)]) == {ENGINEER}


def test_document_ids_name_the_principal_in_iams_characters() -> None:
    granted = [RoleRef(ACME_ACCOUNT, "acme", "/switchyard/acme/", "Engineer")]
    # given principal labels with characters an Id cannot hold, or none at all, or too many
    cases = {
        "--group/Platform Team!--": "switchyard-group-Platform-Team-1",
        "///": "switchyard-principal-1",
        "x" * 80: f"switchyard-{'x' * 64}-1",
        "X-ray team": "switchyard-X-ray-team-1",
    }
    for label, expected in cases.items():
        # when compiled, then each document's Id is the label in [A-Za-z0-9_-], at most 64, numbered
        assert compile_assume_policies(principal_label=label, role_arns=granted)[0]["Id"] == expected


def test_a_client_with_more_accounts_than_one_statement_holds_is_split_and_stays_exact() -> None:
    # given one client whose 600 accounts (about 10,000 characters of account IDs) are all granted
    # Engineer: its one statement cannot fit in an empty 6,144-character policy
    accounts = {f"{400000000000 + n * 13:012d}": "acme" for n in range(600)}
    granted = {RoleRef(account, "acme", "/switchyard/acme/", "Engineer") for account in accounts}

    # when compiled
    documents = compile_assume_policies(principal_label="group/acme-everything", role_arns=granted)

    # then the statement is split over more than one policy, each within IAM's size, and together
    # they allow exactly the granted roles
    assert 1 < len(documents) <= MAX_POLICY_DOCUMENTS
    assert all(policy_size(document) <= MANAGED_POLICY_MAX_CHARS for document in documents)
    assert allowed_role_arns(documents, account_clients=accounts) == {ref.arn for ref in granted}


def test_a_large_estate_with_two_role_sets_keeps_every_statement_while_packing() -> None:
    # given 1,000 accounts of 300 clients, too many for one statement per client and role set: half
    # the accounts have Engineer only, half Engineer and On-call, so two role sets share documents
    accounts = {f"{600000000000 + n * 17:012d}": f"client-{n % 300:03d}" for n in range(1000)}
    granted = {
        RoleRef(account, client, f"/switchyard/{client}/", name)
        for n, (account, client) in enumerate(sorted(accounts.items()))
        for name in (("Engineer",) if n % 2 else ("Engineer", "OnCall"))
    }

    # when compiled (statements of the second role set are merged into documents the first began)
    documents = compile_assume_policies(principal_label="group/platform", role_arns=granted)

    # then no statement was lost or cut: exactly the granted roles are allowed
    assert all(policy_size(document) <= MANAGED_POLICY_MAX_CHARS for document in documents)
    assert allowed_role_arns(documents, account_clients=accounts) == {ref.arn for ref in granted}


def test_one_account_with_more_roles_than_one_statement_holds_is_split_by_role_never_widened() -> None:
    # given one account with 200 custom roles granted: its statement cannot fit in an empty policy
    granted = {RoleRef(ACME_ACCOUNT, "acme", "/switchyard/acme/", f"SwitchyardCustomRole{n:03d}") for n in range(200)}

    # when compiled
    documents = compile_assume_policies(principal_label="user/eli", role_arns=granted)

    # then it is split by role, each part still narrowed to the account (a statement without the
    # account condition would allow those role names in every account): exactly the granted roles
    assert len(documents) > 1
    assert all(policy_size(document) <= MANAGED_POLICY_MAX_CHARS for document in documents)
    assert allowed_role_arns(documents, account_clients={ACME_ACCOUNT: "acme"}) == {ref.arn for ref in granted}
