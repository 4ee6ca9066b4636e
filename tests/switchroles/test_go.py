"""/go/<id>/: checks the grant again, records the use, redirects only to the console's Switch Role URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from portal.audit import audit_verify_chain
from portal.audit.models import AuditEvent
from switchroles import services
from switchroles.links import switch_role_url
from switchroles.models import AccountRole, LinkUse

from .conftest import Estate, tier

SignedIn = Callable[[Any], HttpClient]


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


@pytest.fixture
def granted_role(estate: Estate, manager: Any, engineer: Any) -> AccountRole:
    acme = estate.client_with_roles("Acme Retail", tiers=("engineer",))
    services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("engineer")],
                          reason="runs Acme")
    return AccountRole.objects.get(account__client=acme)


def test_go_redirects_to_the_exact_switch_role_url(granted_role: AccountRole, engineer: Any,
                                                   signed_in: SignedIn) -> None:
    # when the engineer follows the link
    response = signed_in(engineer).get(reverse("switchroles:go", args=[granted_role.pk]))
    # then the browser is sent to the URL built from the role's fields, on signin.aws.amazon.com
    expected = switch_role_url(
        account_id=granted_role.account.account_id or "", role_path=granted_role.role_path,
        role_name=granted_role.role_name, display_name=granted_role.display_name, color=granted_role.color,
    )
    assert response.status_code == 302
    assert response["Location"] == expected
    parts = urlsplit(response["Location"])
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "signin.aws.amazon.com", "/switchrole")
    assert parse_qs(parts.query)["roleName"] == ["switchyard/acme-retail/SwitchyardEngineer"]
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]


def test_go_records_the_use_with_person_role_time_and_address(
    granted_role: AccountRole, engineer: Any, signed_in: SignedIn
) -> None:
    # when the engineer follows the link from 203.0.113.9
    signed_in(engineer).get(reverse("switchroles:go", args=[granted_role.pk]), REMOTE_ADDR="203.0.113.9")
    # then one use is recorded, and one audit event says who, what, when and from where
    use = LinkUse.objects.get()
    assert (use.person, use.account_role, use.client_ip) == (engineer, granted_role, "203.0.113.9")
    assert use.grant is not None and use.grant.person == engineer
    event = AuditEvent.objects.get(action="link.used")
    assert event.actor == engineer and event.client_ip == "203.0.113.9"
    assert event.target_id == str(granted_role.pk) and event.occurred_at == use.used_at
    assert event.details["role_arn"] == (
        f"arn:aws:iam::{granted_role.account.account_id}:role/switchyard/acme-retail/SwitchyardEngineer"
    )
    assert audit_verify_chain().intact


@pytest.mark.parametrize("query", ["?next=https://evil.example/", "?url=//evil.example", "?redirect=/admin/"])
def test_go_ignores_redirect_parameters(granted_role: AccountRole, engineer: Any, signed_in: SignedIn,
                                        query: str) -> None:
    # when the link is followed with a parameter naming somewhere else
    response = signed_in(engineer).get(reverse("switchroles:go", args=[granted_role.pk]) + query)
    # then it still goes only to the console
    assert response["Location"].startswith("https://signin.aws.amazon.com/switchrole?")
    assert "evil" not in response["Location"] and "admin" not in response["Location"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role_name", "Bad Name"),
        ("role_path", "//signin.evil.example/"),
        ("display_name", "   "),
        ("color", "ff0000"),
        ("display_name", "Acme\u202egnp.exe"),
    ],
)
def test_invalid_stored_fields_are_refused_not_redirected(
    granted_role: AccountRole, engineer: Any, signed_in: SignedIn, field: str, value: str
) -> None:
    # given the role's stored fields were corrupted behind the forms' backs
    AccountRole.objects.filter(pk=granted_role.pk).update(**{field: value})
    # when the engineer follows the link
    response = signed_in(engineer).get(reverse("switchroles:go", args=[granted_role.pk]))
    # then a clear page refuses it, nothing redirects, and no use is recorded
    assert response.status_code == 409
    assert "Location" not in response
    assert b"cannot be opened" in response.content
    assert not LinkUse.objects.exists()


def test_go_accepts_only_get(granted_role: AccountRole, engineer: Any, signed_in: SignedIn) -> None:
    response = signed_in(engineer).post(reverse("switchroles:go", args=[granted_role.pk]))
    assert response.status_code == 405
    assert not LinkUse.objects.exists()
