"""Template changes roll out (moto): editing a role template re-provisions its role in every
account that has it, through the workers, with progress on the template's pages; a failure is
listed in plain words and retried by a manager."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from onboarding.models import AwsAccount
from portal import steps as steps_module
from portal.audit.models import AuditEvent
from portal.aws import AwsError, Boto3ClientFactory
from portal.people.models import User
from switchroles import provisioning, rollout
from switchroles.models import AccountRole, RoleTemplate, RolloutAccount, TemplateRollout
from switchroles.template_services import role_template_update
from tests.onboarding.conftest import mocked_organization, request_account
from tests.onboarding.handback_support import member_iam, onboard
from tests.switchroles.conftest import reauthenticated

__all__ = ["request_account"]  # the onboarding fixture, used here

pytestmark = pytest.mark.django_db

Status = RolloutAccount.Status
SignedIn = Callable[[User], HttpClient]
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
SUPPORT = "arn:aws:iam::aws:policy/AWSSupportAccess"


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    yield from mocked_organization(monkeypatch, settings, managed_policies=True)


@pytest.fixture
def on_call() -> RoleTemplate:
    return RoleTemplate.objects.get(role_name="SwitchyardOnCall")


def _attached(org: Boto3ClientFactory, account: AwsAccount, name: str) -> set[str]:
    iam = member_iam(org, account.account_id or "")
    return {p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]}


def test_editing_a_template_reprovisions_its_role_in_every_account_through_the_workers(
    org: Boto3ClientFactory, request_account: Any, manager: User, on_call: RoleTemplate, signed_in: SignedIn,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given two accounts with the On-call role, and one without it
    first = onboard(request_account, org, name="production")
    second = onboard(request_account, org, client=first.client, name="staging")
    other = onboard(request_account, org, client=first.client, name="tools", role_names=("SwitchyardEngineer",))
    assert _attached(org, first, "SwitchyardOnCall") == {READ_ONLY, SUPPORT}

    # when a manager drops the support policy and shortens the session (the workers run on commit)
    with django_capture_on_commit_callbacks(execute=True):
        role_template_update(template=on_call, actor=manager, managed_policy_arns=[READ_ONLY],
                             max_session_seconds=3600)

    # then both accounts' roles are the new revision in AWS, and recorded as such
    on_call.refresh_from_db()
    for account in (first, second):
        assert _attached(org, account, "SwitchyardOnCall") == {READ_ONLY}
        iam = member_iam(org, account.account_id or "")
        assert iam.get_role(RoleName="SwitchyardOnCall")["Role"]["MaxSessionDuration"] == 3600
        assert AccountRole.objects.get(account=account, template=on_call).provisioned_revision == on_call.revision
    assert not AccountRole.objects.filter(account=other, template=on_call).exists()
    # and the template's page says 2 of 2 accounts done; each is audited
    progress = rollout.rollout_progress(template=on_call)
    assert progress is not None and (progress.done, progress.total, progress.failed) == (2, 2, [])
    http = reauthenticated(signed_in(manager), manager)
    page = http.get(reverse("roletemplates:edit", args=[on_call.pk])).content.decode()
    assert "2 of 2 accounts done" in page
    assert AuditEvent.objects.filter(action="role_template.rollout_account.succeeded").count() == 2
    assert AuditEvent.objects.get(action="role_template.rollout_started").details["accounts"] == 2


def test_a_failed_account_is_listed_in_plain_words_and_a_manager_retries_it(
    org: Boto3ClientFactory, request_account: Any, manager: User, on_call: RoleTemplate, signed_in: SignedIn,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given an account whose On-call role someone took over (tag removed) and changed
    account = onboard(request_account, org)
    iam = member_iam(org, account.account_id or "")
    iam.untag_role(RoleName="SwitchyardOnCall", TagKeys=["managed-by"])
    iam.update_role(RoleName="SwitchyardOnCall", MaxSessionDuration=7200)

    # when the template changes and rolls out
    with django_capture_on_commit_callbacks(execute=True):
        role_template_update(template=on_call, actor=manager, max_session_seconds=3600)

    # then that account failed: Switchyard does not change a role that is not its own, and says so
    part = RolloutAccount.objects.get()
    assert (part.status, part.last_error_code) == (Status.FAILED, "RoleConflict")
    assert "was not created by Switchyard" in part.last_error_message
    http = reauthenticated(signed_in(manager), manager)
    page = http.get(reverse("switchroles:template_rollout", args=[on_call.pk])).content.decode()
    assert "0 of 1 account done" in page and "1 failed" in page and "RoleConflict" in page
    retry_url = reverse("switchroles:rollout_account_retry", args=[on_call.pk, part.pk])
    assert retry_url in page

    # when the client gives the role back and a manager retries that account
    iam.tag_role(RoleName="SwitchyardOnCall", Tags=[{"Key": "managed-by", "Value": "switchyard"}])
    with django_capture_on_commit_callbacks(execute=True):
        assert http.post(retry_url).status_code == 302

    # then it is done, at the new revision
    part.refresh_from_db()
    assert part.status == Status.SUCCEEDED and part.outcome == "updated"
    assert iam.get_role(RoleName="SwitchyardOnCall")["Role"]["MaxSessionDuration"] == 3600
    assert AuditEvent.objects.filter(action="role_template.rollout_account.retried").count() == 1


def test_an_account_that_reaches_the_role_at_an_older_revision_is_added_by_the_reconciler(
    org: Boto3ClientFactory, request_account: Any, manager: User, on_call: RoleTemplate,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a roll-out that found no account, then an account onboarded at the old revision
    role_template_update(template=on_call, actor=manager, max_session_seconds=7200)
    account = onboard(request_account, org)
    AccountRole.objects.filter(account=account, template=on_call).update(provisioned_revision=1)

    # when the reconciler runs (beat)
    with django_capture_on_commit_callbacks(execute=True):
        queued = rollout.rollout_reconcile()

    # then the account joined the roll-out and got the current revision
    part = RolloutAccount.objects.get(account_role__account=account)
    assert queued == [part.pk] and part.status == Status.SUCCEEDED
    on_call.refresh_from_db()
    assert AccountRole.objects.get(account=account, template=on_call).provisioned_revision == on_call.revision


def test_the_reconciler_redrives_a_part_whose_worker_died(org: Boto3ClientFactory, request_account: Any,
                                                          manager: User, on_call: RoleTemplate) -> None:
    # given a roll-out whose part was leased by a worker that died (lease ran out)
    account = onboard(request_account, org)
    role_template_update(template=on_call, actor=manager, max_session_seconds=7200)
    part = RolloutAccount.objects.get()
    RolloutAccount.objects.filter(pk=part.pk).update(status=Status.RUNNING, attempts=1,
                                                     lease_expires_at=timezone.now() - timedelta(seconds=1))

    # when the reconciler runs, then it queues the part, and a worker finishes it
    assert rollout.rollout_reconcile() == [part.pk]
    assert rollout.rollout_account_advance(part_id=part.pk, clients=org) == Status.SUCCEEDED
    assert rollout.rollout_account_advance(part_id=part.pk, clients=org) == "idle"
    assert member_iam(org, account.account_id or "").get_role(
        RoleName="SwitchyardOnCall")["Role"]["MaxSessionDuration"] == 7200
    assert TemplateRollout.objects.get().finished_at is not None


def test_a_second_edit_supersedes_what_the_first_roll_out_had_not_done(
    org: Boto3ClientFactory, request_account: Any, manager: User, on_call: RoleTemplate,
) -> None:
    # given a roll-out not yet carried out (no worker ran)
    onboard(request_account, org)
    role_template_update(template=on_call, actor=manager, max_session_seconds=7200)
    first = RolloutAccount.objects.get()

    # when the template is edited again
    role_template_update(template=on_call, actor=manager, max_session_seconds=10800)

    # then the first part is superseded and the new roll-out covers the account
    first.refresh_from_db()
    assert first.status == Status.CANCELLED and "Superseded by revision 3" in first.note
    latest = rollout.rollout_progress(template=on_call)
    assert latest is not None and (latest.rollout.revision, latest.total, latest.done) == (3, 1, 0)


def test_a_throttled_account_is_retried_with_backoff_then_shown_to_a_person_once_the_tries_are_used_up(
    org: Boto3ClientFactory, request_account: Any, manager: User, on_call: RoleTemplate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a roll-out part and an IAM that throttles every write to the account's role
    onboard(request_account, org)
    role_template_update(template=on_call, actor=manager, max_session_seconds=7200)
    part = RolloutAccount.objects.get()

    def throttled(**kwargs: Any) -> Any:
        raise AwsError("Throttling", "Rate exceeded", "AWS is throttling requests; Switchyard retries.", True)

    monkeypatch.setattr(provisioning.aws, "ensure_role", throttled)

    # when a worker runs it
    before = timezone.now()
    with pytest.raises(AwsError):
        rollout.rollout_account_advance(part_id=part.pk, clients=org)

    # then the part is back to pending, due after the first backoff, with AWS's code kept
    part.refresh_from_db()
    assert (part.status, part.attempts, part.last_error_code) == (Status.PENDING, 1, "Throttling")
    assert part.next_run_at is not None and part.next_run_at >= before + timedelta(seconds=30)

    # when it is still throttled on the last allowed try
    RolloutAccount.objects.filter(pk=part.pk).update(attempts=rollout.MAX_ATTEMPTS - 1)
    assert rollout.rollout_account_advance(part_id=part.pk, clients=org) == Status.FAILED

    # then it failed for a person, saying Switchyard stopped retrying, and the failure is audited
    part.refresh_from_db()
    assert (part.status, part.last_error_code) == (Status.FAILED, "Throttling")
    assert f"AWS failed {rollout.MAX_ATTEMPTS} times in a row" in part.last_error_message
    assert AuditEvent.objects.filter(action="role_template.rollout_account.failed").count() == 1


def test_a_roll_out_runs_on_a_bounded_number_of_work_tasks_that_carry_every_account(
    org: Boto3ClientFactory, request_account: Any, manager: User, on_call: RoleTemplate, settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given three accounts with the On-call role, a roll-out concurrency of two, and an IAM that
    # throttles the first account's role once
    first = onboard(request_account, org, name="production")
    for name in ("staging", "tools"):
        onboard(request_account, org, client=first.client, name=name)
    settings.SWITCHYARD_ROLLOUT_CONCURRENCY = 2
    sent: list[tuple[str, tuple[Any, ...], int]] = []
    monkeypatch.setattr(steps_module, "enqueue_on_commit",
                        lambda task, *args, copies=1, countdown=0: sent.append((task, args, copies)))
    ensure_role = provisioning.aws.ensure_role
    throttled: list[str] = []

    def throttled_once(**kwargs: Any) -> Any:
        if not throttled:
            throttled.append(kwargs["spec"].name)
            raise AwsError("Throttling", "Rate exceeded", "AWS is throttling requests; Switchyard retries.", True)
        return ensure_role(**kwargs)

    monkeypatch.setattr(provisioning.aws, "ensure_role", throttled_once)

    # when the template changes
    role_template_update(template=on_call, actor=manager, max_session_seconds=7200)

    # then two work tasks are asked for, not one task per account
    started = TemplateRollout.objects.get()
    assert sent == [(rollout.ROLLOUT_WORK_TASK, (started.pk,), 2)]

    # when one work task runs: the throttled account is given back with its backoff, the others done
    worked = rollout.rollout_work(rollout_id=started.pk, clients=org)
    assert (worked.checked, worked.finished) == (2, False)
    assert worked.retry_in is not None and worked.retry_in >= 30
    assert RolloutAccount.objects.filter(status=Status.PENDING, last_error_code="Throttling").count() == 1

    # and once its backoff is over, a work task finishes the roll-out
    RolloutAccount.objects.filter(status=Status.PENDING).update(next_run_at=timezone.now())
    worked = rollout.rollout_work(rollout_id=started.pk, clients=org)
    assert (worked.checked, worked.finished) == (1, True)
    assert set(RolloutAccount.objects.values_list("status", flat=True)) == {Status.SUCCEEDED}
    started.refresh_from_db()
    assert started.finished_at is not None
