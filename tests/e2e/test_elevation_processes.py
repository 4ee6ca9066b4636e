"""Real processes: a Celery worker and beat on the test database, a moto server as AWS, a real
broker. An engineer asks for Administrator on one account for one minute; the client contact
approves; the main-account policy of the engineer's IAM user allows that role's ARN within 60 s;
at expiry beat's every-minute tasks take it away again within 60 s; the audit log and the
client's log tell the whole story."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from elevations import services as elevations
from elevations.models import ApprovalPolicy, ClientContact, ElevationRequest
from elevations.selectors import client_log_rows
from onboarding.models import AwsAccount, Client
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from switchroles.models import AccountRole, RoleTemplate
from tests.conftest import MakePerson
from tests.e2e.processes import BIN, ROOT, WorkerPool, celery_app_using, moto_server, redis_broker, wait_until
from tests.onboarding.handback_support import main_account_allowed

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[tuple[WorkerPool, str]]:
    with moto_server() as endpoint, redis_broker() as broker, celery_app_using(broker):
        pool = WorkerPool(broker_url=broker, aws_endpoint=endpoint, log_dir=tmp_path)
        beat_log = open(tmp_path / "worker-beat-0.log", "wb")  # noqa: SIM115 (named so pool.logs() shows it)
        beat = subprocess.Popen(  # noqa: S603
            [str(BIN / "celery"), "-A", "portal", "beat", "--loglevel=INFO"],
            cwd=ROOT, env=pool.env(), stdout=beat_log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            pool.start(concurrency=1)
            yield pool, endpoint
        finally:
            os.killpg(beat.pid, signal.SIGTERM)
            beat.wait(timeout=15)
            pool.stop_all()


def test_an_approved_elevation_reaches_aws_and_leaves_it_at_expiry(
    processes: tuple[WorkerPool, str], make_person: MakePerson
) -> None:
    pool, endpoint = processes
    aws = Boto3ClientFactory(endpoint_url=endpoint)
    # Given Acme's production account with an Administrator role, an engineer with an IAM user in
    # the main account, and Acme's contact approving elevations
    manager = make_person("morgan", "Manager")
    engineer = make_person("eli", "Engineer", iam_username="eli.engineer")
    boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1").create_user(UserName="eli.engineer")
    Group.objects.get_or_create(name="ClientContact")
    contact = make_person("carla", "ClientContact", iam_username="")
    acme = Client.objects.create(name="Acme Retail", slug="acme")
    ClientContact.objects.create(user=contact, client=acme, invited_by=manager, invited_at=timezone.now())
    account = AwsAccount.objects.create(client=acme, name="Production", account_id="210987654321",
                                        root_email="awsaccounts+acme@example.com", reason="test",
                                        origin=AwsAccount.Origin.CREATED, state=AwsAccount.State.ACTIVE)
    administrator = RoleTemplate.objects.get(tier="administrator")
    role = AccountRole.objects.create(
        account=account, template=administrator, role_path="/switchyard/acme/", role_name=administrator.role_name,
        arn=f"arn:aws:iam::210987654321:role/switchyard/acme/{administrator.role_name}",
        state=AccountRole.State.ACTIVE, display_name="Acme / Production / Administrator",
        color=administrator.console_color, activated_at=timezone.now(),
    )
    elevations.approval_policy_set(client=acme, approvers=ApprovalPolicy.Approvers.CONTACT, updated_by=manager)

    # When the engineer asks for one minute of Administrator and the contact approves
    request = elevations.elevation_request(requester=engineer, account=account, template=administrator,
                                           duration=1, reason="INC-900 restore")
    approved_at = time.monotonic()
    elevations.elevation_decide(request=request, decider=contact, approve=True, reason="go")

    # Then within 60 s the main account lets the engineer's IAM user assume exactly that role
    try:
        wait_until(lambda: main_account_allowed(aws, "user", "eli.engineer") == {role.arn}, timeout=60,
                   interval=1, what="the policy to allow the role")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{pool.logs()}") from exc
    assert time.monotonic() - approved_at < 60

    # When the minute is over, then within 60 s more the role is no longer allowed (beat's tasks)
    request.refresh_from_db()
    expires_at = request.grant.expires_at  # type: ignore[union-attr]
    wait_until(lambda: timezone.now() >= expires_at, timeout=70, interval=0.5, what="the expiry")
    try:
        wait_until(lambda: main_account_allowed(aws, "user", "eli.engineer") == set(), timeout=60,
                   interval=1, what="the policy to forget the role")
        wait_until(lambda: ElevationRequest.objects.get(pk=request.pk).state == ElevationRequest.State.EXPIRED,
                   timeout=60, interval=1, what="the request to be marked expired")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\n{pool.logs()}") from exc

    # And the audit log and the client's log tell the whole story
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"elevation.requested", "elevation.approved", "grant.created", "grant.expired",
            "elevation.expired"} <= actions
    assert [row[1] for row in client_log_rows(client=acme)][1:] == ["ran its time", "approved", "elevation requested"]
