"""Role provisioning (switchroles.provisioning) without AWS: what is recorded when a write fails
part of the way through an account's roles. The AWS seam is replaced at ``portal.aws.ensure_role``."""

from __future__ import annotations

from typing import Any

import pytest

from portal.aws import AwsError, RoleResult
from switchroles import provisioning
from switchroles.models import AccountRole
from tests.onboarding.conftest import make_account

pytestmark = pytest.mark.django_db


def test_each_role_is_handed_to_the_caller_as_soon_as_aws_has_it_even_if_a_later_one_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given an account with three roles, and an IAM that refuses the third write
    account = make_account(role_names=("SwitchyardAdministrator", "SwitchyardEngineer", "SwitchyardOnCall"))
    roles = list(AccountRole.objects.filter(account=account).select_related("template", "account",
                                                                            "account__client").order_by("pk"))
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
