"""A leaver, with real processes: a Celery worker and beat on a broker, a moto server as the main
account, the portal on a live server. One manager action; AWS, the engineer's session and the
audit log say they are gone within a minute."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from portal.api.tokens import api_token_create
from portal.aws import PERSON_TAG_KEY
from portal.models import AuditEvent
from switchroles import services
from switchroles.models import Departure
from tests.conftest import MakePerson
from tests.e2e.processes import BIN, ROOT, WorkerPool, celery_app_using, moto_server, redis_broker, wait_until
from tests.switchroles.conftest import Estate, reauthenticated, tier

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def processes(tmp_path: Path, settings: Any) -> Iterator[tuple[WorkerPool, Any]]:
    with moto_server() as endpoint, redis_broker() as broker, celery_app_using(broker):
        settings.AWS_ENDPOINT_URL = endpoint
        pool = WorkerPool(broker_url=broker, aws_endpoint=endpoint, log_dir=tmp_path)
        beat_log = open(tmp_path / "beat.log", "wb")  # noqa: SIM115
        beat = subprocess.Popen(  # noqa: S603
            [str(BIN / "celery"), "-A", "portal", "beat", "--loglevel=INFO"],
            cwd=ROOT, env=pool.env(), stdout=beat_log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            pool.start(concurrency=2)
            yield pool, boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                                     aws_access_key_id="testing", aws_secret_access_key="testing")
        finally:
            beat.terminate()
            beat.wait(timeout=15)
            beat_log.close()
            pool.stop_all()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def status_with_cookie(url: str, session_cookie: str) -> tuple[int, str]:
    """What the live server answers a browser holding only this session cookie (redirects not followed)."""
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={session_cookie}"})  # noqa: S310
    try:
        with urllib.request.build_opener(_NoRedirects).open(request, timeout=10) as response:
            return response.status, ""
    except urllib.error.HTTPError as redirect:
        return redirect.code, redirect.headers.get("Location", "")


def status_with_token(url: str, token: str) -> int:
    """What the live server answers an API call with only this bearer token."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def switchyard_on(iam: Any, user_name: str) -> dict[str, list[str]]:
    return {
        "groups": [g["GroupName"] for g in iam.list_groups_for_user(UserName=user_name)["Groups"]],
        "policies": [p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user_name)["AttachedPolicies"]
                     if ":policy/switchyard/" in p["PolicyArn"]],
        "tags": [t["Key"] for t in iam.list_user_tags(UserName=user_name)["Tags"] if t["Key"].startswith("switchyard")],
    }


def test_a_leaver_is_gone_from_aws_the_portal_and_their_browser_within_a_minute(
    processes: tuple[WorkerPool, Any], live_server: Any, make_person: MakePerson, manager: Any,
) -> None:
    pool, iam = processes
    # given an engineer whose IAM user Switchyard tagged, in a team granted on Acme, and granted
    # personally, with the worker having written both to the main account
    engineer = make_person("eli", "Engineer")
    iam.create_user(UserName="eli")
    iam.tag_user(UserName="eli", Tags=[{"Key": PERSON_TAG_KEY, "Value": "eli"}])
    acme = Estate().client_with_roles("Acme Retail")
    team = services.team_create(name="Platform", iam_group_name="platform-engineers", created_by=manager)
    services.team_member_add(team=team, person=engineer, added_by=manager)
    services.grant_create(granted_by=manager, team=team, client=acme, templates=[tier("engineer")], reason="ops")
    services.grant_create(granted_by=manager, person=engineer, client=acme, templates=[tier("administrator")],
                          reason="lead")
    wait_until(lambda: (on := switchyard_on(iam, "eli"))["groups"] and on["policies"], timeout=60,
               what=f"the worker to enforce the grants\n{pool.logs()}")
    # and signed in to the portal in their browser
    their_browser = HttpClient()
    their_browser.force_login(engineer, backend="django.contrib.auth.backends.ModelBackend")
    cookie = their_browser.cookies["sessionid"].value
    assert status_with_cookie(f"{live_server.url}/links/", cookie) == (200, "")
    # and holding an API token that works
    token = api_token_create(owner=engineer, name="laptop script", scope="read-write", lifetime_days=30).secret
    assert status_with_token(f"{live_server.url}/api/v1/me", token) == 200

    # when a manager confirms the leaver action
    started = time.monotonic()
    manager_browser = HttpClient()
    manager_browser.force_login(manager, backend="django.contrib.auth.backends.ModelBackend")
    answer = reauthenticated(manager_browser, manager).post(
        reverse("switchroles:person_leave", args=[engineer.pk]), {"reason": "Last day today"})
    assert answer.status_code == 302

    # then within 60 s their IAM user is in no Switchyard group and has no Switchyard policy or tag (moto)
    wait_until(lambda: switchyard_on(iam, "eli") == {"groups": [], "policies": [], "tags": []}, timeout=60,
               what=f"AWS to be clean\n{pool.logs()}")
    elapsed = time.monotonic() - started
    wait_until(lambda: Departure.objects.filter(aws_state=Departure.AwsState.VERIFIED).exists(), timeout=60,
               what=f"the departure to be verified\n{pool.logs()}")
    assert elapsed < 60
    # and their session cookie answers as signed out
    status, location = status_with_cookie(f"{live_server.url}/links/", cookie)
    assert status == 302 and location.startswith("/accounts/login/")
    # and their API token answers as signed out
    assert status_with_token(f"{live_server.url}/api/v1/me", token) == 401
    # and the audit log has the leaver event with what was removed
    left = AuditEvent.objects.get(action="person.left", target_id=str(engineer.pk))
    assert left.actor == manager and left.details["deactivated"] is True
    assert "laptop script" in str(left.details["removed"]["api_tokens"])
    assert left.details["removed"]["teams"] == ["team Platform (IAM group platform-engineers)"]
    assert len(left.details["removed"]["grants"]) == 1 and left.details["removed"]["sessions"]
    print(f"leaver clean in AWS after {elapsed:.1f} s")  # noqa: T201
