"""Managers add and edit role templates; IAM's limits and the custom policy are checked first."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from portal.audit.models import AuditEvent
from portal.people.models import User
from switchroles.models import RoleTemplate
from tests.switchroles.conftest import reauthenticated

pytestmark = pytest.mark.django_db

SignedIn = Callable[[User], HttpClient]
LIST_BUCKETS = {"Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}]}
FULL_ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def _form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Bucket lister", "tier": "custom", "role_name": "SwitchyardBuckets", "description": "Lists buckets",
        "managed_policy_arns": "", "custom_policy": json.dumps(LIST_BUCKETS), "require_mfa": "on",
        "max_session_seconds": "7200", "console_color": "efda95", "is_active": "on",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def _errors_under(html: str, field: str) -> str:
    parts = html.split(f'id="id_{field}_errors"', 1)
    assert len(parts) == 2, f"no errors under {field}"
    return parts[1].split("</ul>", 1)[0]


def test_managers_see_the_seeded_templates(manager: User, signed_in: SignedIn) -> None:
    html = signed_in(manager).get(reverse("roletemplates:list")).content.decode()
    for name in ("Administrator", "Engineer", "On-call support"):
        assert name in html
    assert "arn:aws:iam::aws:policy/PowerUserAccess" in html


@pytest.mark.parametrize("who", ["auditor", "engineer"])
def test_only_managers_reach_role_templates(who: str, request: pytest.FixtureRequest, signed_in: SignedIn) -> None:
    http = signed_in(request.getfixturevalue(who))
    template = RoleTemplate.objects.first()
    assert template is not None
    assert http.get(reverse("roletemplates:list")).status_code == 403
    assert http.post(reverse("roletemplates:new"), _form()).status_code == 403
    assert http.post(reverse("roletemplates:edit", kwargs={"template_id": template.pk}),
                     _form()).status_code == 403
    assert not RoleTemplate.objects.filter(name="Bucket lister").exists()


def test_a_manager_adds_a_template_with_a_custom_policy(manager: User, signed_in: SignedIn) -> None:
    response = reauthenticated(signed_in(manager), manager).post(reverse("roletemplates:new"), _form())

    assert response.status_code == 302
    template = RoleTemplate.objects.get(name="Bucket lister")
    assert (template.custom_policy, template.managed_policy_arns, template.revision) == (LIST_BUCKETS, [], 1)
    assert (template.max_session_seconds, template.console_color, template.created_by) == (7200, "efda95", manager)
    event = AuditEvent.objects.get(action="role_template.created")
    assert (event.actor, event.details["role_name"]) == (manager, "SwitchyardBuckets")


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"custom_policy": '{"Version": "2012-10-17", "Statement": ['}, "custom_policy", "not valid JSON"),
        ({"custom_policy": json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": "*"}]})},
         "custom_policy", "remove Principal"),
        ({"custom_policy": json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": [f"s3:Get{'x' * 40}{n}" for n in range(150)], "Resource": "*"}]})},
         "custom_policy", "AWS allows at most 6,144"),
        ({"custom_policy": "", "managed_policy_arns": ""}, "managed_policy_arns", "at least one managed policy"),
        ({"managed_policy_arns": "\n".join(f"arn:aws:iam::aws:policy/P{n}" for n in range(11))},
         "managed_policy_arns", "at most 10 per role"),
        ({"managed_policy_arns": "ReadOnlyAccess"}, "managed_policy_arns", "is not a managed policy ARN"),
        ({"max_session_seconds": "3599"}, "max_session_seconds", "3600"),
        ({"max_session_seconds": "43201"}, "max_session_seconds", "43200"),
        ({"role_name": "Switchyard Buckets!"}, "role_name", "letters, digits"),
        ({"role_name": "SwitchyardEngineer"}, "role_name", "Another template"),
        ({"name": "engineer"}, "name", "Another template"),
        ({"console_color": "ff0000"}, "console_color", "Select a valid choice"),
        # IAM takes "=", AWS Extend Switch Roles cuts the name there: refused with the reason.
        ({"role_name": "Engineer=EU"}, "role_name", "AWS Extend Switch Roles"),
        ({"region": "Ireland"}, "region", "AWS Region code"),
    ],
)
def test_bad_templates_are_refused_under_their_field(
    manager: User, signed_in: SignedIn, overrides: dict[str, Any], field: str, message: str
) -> None:
    response = reauthenticated(signed_in(manager), manager).post(reverse("roletemplates:new"), _form(**overrides))

    assert response.status_code == 400
    assert message in _errors_under(response.content.decode(), field)
    assert not RoleTemplate.objects.filter(name__in=["Bucket lister", "engineer"]).exclude(pk__lte=3).exists()
    assert not AuditEvent.objects.exists()


def test_a_policy_with_warnings_needs_an_explicit_i_understand(manager: User, signed_in: SignedIn) -> None:
    http = reauthenticated(signed_in(manager), manager)

    # when a manager saves a full-admin custom policy without acknowledging
    first = http.post(reverse("roletemplates:new"), _form(custom_policy=json.dumps(FULL_ADMIN)))

    # then the warning is shown, the acknowledgement asked for, and nothing saved
    html = first.content.decode()
    assert first.status_code == 400
    assert "full administrator access" in html
    assert "tick this box" in _errors_under(html, "acknowledge_warnings")
    assert not RoleTemplate.objects.filter(name="Bucket lister").exists()

    # and once acknowledged, it is saved
    second = http.post(reverse("roletemplates:new"),
                       _form(custom_policy=json.dumps(FULL_ADMIN), acknowledge_warnings="on"))
    assert second.status_code == 302
    assert RoleTemplate.objects.get(name="Bucket lister").custom_policy == FULL_ADMIN


def test_editing_a_template_bumps_its_revision_and_audits_the_changes(manager: User, signed_in: SignedIn) -> None:
    template = RoleTemplate.objects.get(role_name="SwitchyardEngineer")
    http = reauthenticated(signed_in(manager), manager)
    unchanged = {
        "name": template.name, "tier": template.tier, "role_name": template.role_name,
        "description": template.description, "managed_policy_arns": "\n".join(template.managed_policy_arns),
        "custom_policy": "", "require_mfa": "on", "max_session_seconds": str(template.max_session_seconds),
        "console_color": template.console_color, "is_active": "on",
    }
    url = reverse("roletemplates:edit", kwargs={"template_id": template.pk})

    # when the form is saved as it is, then with a longer session
    assert http.get(url).status_code == 200
    http.post(url, unchanged)
    same = RoleTemplate.objects.get(pk=template.pk)
    http.post(url, {**unchanged, "max_session_seconds": "28800"})
    changed = RoleTemplate.objects.get(pk=template.pk)

    # then only the real change raised the revision and was audited
    assert same.revision == template.revision
    assert (changed.revision, changed.max_session_seconds) == (template.revision + 1, 28800)
    event = AuditEvent.objects.get(action="role_template.updated")
    assert event.details["changes"] == {"max_session_seconds": {"from": 14400, "to": 28800}}
    assert event.details["revision"] == template.revision + 1
