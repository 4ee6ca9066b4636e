"""The evaluator, table-driven against the cases of AWS's policy-evaluation documentation
("Policy evaluation logic", "NotAction", "NotResource", "Permissions boundaries", "Condition
operators", "Policy variables"), for a cross-account ``sts:AssumeRole`` from the main account."""

from __future__ import annotations

from typing import Any

import pytest

from switchroles.effective_access import analyse, principals_from_details
from switchroles.policy_evaluation import PolicySource, Principal, TargetRole

MAIN = "111111111111"
MEMBER = "222222222222"
OTHER = "333333333333"
ROLE_ARN = f"arn:aws:iam::{MEMBER}:role/switchyard/acme/SwitchyardAdministrator"
CONSOLE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MAIN}:root"}, "Action": "sts:AssumeRole",
        "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"},
                      "StringLike": {"sts:RoleSessionName": "${aws:username}"}},
    }],
}
ACCESS_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{MAIN}:root"}, "Action": "sts:AssumeRole"}],
}


def allow(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Allow", **fields}


def deny(**fields: Any) -> dict[str, Any]:
    return {"Effect": "Deny", **fields}


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def user(*statements: dict[str, Any], boundary: dict[str, Any] | None = None, kind: str = "user",
         tags: dict[str, str] | None = None) -> Principal:
    return Principal(
        kind=kind, name="eli", arn=f"arn:aws:iam::{MAIN}:{kind}/eli", path="/", account_id=MAIN,
        tags=tags or {}, policies=(PolicySource("user inline", "p", "", doc(*statements)),),
        boundary=PolicySource("boundary", "arn:aws:iam::aws:policy/B", "", boundary) if boundary else None,
    )


def classify(principal: Principal, trust: dict[str, Any] = ACCESS_TRUST, arn: str = ROLE_ARN,
             account: str = MEMBER) -> str:
    analysis = analyse([principal], [TargetRole(arn=arn, account_id=account, trust_policy=trust)])
    if analysis.reaches:
        return analysis.reaches[0].classification
    if analysis.blocked:
        return "blocked: " + analysis.blocked[0].reason
    return "not allowed"


CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any] | None, str]] = [
    # (what the documentation says, identity statements, boundary, expected)
    ("no statement: implicit deny", [], None, "not allowed"),
    ("an Allow on the action and resource", [allow(Action="sts:AssumeRole", Resource=ROLE_ARN)], None, "reachable"),
    ("action names are case-insensitive", [allow(Action="STS:assumerole", Resource=ROLE_ARN)], None, "reachable"),
    ("action wildcard", [allow(Action="sts:Assume*", Resource="*")], None, "reachable"),
    ("? matches one character", [allow(Action="sts:AssumeRol?", Resource="*")], None, "reachable"),
    ("AdministratorAccess", [allow(Action="*", Resource="*")], None, "reachable"),
    ("another action only", [allow(Action="sts:GetCallerIdentity", Resource="*")], None, "not allowed"),
    ("ARN glob on the path", [allow(Action="sts:AssumeRole", Resource="arn:aws:iam::*:role/switchyard/*")], None,
     "reachable"),
    ("ARNs are case-sensitive", [allow(Action="sts:AssumeRole", Resource="arn:aws:iam::*:role/SWITCHYARD/*")],
     None, "not allowed"),
    ("an explicit Deny beats an Allow",
     [allow(Action="*", Resource="*"), deny(Action="sts:AssumeRole", Resource="*")], None,
     "blocked: an explicit Deny in inline policy p statement #2"),
    ("a Deny on another resource leaves the Allow",
     [allow(Action="*", Resource="*"), deny(Action="sts:AssumeRole", Resource="arn:aws:iam::*:role/other")], None,
     "reachable"),
    ("NotAction with Allow allows every other action",
     [allow(NotAction="iam:*", Resource="*")], None, "reachable"),
    ("NotAction with Allow excluding it", [allow(NotAction=["sts:*"], Resource="*")], None, "not allowed"),
    ("NotAction with Deny denies everything else",
     [allow(Action="*", Resource="*"), deny(NotAction="s3:*", Resource="*")], None,
     "blocked: an explicit Deny in inline policy p statement #2"),
    ("NotResource allows every other resource",
     [allow(Action="sts:AssumeRole", NotResource="arn:aws:iam::*:role/billing/*")], None, "reachable"),
    ("NotResource excluding the role", [allow(Action="sts:AssumeRole", NotResource="arn:aws:iam::*:role/switchyard/*")],
     None, "not allowed"),
    ("a boundary that allows it", [allow(Action="*", Resource="*")],
     doc(allow(Action="sts:AssumeRole", Resource="*")), "reachable"),
    ("a boundary that does not: the intersection is empty", [allow(Action="*", Resource="*")],
     doc(allow(Action="s3:*", Resource="*")),
     "blocked: its permissions boundary arn:aws:iam::aws:policy/B does not allow sts:AssumeRole there"),
    ("a boundary alone grants nothing", [], doc(allow(Action="*", Resource="*")), "not allowed"),
    ("a Deny in the boundary", [allow(Action="*", Resource="*")],
     doc(allow(Action="*", Resource="*"), deny(Action="sts:*", Resource="*")),
     "blocked: an explicit Deny in permissions boundary arn:aws:iam::aws:policy/B statement #2"),
    ("aws:ResourceAccount matches", [allow(Action="sts:AssumeRole", Resource="*",
                                           Condition={"StringEquals": {"aws:ResourceAccount": [MEMBER]}})],
     None, "reachable"),
    ("aws:ResourceAccount does not match", [allow(Action="sts:AssumeRole", Resource="*",
                                                  Condition={"StringEquals": {"aws:ResourceAccount": OTHER}})],
     None, "not allowed"),
    ("MFA required by the identity policy", [allow(Action="sts:AssumeRole", Resource="*",
                                                   Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}})],
     None, "reachable with MFA"),
    ("Deny without MFA (BoolIfExists false)",
     [allow(Action="*", Resource="*"),
      deny(Action="*", Resource="*", Condition={"BoolIfExists": {"aws:MultiFactorAuthPresent": "false"}})],
     None, "reachable with MFA"),
    ("an undecidable condition is never dropped",
     [allow(Action="sts:AssumeRole", Resource="*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}})],
     None, 'reachable, subject to IpAddress aws:SourceIp "10.0.0.0/8"'),
    ("an undecidable Deny leaves it reachable, subject to not being denied",
     [allow(Action="*", Resource="*"),
      deny(Action="*", Resource="*", Condition={"DateGreaterThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}})],
     None, "reachable, subject to not denied by inline policy p statement #2 "
           '(DateGreaterThan aws:CurrentTime "2030-01-01T00:00:00Z")'),
    ("a policy variable in the resource",
     [allow(Action="sts:AssumeRole", Resource="arn:aws:iam::*:role/${aws:username}")],
     None, "not allowed"),
    ("a policy with a number beyond 64 bits is read whole (its MFA condition too)",
     [allow(Action="sts:AssumeRole", Resource="*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
      allow(Action="s3:ListBucket", Resource="*", Condition={"NumericLessThan": {"s3:max-keys": 2**70}})],
     None, "reachable with MFA"),
    ("StringNotEquals with the key missing is met",
     [allow(Action="sts:AssumeRole", Resource="*", Condition={"StringNotEquals": {"aws:PrincipalTag/team": "x"}})],
     None, "reachable"),
]


@pytest.mark.parametrize(("case", "statements", "boundary", "expected"), CASES, ids=[c[0] for c in CASES])
def test_identity_side_follows_the_documented_evaluation(
    case: str, statements: list[dict[str, Any]], boundary: dict[str, Any] | None, expected: str
) -> None:
    # given a main-account user with these policies, and a role that trusts the main account
    # when the evaluator decides sts:AssumeRole on the role
    # then it answers what the documentation says
    assert classify(user(*statements, boundary=boundary)) == expected, case


TRUST_CASES: list[tuple[str, str, dict[str, str], dict[str, Any], str]] = [
    ("a user meets the console trust with MFA", "user", {}, CONSOLE_TRUST, "reachable with MFA"),
    ("a role session never meets ${aws:username}", "role", {}, CONSOLE_TRUST,
     "blocked: the role's trust refuses it: a role session has no aws:username, so it can never meet the "
     "trust condition sts:RoleSessionName = ${aws:username}"),
    ("a role session reaches an access role that trusts the main account", "role", {}, ACCESS_TRUST, "reachable"),
    ("a trust that names another account", "user", {},
     {"Statement": [allow(Principal={"AWS": f"arn:aws:iam::{OTHER}:root"}, Action="sts:AssumeRole")]},
     "blocked: the role's trust refuses it: its trust policy does not name the main account or this principal"),
    ("a principal-tag trust met by the tag", "user", {"switchyard-person": "7"},
     {"Statement": [allow(Principal={"AWS": f"arn:aws:iam::{MAIN}:root"}, Action="sts:AssumeRole",
                          Condition={"Null": {"aws:PrincipalTag/switchyard-person": "false"}})]}, "reachable"),
    ("a principal-tag trust refuses the untagged", "user", {},
     {"Statement": [allow(Principal={"AWS": f"arn:aws:iam::{MAIN}:root"}, Action="sts:AssumeRole",
                          Condition={"Null": {"aws:PrincipalTag/switchyard-person": "false"}})]},
     "blocked: the role's trust refuses it: the principal lacks the tag the trust policy requires"),
    ("a trust naming the user's own ARN", "user", {},
     {"Statement": [allow(Principal={"AWS": f"arn:aws:iam::{MAIN}:user/eli"}, Action="sts:AssumeRole")]},
     "reachable"),
    ("an ExternalId the caller can send", "user", {},
     {"Statement": [allow(Principal={"AWS": MAIN}, Action="sts:AssumeRole",
                          Condition={"StringEquals": {"sts:ExternalId": "abc"}})]}, "reachable"),
    ("an explicit Deny in the trust", "user", {},
     {"Statement": [allow(Principal={"AWS": MAIN}, Action="sts:AssumeRole"),
                    deny(Principal="*", Action="sts:AssumeRole")]},
     "blocked: the role's trust refuses it: its trust policy denies it"),
]


@pytest.mark.parametrize(("case", "kind", "tags", "trust", "expected"), TRUST_CASES, ids=[c[0] for c in TRUST_CASES])
def test_the_roles_trust_policy_must_also_let_the_principal_in(
    case: str, kind: str, tags: dict[str, str], trust: dict[str, Any], expected: str
) -> None:
    # given a principal whose own policy allows everything
    principal = user(allow(Action="*", Resource="*"), kind=kind, tags=tags)
    # when the role's trust is evaluated too, then the pair is classified as documented
    assert classify(principal, trust=trust) == expected, case


def test_group_policies_reach_their_members_and_name_the_group() -> None:
    # given GetAccountAuthorizationDetails with an inline group policy and a customer managed
    # policy at a custom path attached to another group
    details = {
        "UserDetailList": [
            {"UserName": "ana", "Arn": f"arn:aws:iam::{MAIN}:user/ana", "Path": "/", "GroupList": ["ops", "extra"],
             "UserPolicyList": [], "AttachedManagedPolicies": []},
        ],
        "GroupDetailList": [
            {"GroupName": "ops", "GroupPolicyList": [
                {"PolicyName": "assume-all", "PolicyDocument": doc(allow(Action="sts:AssumeRole", Resource="*"))}],
             "AttachedManagedPolicies": []},
            {"GroupName": "extra", "GroupPolicyList": [], "AttachedManagedPolicies": [
                {"PolicyName": "x", "PolicyArn": f"arn:aws:iam::{MAIN}:policy/custom/deep/x"}]},
        ],
        "RoleDetailList": [],
        "Policies": [{"Arn": f"arn:aws:iam::{MAIN}:policy/custom/deep/x", "PolicyVersionList": [
            {"IsDefaultVersion": True, "Document": "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Deny%22%2C%22Action"
             "%22%3A%22sts%3AAssumeRole%22%2C%22Resource%22%3A%22arn%3Aaws%3Aiam%3A%3A%2A%3Arole%2Fbilling%2F%2A%22%7D%5D%7D"}]}],
    }
    principals = principals_from_details(details, account_id=MAIN)
    roles = [TargetRole(arn=ROLE_ARN, account_id=MEMBER, trust_policy=ACCESS_TRUST),
             TargetRole(arn=f"arn:aws:iam::{MEMBER}:role/billing/Finance", account_id=MEMBER,
                        trust_policy=ACCESS_TRUST)]
    # when analysed
    analysis = analyse(principals, roles)
    # then the inline group policy lets ana in, named with its group; the URL-encoded managed
    # policy's Deny keeps her out of the billing role
    [reach] = analysis.reaches
    assert reach.role.arn == ROLE_ARN
    assert reach.allowed_by.label == "inline policy assume-all (via group ops)"
    assert [b.reason for b in analysis.blocked] == [
        f"an explicit Deny in managed policy arn:aws:iam::{MAIN}:policy/custom/deep/x (via group extra) statement #1"
    ]


# The roles a statement names, as the role index narrows them: the same whatever the Resource's form.
NAMED_ROLES = {
    "A1": "arn:aws:iam::222222222222:role/switchyard/acme/SwitchyardAdministrator",
    "A2": "arn:aws:iam::222222222222:role/switchyard/acme/SwitchyardEngineer",
    "B1": "arn:aws:iam::333333333333:role/switchyard/acme/SwitchyardAdministrator",
    "B2": "arn:aws:iam::333333333333:role/switchyard/globex/SwitchyardAdministrator",
    "B3": "arn:aws:iam::333333333333:role/OrganizationAccountAccessRole",
    "C1": "arn:aws:iam::444444444444:role/billing/Finance",
    "X": "arn:aws:iam::444444444444:role/odd:path/SwitchyardAdministrator",  # a colon in the path
}
ONLY_IN = {"StringEquals": {"aws:ResourceAccount": ["333333333333"]}}
NAMING_CASES: list[tuple[str, dict[str, Any], set[str]]] = [
    ("an exact ARN", {"Resource": NAMED_ROLES["A1"]}, {"A1"}),
    ("any account, exact path", {"Resource": "arn:aws:iam::*:role/switchyard/acme/SwitchyardAdministrator"},
     {"A1", "B1"}),
    ("a wildcard in the path", {"Resource": "arn:aws:iam::*:role/switchyard/*/SwitchyardAdministrator"},
     {"A1", "B1", "B2"}),
    ("a wildcard before the name spans colons", {"Resource": "arn:aws:iam::*:role/*Administrator"},
     {"A1", "B1", "B2", "X"}),
    ("one account, any role", {"Resource": "arn:aws:iam::333333333333:role/*"}, {"B1", "B2", "B3"}),
    ("fewer parts than an ARN has", {"Resource": "arn:aws:iam::*"}, set(NAMED_ROLES)),
    ("? is one character", {"Resource": "arn:aws:iam::*:role/switchyard/acme/Switchyard????????"}, {"A2"}),
    ("NotResource names the others", {"NotResource": "arn:aws:iam::*:role/switchyard/*"}, {"B3", "C1", "X"}),
    ("* within aws:ResourceAccount", {"Resource": "*", "Condition": {"StringEquals": {
        "aws:ResourceAccount": ["444444444444"]}}}, {"C1", "X"}),
    ("a path within aws:ResourceAccount", {"Resource": "arn:aws:iam::*:role/switchyard/*", "Condition": ONLY_IN},
     {"B1", "B2"}),
    ("NotResource within aws:ResourceAccount", {"NotResource": NAMED_ROLES["B3"], "Condition": ONLY_IN},
     {"B1", "B2"}),
    ("more colons than a role ARN has", {"Resource": "arn:aws:iam::*:role/odd:path/*"}, {"X"}),
    ("any account, a path with a colon", {"Resource": "arn:aws:iam::*:role/odd:path/SwitchyardAdministrator"},
     {"X"}),
    ("a list of forms", {"Resource": ["arn:aws:iam::*:role/billing/Finance", NAMED_ROLES["A2"],
                                      "arn:aws:iam::555555555555:role/*"]}, {"A2", "C1"}),
]


@pytest.mark.parametrize(("case", "fields", "expected"), NAMING_CASES, ids=[c[0] for c in NAMING_CASES])
def test_a_statement_reaches_exactly_the_roles_its_resource_names(
    case: str, fields: dict[str, Any], expected: set[str]
) -> None:
    # given roles in three accounts and a user allowed sts:AssumeRole on some of them
    roles = [TargetRole(arn=arn, account_id=arn.split(":")[4], trust_policy=ACCESS_TRUST)
             for arn in NAMED_ROLES.values()]
    principal = user(allow(Action="sts:AssumeRole", **fields))
    # when analysed, then the user reaches the roles the statement names, and only those
    reached = {reach.role.arn for reach in analyse([principal], roles).reaches}
    assert reached == {NAMED_ROLES[name] for name in expected}, case


def test_a_role_listed_twice_is_decided_once() -> None:
    role = TargetRole(arn=ROLE_ARN, account_id=MEMBER, trust_policy=ACCESS_TRUST)
    analysis = analyse([user(allow(Action="sts:AssumeRole", Resource="*"))], [role, role])
    assert [(r.role.arn, r.classification) for r in analysis.reaches] == [(ROLE_ARN, "reachable")]
    assert analysis.reachable_pairs == 1
