"""Custom policy validation for role templates, and the IAM limits Switchyard checks itself."""

from __future__ import annotations

import json

import pytest

from switchroles.policies import (
    MANAGED_POLICY_MAX_CHARS,
    POLICY_TEXT_MAX_CHARS,
    ROLE_NAME_RE,
    ROLE_PATH_RE,
    count_policy_chars,
    policy_size,
    validate_custom_policy,
)

READ_BUCKET = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadReports",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:List*"],
            "Resource": ["arn:aws:s3:::acme-reports", "arn:aws:s3:::acme-reports/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "true"}},
        }
    ],
}


def policy_text(**statement_changes: object) -> str:
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme/*"}
    statement.update(statement_changes)
    statement = {key: value for key, value in statement.items() if value is not None}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))


def test_a_valid_policy_passes_without_warnings() -> None:
    # given a read-only bucket policy, pretty-printed as a person would paste it
    text = json.dumps(READ_BUCKET, indent=4)

    # when it is validated
    check = validate_custom_policy(text)

    # then it is accepted as is
    assert check.errors == []
    assert check.warnings == []
    assert check.is_valid
    assert check.document == READ_BUCKET


def test_a_single_statement_object_is_accepted() -> None:
    text = json.dumps({"Version": "2012-10-17", "Statement": READ_BUCKET["Statement"][0]})

    check = validate_custom_policy(text)

    assert check.errors == []


def test_text_that_is_not_json_is_refused_with_its_position() -> None:
    check = validate_custom_policy('{"Version": "2012-10-17", "Statement": [}')

    assert not check.is_valid
    assert check.document == {}
    assert check.errors[0].startswith("The policy is not valid JSON:")
    assert "line 1" in check.errors[0]


@pytest.mark.parametrize("text", ["", "   \n", "[]", '"a string"', "42"])
def test_empty_text_or_a_non_object_is_refused(text: str) -> None:
    check = validate_custom_policy(text)

    assert len(check.errors) == 1
    assert check.document == {}


def test_a_principal_is_refused_because_this_is_a_permission_policy() -> None:
    text = policy_text(Principal={"AWS": "arn:aws:iam::111122223333:root"})

    check = validate_custom_policy(text)

    assert check.errors == [
        "Statement 1: remove Principal. A role's permission policy applies to the role itself; "
        "who may assume the role is set by its trust policy."
    ]


def test_not_principal_is_refused_too() -> None:
    check = validate_custom_policy(policy_text(NotPrincipal={"AWS": "*"}))

    assert len(check.errors) == 1
    assert "NotPrincipal" in check.errors[0]


def test_a_statement_without_effect_is_refused() -> None:
    check = validate_custom_policy(policy_text(Effect=None))

    assert check.errors == ['Statement 1: add "Effect": "Allow" or "Deny".']


def test_an_effect_other_than_allow_or_deny_is_refused() -> None:
    check = validate_custom_policy(policy_text(Effect="allow"))

    assert check.errors == ['Statement 1: Effect must be "Allow" or "Deny".']


def test_action_and_not_action_together_are_refused() -> None:
    check = validate_custom_policy(policy_text(NotAction="s3:DeleteObject"))

    assert check.errors == ["Statement 1: use Action or NotAction, not both."]


def test_a_statement_without_action_or_resource_is_refused() -> None:
    check = validate_custom_policy(policy_text(Action=None, Resource=None))

    assert check.errors == [
        "Statement 1: add Action (or NotAction).",
        "Statement 1: add Resource (or NotResource).",
    ]


def test_resource_and_not_resource_together_are_refused() -> None:
    check = validate_custom_policy(policy_text(NotResource="arn:aws:s3:::other/*"))

    assert check.errors == ["Statement 1: use Resource or NotResource, not both."]


def test_messages_name_the_statement_by_its_sid() -> None:
    check = validate_custom_policy(policy_text(Sid="ReadAcme", Effect=None))

    assert check.errors == ['Statement "ReadAcme": add "Effect": "Allow" or "Deny".']


@pytest.mark.parametrize(
    "actions",
    ["s3GetObject", "s3:", ":GetObject", "s3:Get Object", "s3:Get/Object", ["s3:GetObject", "iam:Pass:Role"]],
)
def test_actions_must_look_like_service_colon_action(actions: object) -> None:
    check = validate_custom_policy(policy_text(Action=actions))

    assert len(check.errors) == 1
    assert "is not an action; write service:Action" in check.errors[0]


@pytest.mark.parametrize("actions", ["*", "s3:*", "s3:Get*", "ec2:Describe?nstances", "execute-api:Invoke"])
def test_wildcard_actions_are_accepted(actions: str) -> None:
    check = validate_custom_policy(policy_text(Action=actions))

    assert check.errors == []


@pytest.mark.parametrize("actions", [[], 5, ["s3:GetObject", 7], {"s3": "GetObject"}, [["s3:GetObject"]]])
def test_actions_must_be_strings(actions: object) -> None:
    check = validate_custom_policy(policy_text(Action=actions))

    assert len(check.errors) == 1
    assert "string" in check.errors[0]


@pytest.mark.parametrize("resource", ["acme-bucket", "arn:aws:s3", "arn::s3:::x", "arn:aws:s3:::", 3])
def test_resources_must_be_arns_or_star(resource: object) -> None:
    check = validate_custom_policy(policy_text(Resource=resource))

    assert len(check.errors) == 1


def test_allowing_every_action_on_every_resource_is_a_warning_not_an_error() -> None:
    # given the classic administrator statement
    text = policy_text(Action="*", Resource="*")

    # when it is validated
    check = validate_custom_policy(text)

    # then it can be saved, but the manager is told what it means
    assert check.errors == []
    assert check.warnings == [
        "Statement 1 allows every action on every resource: that is full administrator access."
    ]


def test_a_star_inside_action_and_resource_lists_is_also_a_warning() -> None:
    check = validate_custom_policy(policy_text(Action=["s3:GetObject", "*"], Resource=["*"]))

    assert check.errors == []
    assert len(check.warnings) == 1


def test_allow_not_action_on_every_resource_is_a_warning() -> None:
    check = validate_custom_policy(policy_text(Action=None, NotAction="iam:*", Resource="*"))

    assert check.errors == []
    assert check.warnings == ["Statement 1 allows every action except those listed, on every resource."]


def test_denying_everything_is_not_a_warning() -> None:
    check = validate_custom_policy(policy_text(Effect="Deny", Action="*", Resource="*"))

    assert check.errors == []
    assert check.warnings == []


def test_a_policy_over_6144_characters_without_whitespace_is_refused_before_parsing() -> None:
    # given a policy of 6,145 non-whitespace characters (and not even valid JSON past the limit)
    text = policy_text(Sid="A" * (MANAGED_POLICY_MAX_CHARS - len(policy_text(Sid="")) + 1))
    assert count_policy_chars(text) == MANAGED_POLICY_MAX_CHARS + 1

    # when it is validated
    check = validate_custom_policy(text)

    # then the size is the only complaint
    assert check.errors == ["The policy is 6,145 characters long without spaces; AWS allows at most 6,144."]


def test_whitespace_does_not_count_towards_the_size_limit() -> None:
    # given a policy exactly at the limit once whitespace is removed, padded with indentation
    compact = policy_text(Sid="A" * (MANAGED_POLICY_MAX_CHARS - len(policy_text(Sid=""))))
    text = json.dumps(json.loads(compact), indent=40)
    assert len(text) > MANAGED_POLICY_MAX_CHARS
    assert count_policy_chars(text) == MANAGED_POLICY_MAX_CHARS

    check = validate_custom_policy(text)

    assert check.errors == []
    assert policy_size(check.document) == MANAGED_POLICY_MAX_CHARS


def test_raw_text_over_the_hard_limit_is_refused_even_if_mostly_whitespace() -> None:
    text = policy_text() + " " * POLICY_TEXT_MAX_CHARS

    check = validate_custom_policy(text)

    assert check.errors == ["The policy text is over 20,000 characters; AWS would refuse it."]


def test_deep_nesting_is_refused_without_parsing() -> None:
    # given a nesting bomb small enough to pass the size checks
    text = "[" * 3000 + "]" * 3000

    check = validate_custom_policy(text)

    assert check.errors == ["The policy is nested too deeply to be an IAM policy."]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = policy_text(Condition={"StringLike": {"aws:userid": '[[[[[[[[[[[[[[[[\\"{{{{{{{{{{{{{{'}})

    check = validate_custom_policy(text)

    assert check.errors == []


def test_nan_and_oversized_numbers_are_refused() -> None:
    nan = policy_text(Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "NAN"}}).replace(
        '"NAN"', "NaN"
    )
    huge = policy_text(Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "N"}}).replace(
        '"N"', "9" * 5000
    )

    assert validate_custom_policy(nan).errors == ["The policy is not valid JSON."]
    assert validate_custom_policy(huge).errors == ["The policy is not valid JSON."]


def test_duplicate_keys_are_refused() -> None:
    text = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Effect": "Deny", ' + (
        '"Action": "s3:GetObject", "Resource": "*"}]}'
    )

    check = validate_custom_policy(text)

    assert check.errors == ['The key "Effect" appears more than once in the same object.']


def test_unknown_top_level_keys_are_refused() -> None:
    text = json.dumps({"Version": "2012-10-17", "Statement": READ_BUCKET["Statement"], "Statements": []})

    check = validate_custom_policy(text)

    assert check.errors == ['Remove "Statements": a policy has only Version, Id and Statement.']


def test_an_unknown_version_is_refused_and_a_missing_one_is_a_warning() -> None:
    wrong = validate_custom_policy(json.dumps({**READ_BUCKET, "Version": "2024-01-01"}))
    missing = validate_custom_policy(json.dumps({"Statement": READ_BUCKET["Statement"]}))
    old = validate_custom_policy(json.dumps({**READ_BUCKET, "Version": "2008-10-17"}))

    assert wrong.errors == ['Version must be "2012-10-17" (or the older "2008-10-17").']
    assert missing.errors == []
    assert len(missing.warnings) == 1
    assert old.errors == []


@pytest.mark.parametrize("statements", [[], "Allow", None, [["nested"]]])
def test_statement_must_be_an_object_or_a_non_empty_list(statements: object) -> None:
    check = validate_custom_policy(json.dumps({"Version": "2012-10-17", "Statement": statements}))

    assert len(check.errors) == 1


def test_a_missing_statement_is_refused() -> None:
    check = validate_custom_policy('{"Version": "2012-10-17"}')

    assert check.errors == ["Add a Statement."]


def test_sids_must_be_alphanumeric_and_unique() -> None:
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    bad = validate_custom_policy(policy_text(Sid="read-acme"))
    twice = validate_custom_policy(
        json.dumps(
            {"Version": "2012-10-17", "Statement": [{**statement, "Sid": "A"}, {**statement, "Sid": "A"}]}
        )
    )

    assert bad.errors == ["Statement 1: Sid may contain only letters and digits."]
    assert twice.errors == ['Statement 2: Sid "A" is used twice; each Sid must be unique.']


def test_unknown_statement_keys_and_condition_operators_are_refused() -> None:
    check = validate_custom_policy(
        policy_text(Resources="*", Condition={"StringEqualz": {"aws:username": "eli"}})
    )

    assert check.errors == [
        'Statement 1: remove "Resources"; it is not a statement element.',
        'Statement 1: "StringEqualz" is not a condition operator.',
    ]


@pytest.mark.parametrize(
    "operator",
    ["StringEquals", "ForAnyValue:StringLike", "ForAllValues:StringEquals", "ArnLikeIfExists", "Null"],
)
def test_known_condition_operators_are_accepted(operator: str) -> None:
    check = validate_custom_policy(policy_text(Condition={operator: {"aws:PrincipalTag/team": ["a", "b"]}}))

    assert check.errors == []


def test_every_message_is_one_short_line() -> None:
    texts = [
        "nope",
        policy_text(Principal="*", Effect="Maybe", Action=[1], Resource="bucket", Condition=[]),
        policy_text(Action="x" * 500, Resource="y" * 500),
        "[" * 100,
    ]

    messages = [message for text in texts for message in validate_custom_policy(text).errors]

    assert messages
    assert all("\n" not in message and len(message) <= 200 for message in messages)


def test_policy_size_counts_compact_json_without_whitespace() -> None:
    document = {"Version": "2012-10-17", "Statement": [{"Sid": "With spaces in text"}]}

    assert policy_size(document) == len(json.dumps(document, separators=(",", ":"))) - 3


@pytest.mark.parametrize("name", ["Engineer", "ops+admin@acme", "a", "A" * 64, "x_y=z,w.v-u"])
def test_role_names_iam_accepts(name: str) -> None:
    assert ROLE_NAME_RE.match(name)


@pytest.mark.parametrize("name", ["", "A" * 65, "bad name", "x/y", "Engineer\n", "rôle", "*"])
def test_role_names_iam_refuses(name: str) -> None:
    assert not ROLE_NAME_RE.match(name)


@pytest.mark.parametrize("path", ["/", "/switchyard/", "/switchyard/acme-corp/", "/a/b.c/d@e/"])
def test_role_paths_iam_accepts(path: str) -> None:
    assert ROLE_PATH_RE.match(path)


@pytest.mark.parametrize(
    "path", ["", "switchyard/", "/switchyard", "//", "/a//b/", "/a b/", "/*/", "/\n", "/" + "a/" * 256]
)
def test_role_paths_refused(path: str) -> None:
    assert not ROLE_PATH_RE.match(path)
