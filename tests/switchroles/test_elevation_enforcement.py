"""An approved elevation reaches AWS and leaves it (moto in-process, time moved forward): the
engineer's IAM user in the main account is allowed the Administrator role of the one account while
the elevation lasts, and not after it expires or is ended; the audit log and the client's log say so."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from elevations import services as elevations
from elevations.models import ApprovalPolicy, ClientContact, ElevationRequest
from elevations.selectors import client_log_rows
from elevations.tasks import elevations_expire
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from switchroles import services
from switchroles.models import AccountRole
from switchroles.tasks import record_grant_expiries
from tests.conftest import MakePerson
from tests.onboarding.handback_support import main_account_allowed

from .conftest import Estate, iam_user_create, tier

pytestmark = pytest.mark.django_db


def _setting_up(estate: Estate, manager: User, engineer: User, make_person: MakePerson) -> tuple[Any, User]:
    acme = estate.client_with_roles("Acme Retail")
    iam_user_create(engineer)
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="run it")
    Group.objects.get_or_create(name="ClientContact")
    contact = make_person("carla", "ClientContact", iam_username="")
    ClientContact.objects.create(user=contact, client=acme, invited_by=manager, invited_at=timezone.now())
    elevations.approval_policy_set(client=acme, approvers=ApprovalPolicy.Approvers.CONTACT, updated_by=manager)
    return acme, contact


def test_an_elevation_reaches_aws_and_leaves_it_at_expiry(
    estate: Estate, manager: User, engineer: User, make_person: MakePerson, aws: Boto3ClientFactory,
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # Given an engineer of Acme's platform team, and Acme's contact approving elevations
    with django_capture_on_commit_callbacks(execute=True):
        acme, contact = _setting_up(estate, manager, engineer, make_person)
    admin_role = AccountRole.objects.get(account__client=acme, template__tier="administrator")
    assert admin_role.arn not in main_account_allowed(aws, "user", engineer.iam_username)

    # When the engineer asks for Administrator for 5 minutes and the contact approves
    with django_capture_on_commit_callbacks(execute=True):
        request = elevations.elevation_request(requester=engineer, account=admin_role.account,
                                               template=admin_role.template, duration=5, reason="INC-5")
    with django_capture_on_commit_callbacks(execute=True):
        elevations.elevation_decide(request=request, decider=contact, approve=True, reason="go ahead")

    # Then the main account lets the engineer's IAM user assume exactly that role
    assert main_account_allowed(aws, "user", engineer.iam_username) == {admin_role.arn}

    # When six minutes pass and beat's every-minute tasks run
    later = timezone.now() + timedelta(minutes=6)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with django_capture_on_commit_callbacks(execute=True):
        record_grant_expiries.delay()
    with django_capture_on_commit_callbacks(execute=True):
        elevations_expire.delay()

    # Then AWS no longer allows it, the request says it ran its time, and the logs tell the story
    assert main_account_allowed(aws, "user", engineer.iam_username) == set()
    request.refresh_from_db()
    assert request.state == ElevationRequest.State.EXPIRED
    actions = list(AuditEvent.objects.filter(target_type="elevations.elevationrequest", target_id=str(request.pk))
                   .order_by("sequence").values_list("action", flat=True))
    assert actions == ["elevation.requested", "elevation.approvers_notified", "elevation.decided",
                       "elevation.approved", "elevation.expired"]
    assert AuditEvent.objects.filter(action="grant.expired", target_id=str(request.grant_id)).exists()
    whats = [row[1] for row in client_log_rows(client=acme)][1:]
    assert whats == ["ran its time", "approved", "elevation requested"]


def test_ending_an_elevation_early_takes_it_out_of_aws(
    estate: Estate, manager: User, engineer: User, make_person: MakePerson, aws: Boto3ClientFactory,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        acme, contact = _setting_up(estate, manager, engineer, make_person)
    admin_role = AccountRole.objects.get(account__client=acme, template__tier="administrator")
    with django_capture_on_commit_callbacks(execute=True):
        request = elevations.elevation_request(requester=engineer, account=admin_role.account,
                                               template=admin_role.template, duration=60, reason="INC-6")
        elevations.elevation_decide(request=request, decider=contact, approve=True, reason="")
    assert main_account_allowed(aws, "user", engineer.iam_username) == {admin_role.arn}

    with django_capture_on_commit_callbacks(execute=True):
        elevations.elevation_end(request=request, ended_by=engineer)

    assert main_account_allowed(aws, "user", engineer.iam_username) == set()
