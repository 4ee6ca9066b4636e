"""The daily root-posture check fanned out per account (onboarding.root_services.ROOT_POSTURE on
portal.operations.fan_out), against moto with the sandbox's root-access extension: one part per
account due, each account checked and recorded once, a dead worker's account taken over after its
lease, and the progress on the drift page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from onboarding import root_services
from onboarding.models import AwsAccount, RootPosture, RootPostureRun, RootPostureRunAccount
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from portal.operations import fan_out
from portal.people.models import User
from tests.onboarding.conftest import CountingClients
from tests.onboarding.test_root_moto import active_account, enable_features

pytestmark = pytest.mark.django_db

Part = RootPostureRunAccount.Status


def _accounts(count: int) -> list[AwsAccount]:
    return [active_account(name=f"production {i}") for i in range(count)]


def test_the_daily_check_makes_one_part_per_account_due_and_sends_no_root_session_itself(
    org: Boto3ClientFactory, django_capture_on_commit_callbacks: Any,
) -> None:
    # given three active accounts never looked at, one handed back, and the features on
    accounts = _accounts(3)
    AwsAccount.objects.filter(pk=active_account(name="gone").pk).update(state=AwsAccount.State.HANDED_BACK)
    enable_features()
    counting = CountingClients(org)

    # when the beat's job runs (the work messages held back)
    with django_capture_on_commit_callbacks(execute=False):
        due = root_services.root_posture_check_due(clients=counting)

    # then one run has exactly one waiting part per active account, and no AssumeRoot was sent yet
    assert due == [a.pk for a in accounts]
    run = RootPostureRun.objects.get()
    assert sorted(RootPostureRunAccount.objects.filter(run=run).values_list("account_id", flat=True)) == due
    assert set(RootPostureRunAccount.objects.filter(run=run).values_list("status", flat=True)) == {Part.PENDING}
    assert run.accounts_total == 3
    assert "AssumeRoot" not in counting.operations


def test_a_second_beat_while_a_run_is_unfinished_does_not_check_its_accounts_twice(
    org: Boto3ClientFactory, django_capture_on_commit_callbacks: Any,
) -> None:
    # given a run over two accounts nobody has worked on yet
    _accounts(2)
    enable_features()
    with django_capture_on_commit_callbacks(execute=False):
        root_services.root_posture_check_due(clients=org)

    # when the beat runs again
    with django_capture_on_commit_callbacks(execute=False):
        root_services.root_posture_check_due(clients=org)

    # then there is still one run, with one part per account
    assert RootPostureRun.objects.count() == 1
    assert RootPostureRunAccount.objects.count() == 2


def test_every_account_is_checked_and_recorded_once_and_the_run_finishes(org: Boto3ClientFactory) -> None:
    # given a run over three accounts, one of which joined with a root password
    accounts = _accounts(3)
    enable_features()
    run = fan_out.fan_out_start(root_services.ROOT_POSTURE, account_ids=[a.pk for a in accounts], concurrency=2)
    counting = CountingClients(org)

    # when a worker works through it
    worked = root_services.root_posture_run_work(run_id=run.pk, clients=counting)

    # then each account's posture is known, one root session each, and the run is finished
    assert (worked.checked, worked.finished) == (3, True)
    assert counting.operations.count("AssumeRoot") == 3
    assert RootPosture.objects.filter(account__in=accounts, checked_at__isnull=False).count() == 3
    assert AuditEvent.objects.filter(action="onboarding.root.posture_changed").count() == 3
    run.refresh_from_db()
    assert run.finished_at is not None
    assert str(fan_out.fan_out_progress(root_services.ROOT_POSTURE, run=run)) == "3 of 3 accounts checked"


def test_a_dead_workers_account_is_taken_over_after_its_lease_and_checked_once(org: Boto3ClientFactory) -> None:
    # given a run of two accounts, one of them claimed by a worker that then died
    accounts = _accounts(2)
    enable_features()
    run = fan_out.fan_out_start(root_services.ROOT_POSTURE, account_ids=[a.pk for a in accounts], concurrency=2)
    dead = fan_out.fan_out_claim(root_services.ROOT_POSTURE, run.pk, timezone.now())
    assert dead is not None

    # when another worker works while the dead one's lease still runs
    first = root_services.root_posture_run_work(run_id=run.pk, clients=org)

    # then it checks only the other account and says when to look again
    assert first.checked == 1 and first.retry_in is not None and not first.finished
    assert not RootPosture.objects.filter(account_id=dead.account_id).exists()

    # when the lease has run out and a worker works again
    RootPostureRunAccount.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    second = root_services.root_posture_run_work(run_id=run.pk, clients=org)

    # then the account is checked by the new worker, the dead worker's late answer does not count,
    # and each account's posture was recorded exactly once
    assert (second.checked, second.finished) == (1, True)
    assert RootPostureRunAccount.objects.get(pk=dead.pk).attempts == 2
    assert fan_out.fan_out_check_part(root_services.ROOT_POSTURE, dead, org) is False
    assert sorted(AuditEvent.objects.filter(action="onboarding.root.posture_changed")
                  .values_list("target_id", flat=True)) == sorted(str(a.pk) for a in accounts)


def test_the_drift_page_shows_how_far_the_daily_root_check_has_got(
    org: Boto3ClientFactory, manager: User, signed_in: Any,
) -> None:
    # given a run over three accounts, one checked so far
    accounts = _accounts(3)
    enable_features()
    run = fan_out.fan_out_start(root_services.ROOT_POSTURE, account_ids=[a.pk for a in accounts], concurrency=1)
    part = fan_out.fan_out_claim(root_services.ROOT_POSTURE, run.pk, timezone.now())
    assert part is not None and fan_out.fan_out_check_part(root_services.ROOT_POSTURE, part, org)

    # when a manager opens the drift page
    html = signed_in(manager).get("/drift/").content.decode()

    # then it says how many accounts are checked
    assert "The daily root-posture check is running: 1 of 3 accounts checked." in html


def test_the_reconciler_resends_work_only_for_runs_with_parts_nobody_holds(
    org: Boto3ClientFactory, django_capture_on_commit_callbacks: Any,
) -> None:
    # given a run whose only part is held under a live lease, and one with a pending part
    first, second = _accounts(2)
    with django_capture_on_commit_callbacks(execute=False):
        held = fan_out.fan_out_start(root_services.ROOT_POSTURE, account_ids=[first.pk], concurrency=1)
        fan_out.fan_out_claim(root_services.ROOT_POSTURE, held.pk, timezone.now())
        pending = fan_out.fan_out_start(root_services.ROOT_POSTURE, account_ids=[second.pk], concurrency=1)

    # when the reconciler runs
    with django_capture_on_commit_callbacks(execute=False) as sent:
        resent = fan_out.fan_out_reconcile(root_services.ROOT_POSTURE)

    # then only the run with a pending part gets a worker
    assert resent == [pending.pk]
    assert len(sent) == 1
