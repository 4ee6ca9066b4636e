"""Guards for the sandbox's root-access patch of moto: each fails as soon as moto ships a native
version of what ``portal.sandbox_moto.root_access`` adds, so the patch is revisited then."""

from __future__ import annotations

import inspect

import moto.iam.responses
import moto.organizations.models
import moto.sts.responses
import pytest
from moto.core.utils import camelcase_to_underscores

from portal.sandbox_moto import root_access


def _source(module: object) -> str:
    return inspect.getsource(module)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", root_access.ADDED_IAM_ACTIONS)
def test_moto_iam_still_lacks_the_root_access_features(action: str) -> None:
    # given moto's own IAM responses (its source, not the patched class)
    # then it still has no handler of its own for the action the sandbox adds
    assert f"def {camelcase_to_underscores(action)}(" not in _source(moto.iam.responses)


def test_moto_sts_still_lacks_assume_root() -> None:
    assert "def assume_root(" not in _source(moto.sts.responses)


def test_moto_still_does_not_list_iam_as_a_trusted_service() -> None:
    assert '"iam.amazonaws.com"' not in _source(moto.organizations.models)


def test_moto_iam_still_has_no_notion_of_a_root_user_session() -> None:
    # moto's own GetLoginProfile needs a user name: without one it knows no root user
    assert "root" not in inspect.getsource(root_access._installed_originals()["get_login_profile"]).lower()


def test_the_patch_is_live_on_moto_response_classes() -> None:
    # given the patch installed (tests/conftest.py installs it, as portal.sandbox_aws does)
    # then moto finds the added actions on its response classes, where it looks them up at call time
    from moto.iam.responses import IamResponse
    from moto.sts.responses import TokenResponse

    assert TokenResponse.assume_root is root_access.assume_root  # type: ignore[attr-defined]
    assert IamResponse.list_organizations_features is root_access.list_organizations_features  # type: ignore[attr-defined]
    assert getattr(IamResponse.get_login_profile, "switchyard_root_access", False)
