"""Expired grants, with time moved forward: gone from the directory at once; the beat task records
each expiry once (audit ``grant.expired``) and the main account's policy follows (moto) — the
directory, AWS and the audit log agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles import services
from switchroles.models import AccountRole, Grant, Team
from switchroles.selectors import links_for_person
from switchroles.tasks import record_grant_expiries
from tests.onboarding.handback_support import main_account_allowed

from .conftest import Estate, iam_user_create, tier

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(manager: User, engineer: User, aws: Boto3ClientFactory) -> Team:
    iam_user_create(engineer)
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    return team


def _move_time_to(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    monkeypatch.setattr(timezone, "now", lambda: moment)


def test_an_expired_grant_leaves_the_directory_aws_and_the_audit_log_in_agreement(
    estate: Estate, manager: User, engineer: User, team: Team, aws: Boto3ClientFactory,
    signed_in: Callable[[User], HttpClient], monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given the team granted Engineer on Acme for one hour, enforced in AWS
    acme = estate.client_with_roles("Acme Retail", accounts=2)
    start = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        grant = services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")],
                                      reason="incident", expires_at=start + timedelta(hours=1))
    granted = AccountRole.objects.filter(account__client=acme, template__tier="engineer")
    arns = set(granted.values_list("arn", flat=True))
    assert {role.arn for role in links_for_person(person=engineer)} == arns
    assert main_account_allowed(aws, "group", "platform-engineers") == arns
    http = signed_in(engineer)
    names = set(AccountRole.objects.filter(arn__in=arns).values_list("display_name", flat=True))
    before = http.get(reverse("switchroles:directory")).content.decode()
    assert all(name in before for name in names)

    # when two hours pass
    later = start + timedelta(hours=2)
    _move_time_to(monkeypatch, later)

    # then the links are gone from the directory at once, before any task ran
    assert list(links_for_person(person=engineer)) == []
    page = http.get(reverse("switchroles:directory")).content.decode()
    assert not any(name in page for name in names)

    # when the beat task runs (twice, as beat will)
    with django_capture_on_commit_callbacks(execute=True):
        record_grant_expiries.delay()
    with django_capture_on_commit_callbacks(execute=True):
        record_grant_expiries.delay()

    # then AWS no longer allows the roles, the expiry was recorded once, and the grant row is kept
    assert main_account_allowed(aws, "group", "platform-engineers") == set()
    [event] = AuditEvent.objects.filter(action="grant.expired")
    assert event.target_id == str(grant.pk) and event.occurred_at == later
    assert event.details["expires_at"] == (start + timedelta(hours=1)).isoformat()
    grant.refresh_from_db()
    assert (grant.expiry_recorded_at, grant.revoked_at) == (later, None)
    assert Grant.objects.filter(pk=grant.pk).exists()


def test_a_grant_revoked_before_it_would_have_expired_never_expires(
    estate: Estate, manager: User, team: Team, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a grant revoked while it was still in force, and one that has not expired yet
    acme = estate.client_with_roles("Acme Retail")
    start = timezone.now()
    revoked = services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("oncall")],
                                    reason="x", expires_at=start + timedelta(hours=1))
    services.grant_revoke(grant=revoked, revoked_by=manager, reason="no longer needed")
    still = services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")],
                                  reason="y", expires_at=start + timedelta(days=1))

    # when time passes the first expiry and the expiries are recorded
    _move_time_to(monkeypatch, start + timedelta(hours=2))
    recorded = services.grant_expiries_record()

    # then nothing is recorded as expired: one was revoked first, the other is still in force
    assert recorded == []
    assert not AuditEvent.objects.filter(action="grant.expired").exists()
    assert Grant.objects.filter(pk__in=[revoked.pk, still.pk], expiry_recorded_at__isnull=False).count() == 0
