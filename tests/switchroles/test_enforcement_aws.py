"""Main-account enforcement: compiling grants into IAM policies and applying them (moto)."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from portal.aws import (
    MAX_POLICY_DOCUMENTS,
    Boto3ClientFactory,
    PolicyTooLarge,
    PrincipalNotFound,
    RoleRef,
    allowed_role_arns,
    apply_group_policies,
    apply_user_policies,
    compile_assume_policies,
    read_group_policies,
    read_user_policies,
    remove_principal_policies,
)
from switchroles.policies import MANAGED_POLICY_MAX_CHARS, policy_size, validate_custom_policy

TIERS = ("Administrator", "Engineer", "ReadOnly")
LIST_BUCKETS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
}


# --- helpers -----------------------------------------------------------------------------------


def estate(n_accounts: int, n_clients: int, slug: str = "client-{:03d}") -> dict[str, str]:
    """account ID -> client slug, accounts spread round-robin over the clients."""
    return {f"{100000000000 + i * 7919:012d}": slug.format(i % n_clients) for i in range(n_accounts)}


def grant(accounts: Mapping[str, str], tiers: Iterable[str]) -> set[RoleRef]:
    return {
        RoleRef(account, client, f"/switchyard/{client}/", tier)
        for account, client in accounts.items()
        for tier in tiers
    }


def arns(refs: Iterable[RoleRef]) -> set[str]:
    return {ref.arn for ref in refs}


@cache
def _pattern(resource: str) -> re.Pattern[str]:
    # IAM ARN matching: * is any run of characters (including "/"), ? is one character.
    return re.compile(re.escape(resource).replace(r"\*", ".*").replace(r"\?", "."))


def iam_allows(documents: list[dict[str, Any]], arn: str, *, mfa: bool = True) -> bool:
    """A small, independent model of IAM evaluating these Allow statements for sts:AssumeRole."""
    context = {
        "aws:MultiFactorAuthPresent": "true" if mfa else "false",
        "aws:ResourceAccount": arn.split(":")[4],
    }
    for document in documents:
        statements = document["Statement"]
        for statement in [statements] if isinstance(statements, dict) else statements:
            assert statement["Effect"] == "Allow"
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if not any(_pattern(action.lower()).fullmatch("sts:assumerole") for action in actions):
                continue
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            if not any(_pattern(resource).fullmatch(arn) for resource in resources):
                continue
            matched = True
            for operator, block in statement.get("Condition", {}).items():
                assert operator in ("Bool", "StringEquals")
                for key, values in block.items():
                    matched &= context[key] in (values if isinstance(values, list) else [values])
            if matched:
                return True
    return False


def switchyard_roles(accounts: Mapping[str, str], tiers: Iterable[str] = TIERS) -> set[str]:
    """Every role Switchyard would create for these accounts: each tier under the owner's path."""
    return {f"arn:aws:iam::{a}:role/switchyard/{c}/{t}" for a, c in accounts.items() for t in tiers}


def assert_within_limits(documents: list[dict[str, Any]]) -> None:
    assert 1 <= len(documents) <= MAX_POLICY_DOCUMENTS
    for document in documents:
        assert policy_size(document) <= MANAGED_POLICY_MAX_CHARS
        assert validate_custom_policy(json.dumps(document)).errors == []
        for statement in document["Statement"]:
            assert statement["Condition"]["Bool"] == {"aws:MultiFactorAuthPresent": "true"}
            assert statement["Action"] == "sts:AssumeRole"


# --- compile -----------------------------------------------------------------------------------


def test_1000_accounts_across_300_clients_with_one_tier_fit_and_allow_exactly_the_grants() -> None:
    # given a team granted Engineer in 1,000 accounts of 300 clients
    accounts = estate(1000, 300)
    granted = grant(accounts, ["Engineer"])

    # when its policies are compiled
    documents = compile_assume_policies(principal_label="group/platform", role_arns=granted)

    # then they fit IAM's limits and allow exactly the granted roles
    assert_within_limits(documents)
    assert allowed_role_arns(documents, account_clients=accounts) == arns(granted)
    # ... with each client's role path spelled out (no path wildcard was needed)
    assert "/switchyard/*/" not in json.dumps(documents)
    # ... and IAM itself would allow exactly those among every role Switchyard creates in them
    universe = switchyard_roles(accounts)
    assert {arn for arn in universe if iam_allows(documents, arn)} == arns(granted)


def test_1000_accounts_across_300_clients_with_two_tiers_fit_and_allow_exactly_the_grants() -> None:
    accounts = estate(1000, 300)
    granted = grant(accounts, ["Administrator", "Engineer"])

    documents = compile_assume_policies(principal_label="group/platform", role_arns=granted)

    assert_within_limits(documents)
    assert allowed_role_arns(documents, account_clients=accounts) == arns(granted)
    universe = switchyard_roles(accounts)
    assert {arn for arn in universe if iam_allows(documents, arn)} == arns(granted)


def test_long_client_slugs_fall_back_to_the_path_wildcard_and_stay_exact() -> None:
    # given 2 tiers over 1,000 accounts whose clients have long slugs
    accounts = estate(1000, 300, slug="acme-industrial-holdings-{:03d}")
    granted = grant(accounts, ["Administrator", "Engineer"])

    documents = compile_assume_policies(principal_label="group/platform", role_arns=granted)

    assert_within_limits(documents)
    assert "arn:aws:iam::*:role/switchyard/*/Engineer" in json.dumps(documents)
    assert allowed_role_arns(documents, account_clients=accounts) == arns(granted)
    universe = switchyard_roles(accounts)
    assert {arn for arn in universe if iam_allows(documents, arn)} == arns(granted)


def test_a_small_grant_is_exact_at_the_arn_level() -> None:
    # given Engineer in two of acme's accounts and ReadOnly in one of globex's
    accounts = {"111111111111": "acme", "222222222222": "acme", "333333333333": "globex"}
    granted = grant({a: c for a, c in accounts.items() if c == "acme"}, ["Engineer"]) | {
        RoleRef("333333333333", "globex", "/switchyard/globex/", "ReadOnly")
    }

    documents = compile_assume_policies(principal_label="user/eli", role_arns=granted)

    # then one document with a statement per client; expanding it needs no knowledge of clients
    assert len(documents) == 1
    assert documents[0]["Statement"] == [
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": ["arn:aws:iam::*:role/switchyard/acme/Engineer"],
            "Condition": {
                "Bool": {"aws:MultiFactorAuthPresent": "true"},
                "StringEquals": {"aws:ResourceAccount": ["111111111111", "222222222222"]},
            },
        },
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": ["arn:aws:iam::*:role/switchyard/globex/ReadOnly"],
            "Condition": {
                "Bool": {"aws:MultiFactorAuthPresent": "true"},
                "StringEquals": {"aws:ResourceAccount": ["333333333333"]},
            },
        },
    ]
    assert allowed_role_arns(documents) == arns(granted)


def test_accounts_with_different_role_sets_get_separate_statements() -> None:
    # given Administrator in one acme account and Engineer in both
    granted = grant({"111111111111": "acme", "222222222222": "acme"}, ["Engineer"]) | {
        RoleRef("111111111111", "acme", "/switchyard/acme/", "Administrator")
    }

    documents = compile_assume_policies(principal_label="team", role_arns=granted)

    # then Administrator is not allowed in the second account
    assert allowed_role_arns(documents) == arns(granted)
    assert not iam_allows(documents, "arn:aws:iam::222222222222:role/switchyard/acme/Administrator")


def test_statements_require_mfa() -> None:
    documents = compile_assume_policies(
        principal_label="team", role_arns=grant({"111111111111": "acme"}, ["Engineer"])
    )

    assert iam_allows(documents, "arn:aws:iam::111111111111:role/switchyard/acme/Engineer")
    assert not iam_allows(documents, "arn:aws:iam::111111111111:role/switchyard/acme/Engineer", mfa=False)


def test_roles_outside_the_client_path_are_listed_as_full_arns() -> None:
    # given a role at a custom path, and an account (wrongly) claimed by two clients
    granted = {
        RoleRef("111111111111", "acme", "/custom/", "Auditor"),
        RoleRef("222222222222", "acme", "/switchyard/acme/", "Engineer"),
        RoleRef("222222222222", "globex", "/switchyard/globex/", "Engineer"),
    }

    documents = compile_assume_policies(principal_label="team", role_arns=granted)

    statement = documents[0]["Statement"][0]
    assert statement["Resource"] == sorted(arns(granted))
    assert "StringEquals" not in statement["Condition"]
    assert allowed_role_arns(documents) == arns(granted)


def test_compiling_is_deterministic_whatever_the_input_order() -> None:
    granted = list(grant(estate(200, 60), ["Engineer", "ReadOnly"]))
    shuffled = granted[:]
    random.Random(7).shuffle(shuffled)

    first = compile_assume_policies(principal_label="team", role_arns=granted)
    second = compile_assume_policies(principal_label="team", role_arns=shuffled + granted[:10])

    assert first == second


def test_nothing_granted_compiles_to_no_documents() -> None:
    assert compile_assume_policies(principal_label="team", role_arns=[]) == []


def test_grants_that_cannot_fit_raise_policy_too_large() -> None:
    granted = grant(estate(5000, 300), ["Engineer"])

    with pytest.raises(PolicyTooLarge, match=r"do not fit in 10 IAM policies of 6,144 characters"):
        compile_assume_policies(principal_label="group/everyone", role_arns=granted)


@pytest.mark.parametrize(
    "ref",
    [
        RoleRef("12345", "acme", "/switchyard/acme/", "Engineer"),
        RoleRef("111111111111", "acme", "/switchyard/acme/", "Engineer*"),
        RoleRef("111111111111", "acme", "switchyard/acme/", "Engineer"),
        RoleRef("111111111111", "ac/me", "/switchyard/acme/", "Engineer"),
    ],
)
def test_invalid_role_refs_are_refused(ref: RoleRef) -> None:
    with pytest.raises(ValueError):
        compile_assume_policies(principal_label="team", role_arns=[ref])


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Deny", "Action": "sts:AssumeRole", "Resource": "*", "Condition": {}},
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": ["arn:aws:iam::111111111111:role/switchyard/acme/Engineer"],
            "Condition": {"BoolIfExists": {"aws:MultiFactorAuthPresent": "true"}},
        },
        {
            "Effect": "Allow",
            "Action": "sts:*",
            "Resource": ["arn:aws:iam::111111111111:role/switchyard/acme/Engineer"],
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        },
        {
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": ["arn:aws:iam::*:role/switchyard/acme/Engineer"],
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        },
    ],
)
def test_hand_edited_statements_are_not_expanded_but_reported(statement: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        allowed_role_arns([{"Version": "2012-10-17", "Statement": [statement]}])


@st.composite
def grants_strategy(draw: st.DrawFn) -> tuple[dict[str, str], set[RoleRef]]:
    n_clients = draw(st.integers(1, 8))
    accounts: dict[str, str] = {}
    for client in range(n_clients):
        for _ in range(draw(st.integers(1, 4))):
            accounts[f"{len(accounts) + 100000000000:012d}"] = f"c{client}"
    granted = set()
    for account, client in accounts.items():
        for tier in draw(st.sets(st.sampled_from(TIERS))):
            granted.add(RoleRef(account, client, f"/switchyard/{client}/", tier))
    return accounts, granted


@settings(max_examples=150, deadline=None)
@given(grants_strategy())
def test_any_grant_set_allows_exactly_the_granted_switchyard_roles(
    case: tuple[dict[str, str], set[RoleRef]],
) -> None:
    accounts, granted = case

    documents = compile_assume_policies(principal_label="team", role_arns=granted)

    if not granted:
        assert documents == []
        return
    assert_within_limits(documents)
    assert allowed_role_arns(documents, account_clients=accounts) == arns(granted)
    assert {arn for arn in switchyard_roles(accounts) if iam_allows(documents, arn)} == arns(granted)


# --- apply / read / remove (moto) --------------------------------------------------------------


@pytest.fixture
def clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[Boto3ClientFactory]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield Boto3ClientFactory(region_name="us-east-1")


def iam() -> Any:
    return boto3.client("iam", region_name="us-east-1")


def attached_names(group_name: str) -> list[str]:
    policies = iam().list_attached_group_policies(GroupName=group_name)["AttachedPolicies"]
    return sorted(policy["PolicyName"] for policy in policies)


def policy_exists(arn: str) -> bool:
    try:
        iam().get_policy(PolicyArn=arn)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchEntity"
        return False
    return True


def test_group_policies_are_applied_read_back_revoked_and_removed(clients: Boto3ClientFactory) -> None:
    # given a team granted Engineer in 120 accounts of 60 clients (several documents' worth)
    accounts = estate(120, 60)
    granted = grant(accounts, ["Engineer"])
    documents = compile_assume_policies(principal_label="group/platform", role_arns=granted)
    assert len(documents) >= 3

    # when they are applied to a group that does not exist yet
    applied = apply_group_policies(
        clients=clients,
        group_name="platform",
        documents=documents,
        policy_name_prefix="switchyard-group-platform",
    )

    # then the group exists with exactly those policies, under /switchyard/, attached
    assert applied.group_created
    assert len(applied.created) == len(documents)
    assert attached_names("platform") == sorted(
        f"switchyard-group-platform-{n}" for n in range(1, len(documents) + 1)
    )
    assert all(":policy/switchyard/switchyard-group-platform-" in arn for arn in applied.policy_arns)
    read = read_group_policies(clients=clients, group_name="platform")
    assert read.documents == documents
    assert allowed_role_arns(read.documents, account_clients=accounts) == arns(granted)

    # when half the accounts are revoked
    kept = dict(list(accounts.items())[:20])
    smaller = compile_assume_policies(principal_label="group/platform", role_arns=grant(kept, ["Engineer"]))
    assert len(smaller) < len(documents)
    revoked = apply_group_policies(
        clients=clients,
        group_name="platform",
        documents=smaller,
        policy_name_prefix="switchyard-group-platform",
    )

    # then AWS allows only what is left, and the surplus policies are gone, not just detached
    read = read_group_policies(clients=clients, group_name="platform")
    assert allowed_role_arns(read.documents, account_clients=accounts) == arns(grant(kept, ["Engineer"]))
    assert len(revoked.deleted) == len(documents) - len(smaller)
    assert not any(policy_exists(arn) for arn in revoked.deleted)
    assert attached_names("platform") == [
        f"switchyard-group-platform-{n}" for n in range(1, len(smaller) + 1)
    ]

    # when nothing is granted any more
    removed = apply_group_policies(
        clients=clients, group_name="platform", documents=[], policy_name_prefix="switchyard-group-platform"
    )

    # then the policies are deleted and the group is left in place
    assert attached_names("platform") == []
    assert not any(policy_exists(arn) for arn in removed.deleted)
    assert read_group_policies(clients=clients, group_name="platform").policies == ()
    assert iam().get_group(GroupName="platform")["Group"]["Path"] == "/switchyard/"


def test_applying_the_same_documents_twice_changes_nothing(clients: Boto3ClientFactory) -> None:
    documents = compile_assume_policies(
        principal_label="group/sre", role_arns=grant(estate(30, 10), ["Engineer"])
    )
    apply_group_policies(clients=clients, group_name="sre", documents=documents, policy_name_prefix="sy-sre")

    again = apply_group_policies(
        clients=clients, group_name="sre", documents=documents, policy_name_prefix="sy-sre"
    )

    assert not again.changed
    assert again.unchanged == again.policy_arns
    versions = iam().list_policy_versions(PolicyArn=again.policy_arns[0])["Versions"]
    assert len(versions) == 1


def test_updates_keep_at_most_five_versions_and_the_latest_is_default(clients: Boto3ClientFactory) -> None:
    # given a policy updated seven times
    for count in range(1, 8):
        documents = compile_assume_policies(
            principal_label="group/sre", role_arns=grant(estate(count, count), ["Engineer"])
        )
        result = apply_group_policies(
            clients=clients, group_name="sre", documents=documents, policy_name_prefix="sy-sre"
        )

    # then IAM's limit of five versions was respected and the newest text is in force
    versions = iam().list_policy_versions(PolicyArn=result.policy_arns[0])["Versions"]
    assert len(versions) == 5
    assert read_group_policies(clients=clients, group_name="sre").documents == documents


def test_orphans_from_an_interrupted_run_are_cleaned_up(clients: Boto3ClientFactory) -> None:
    # given a policy <prefix>-3 that was created but never attached
    orphan = iam().create_policy(
        PolicyName="sy-sre-3",
        Path="/switchyard/",
        PolicyDocument=json.dumps(LIST_BUCKETS),
    )["Policy"]["Arn"]
    documents = compile_assume_policies(principal_label="sre", role_arns=grant(estate(3, 3), ["Engineer"]))

    result = apply_group_policies(
        clients=clients, group_name="sre", documents=documents, policy_name_prefix="sy-sre"
    )

    assert result.deleted == (orphan,)
    assert not policy_exists(orphan)


def test_other_policies_on_the_group_are_left_alone_but_count_towards_the_limit(
    clients: Boto3ClientFactory,
) -> None:
    # given a group that already has nine policies attached by hand
    iam().create_group(GroupName="ops")
    for number in range(9):
        arn = iam().create_policy(
            PolicyName=f"hand-made-{number}",
            PolicyDocument=json.dumps(LIST_BUCKETS),
        )["Policy"]["Arn"]
        iam().attach_group_policy(GroupName="ops", PolicyArn=arn)
    one = compile_assume_policies(principal_label="ops", role_arns=grant(estate(2, 2), ["Engineer"]))
    two = compile_assume_policies(principal_label="ops", role_arns=grant(estate(120, 60), ["Engineer"]))

    # when one Switchyard policy is applied it fits; two would pass the limit of ten
    apply_group_policies(clients=clients, group_name="ops", documents=one, policy_name_prefix="sy-ops")
    with pytest.raises(PolicyTooLarge, match="already has 9 other managed policies"):
        apply_group_policies(clients=clients, group_name="ops", documents=two, policy_name_prefix="sy-ops")

    # then the hand-made policies are untouched and the earlier Switchyard policy still applies
    names = attached_names("ops")
    assert len(names) == 10
    assert "sy-ops-1" in names
    assert (
        read_group_policies(clients=clients, group_name="ops", policy_name_prefix="sy-ops").documents == one
    )


def test_user_policies_are_applied_and_removed(clients: Boto3ClientFactory) -> None:
    # given an IAM user for an engineer
    iam().create_user(UserName="eli")
    granted = grant({"111111111111": "acme", "222222222222": "globex"}, ["OnCall"])
    documents = compile_assume_policies(principal_label="user/eli", role_arns=granted)

    # when the person's own grants are applied
    apply_user_policies(
        clients=clients, user_name="eli", documents=documents, policy_name_prefix="sy-user-eli"
    )

    # then AWS allows exactly those roles
    read = read_user_policies(clients=clients, user_name="eli")
    assert allowed_role_arns(read.documents) == arns(granted)

    # when they are all revoked
    removed = remove_principal_policies(
        clients=clients, principal_type="user", principal_name="eli", policy_name_prefix="sy-user-eli"
    )

    # then nothing is left attached and the user still exists
    assert removed.deleted == tuple(policy.arn for policy in read.policies)
    assert read_user_policies(clients=clients, user_name="eli").policies == ()
    assert iam().get_user(UserName="eli")["User"]["UserName"] == "eli"


def test_a_missing_user_is_not_created(clients: Boto3ClientFactory) -> None:
    documents = compile_assume_policies(
        principal_label="user/ghost", role_arns=grant({"111111111111": "a"}, ["X"])
    )

    with pytest.raises(PrincipalNotFound):
        apply_user_policies(
            clients=clients, user_name="ghost", documents=documents, policy_name_prefix="sy-ghost"
        )
    assert read_user_policies(clients=clients, user_name="ghost").exists is False


def test_removing_from_a_missing_group_is_a_no_op(clients: Boto3ClientFactory) -> None:
    result = remove_principal_policies(
        clients=clients, principal_type="group", principal_name="gone", policy_name_prefix="sy-gone"
    )

    assert not result.changed
    with pytest.raises(ClientError):
        iam().get_group(GroupName="gone")


def test_changes_are_logged_as_structured_events(
    clients: Boto3ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="portal.aws.main_iam")
    documents = compile_assume_policies(principal_label="sre", role_arns=grant(estate(2, 2), ["Engineer"]))

    apply_group_policies(clients=clients, group_name="sre", documents=documents, policy_name_prefix="sy-sre")

    events = {record.getMessage(): record for record in caplog.records if record.name == "portal.aws.main_iam"}
    assert set(events) == {"switchroles.iam.group_created", "switchroles.iam.policies_applied"}
    assert events["switchroles.iam.policies_applied"].policies_created == 1  # type: ignore[attr-defined]
