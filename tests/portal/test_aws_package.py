"""The one AWS package: nothing outside ``portal/aws`` imports boto3 or botocore, ``portal.aws``
imports nothing of Switchyard's but itself, and none of its modules grows past ~700 lines.

Read from the source with ``ast`` (imports inside functions included), so an import that only runs
on some path is seen all the same."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("portal", "onboarding", "switchroles", "billing", "elevations")
AWS_PACKAGE = ROOT / "portal" / "aws"
AWS_LIBRARIES = ("boto3", "botocore")
MAX_MODULE_LINES = 700


def _product_modules() -> list[Path]:
    return sorted(
        path
        for package in PRODUCT_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (``from x import y`` counts as ``x`` and ``x.y``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _is_under(name: str, top: str) -> bool:
    return name == top or name.startswith(f"{top}.")


def _in_aws_package(path: Path) -> bool:
    return AWS_PACKAGE in path.parents


def test_the_walk_sees_function_level_imports(tmp_path: Path) -> None:
    # given a module that imports botocore only inside a function
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from botocore.exceptions import ClientError\n    return ClientError\n")

    # then the walk finds it
    assert "botocore.exceptions" in _imported(module)


def test_nothing_outside_the_aws_package_imports_boto3_or_botocore() -> None:
    # given every product module outside portal/aws
    offenders = {
        str(path.relative_to(ROOT)): sorted(name for name in _imported(path)
                                            if any(_is_under(name, lib) for lib in AWS_LIBRARIES))
        for path in _product_modules()
        if not _in_aws_package(path)
    }

    # then none imports boto3 or botocore
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_aws_package_depends_on_nothing_of_switchyards_but_itself() -> None:
    # given every module of portal/aws
    modules = sorted(AWS_PACKAGE.rglob("*.py"))
    assert len(modules) > 5  # the package is where this test thinks it is

    # then none imports another app, or a portal module outside portal.aws
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            name for name in _imported(path)
            if any(_is_under(name, package) for package in PRODUCT_PACKAGES)
            and not _is_under(name, "portal.aws")
            and name != "portal"  # ``from portal import aws`` is portal.aws itself
        )
        for path in modules
    }
    assert {path: names for path, names in offenders.items() if names} == {}


@pytest.mark.parametrize("module", sorted(p.name for p in AWS_PACKAGE.glob("*.py")))
def test_every_aws_module_stays_readable(module: str) -> None:
    # then each module of the package has at most ~700 lines
    lines = (AWS_PACKAGE / module).read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"portal/aws/{module} has {lines} lines"


def test_the_old_aws_modules_are_gone() -> None:
    # then the modules the package replaced do not come back as re-export shims
    old = ["onboarding/aws.py", "switchroles/aws.py", "billing/aws.py", "onboarding/root_aws.py",
           "switchroles/mfa.py", "portal/aws.py"]
    assert [path for path in old if (ROOT / path).exists()] == []


def test_the_iam_name_validator_is_built_from_the_one_pattern() -> None:
    from django.core.exceptions import ValidationError

    from portal.aws import limits
    from portal.models import IAM_NAME_VALIDATOR

    # then the Django validator uses the package's pattern, ASCII only
    assert IAM_NAME_VALIDATOR.regex.pattern == limits.IAM_NAME_PATTERN
    IAM_NAME_VALIDATOR("eli.baker@acme")
    with pytest.raises(ValidationError):
        IAM_NAME_VALIDATOR("renée")
    assert not limits.is_iam_name("renée") and limits.is_iam_name("renee")
