"""Role provisioning (switchroles.provisioning) without AWS: what is recorded when a write fails
part of the way through an account's roles. The AWS seam is replaced at ``portal.aws.ensure_role``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from portal.aws import MANAGED_BY_TAG_KEY, MANAGED_BY_TAG_VALUE, AwsError, RoleResult, RoleState
from switchroles import provisioning
from switchroles.models import AccountRole
from tests.onboarding.conftest import make_account

pytestmark = pytest.mark.django_db


def account_with_three_roles() -> tuple[Any, list[AccountRole]]:
    account = make_account(role_names=("SwitchyardAdministrator", "SwitchyardEngineer", "SwitchyardOnCall"))
    roles = list(AccountRole.objects.filter(account=account).select_related("template", "account",
                                                                            "account__client").order_by("pk"))
    return account, roles


def test_each_role_is_handed_to_the_caller_as_soon_as_aws_has_it_even_if_a_later_one_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an account with three roles, and an IAM that refuses the third write
    account, roles = account_with_three_roles()
    written: list[str] = []

    def ensure_role(*, clients: Any, credentials: Any, spec: Any) -> RoleResult:
        if len(written) == 2:
            raise AwsError("LimitExceeded", "Cannot exceed quota", "IAM refused: too many roles.", False)
        written.append(spec.name)
        return RoleResult(arn=f"arn:aws:iam::123456789012:role{spec.path}{spec.name}", outcome="created")

    monkeypatch.setattr(provisioning.aws, "ensure_role", ensure_role)
    seen: list[str] = []

    # when the roles are made to match
    with pytest.raises(AwsError):
        provisioning.make_roles_match(account=account, roles=roles, clients=None, credentials=object(),
                                      each=lambda matched: seen.append(matched.role.role_name))

    # then the caller heard of the two roles AWS wrote before the refusal, in order
    assert seen == written == [role.role_name for role in roles[:2]]


def test_an_accounts_roles_are_read_back_side_by_side_and_each_compared_with_its_own_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an account with three roles, and an IAM whose reads each wait until all three are asked
    # (one after the other, the first would wait in vain: the barrier breaks); it shows two roles as
    # specified and the third not at all
    account, roles = account_with_three_roles()
    specs = {spec.name: spec for spec in map(provisioning.role_spec_for, roles)}
    all_asked = threading.Barrier(len(roles), timeout=10)

    def read_role(*, clients: Any, credentials: Any, path: str, name: str) -> RoleState | None:
        all_asked.wait()
        if name == "SwitchyardEngineer":
            return None
        spec = specs[name]
        inline = {spec.inline_policy_name: spec.inline_policy} if spec.inline_policy is not None else {}
        return RoleState(arn=f"arn:aws:iam::123456789012:role{spec.path}{name}", path=spec.path, name=name,
                         trust_policy=spec.trust_policy, managed_policy_arns=frozenset(spec.managed_policy_arns),
                         inline_policies=inline, max_session_duration=spec.max_session_duration,
                         tags={MANAGED_BY_TAG_KEY: MANAGED_BY_TAG_VALUE})

    monkeypatch.setattr(provisioning.aws, "read_role", read_role)

    # when they are read back
    problems = provisioning.roles_read_back(roles=roles, clients=None, credentials=object())

    # then all three were read at once, each matched its own spec, and only the missing one is reported
    assert problems == {"SwitchyardEngineer": ["the role does not exist"]}
