"""The drift check over 200 accounts with two real workers, one SIGKILLed in the middle of an
account: the check completes with every account checked, and recorded, exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db.models import Count
from django.utils import timezone

from onboarding.models import AwsAccount, Client
from switchroles.models import AccountRole, DriftRun, DriftRunAccount, RoleDriftFinding, RoleTemplate
from switchroles.tasks import drift_check
from tests.e2e.processes import Pause, WorkerPool, celery_app_using, moto_server, redis_broker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ACCOUNTS = 200
WORKER_ENV = {"SWITCHYARD_DRIFT_CONCURRENCY": "2", "SWITCHYARD_DRIFT_ACCOUNT_LEASE_SECONDS": "5",
              "LOG_LEVEL": "WARNING"}


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerPool]:
    with moto_server(managed_policies=False) as endpoint, redis_broker() as broker, celery_app_using(broker):
        pool = WorkerPool(broker_url=broker, aws_endpoint=endpoint, log_dir=tmp_path)
        try:
            yield pool
        finally:
            pool.stop_all()


def _estate(count: int) -> list[int]:
    """``count`` active accounts, each with one active role that does not exist in AWS (so each
    check finds exactly one thing: that role missing)."""
    template = RoleTemplate.objects.get(role_name="SwitchyardOnCall")
    client = Client.objects.create(name="Drift Estate", slug="estate")
    accounts = AwsAccount.objects.bulk_create(
        AwsAccount(client=client, name=f"account {i:03d}", origin=AwsAccount.Origin.CREATED,
                   account_id=f"{400000000000 + i}", root_email=f"awsaccounts+estate{i}@example.com",
                   state=AwsAccount.State.ACTIVE, reason="drift fan-out test")
        for i in range(count)
    )
    now = timezone.now()
    AccountRole.objects.bulk_create(
        AccountRole(account=account, template=template, role_path="/switchyard/estate/", role_name=template.role_name,
                    display_name=f"Estate {i}", color=template.console_color, state=AccountRole.State.ACTIVE,
                    activated_at=now)
        for i, account in enumerate(accounts)
    )
    return [account.pk for account in accounts]


def test_a_drift_check_over_200_accounts_survives_a_killed_worker_and_checks_each_account_once(
    workers: WorkerPool, tmp_path: Path,
) -> None:
    # given 200 active accounts and two workers, one of which stops dead inside its 30th account
    accounts = _estate(ACCOUNTS)
    marker = tmp_path / "paused"
    paused = workers.start(env=WORKER_ENV, name="a", pause=Pause("assume_access_role", 30, marker))
    workers.start(env=WORKER_ENV, name="b")

    # when the drift check is sent, and the first worker is killed once it is in the middle of an account
    drift_check.delay()
    wait_until(marker.exists, timeout=120, what="worker a to stop inside an account")
    workers.kill(paused)
    run = DriftRun.objects.get()
    held = DriftRunAccount.objects.filter(run=run, status=DriftRunAccount.Status.RUNNING)
    assert held.exists()
    killed_parts = set(held.values_list("pk", flat=True))
    checked_when_killed = DriftRunAccount.objects.filter(run=run, status=DriftRunAccount.Status.DONE).count()

    # then the check completes anyway
    try:
        wait_until(lambda: DriftRun.objects.filter(pk=run.pk, finished_at__isnull=False).exists(), timeout=240,
                   interval=0.5, what="the drift check to finish")
    except TimeoutError:
        raise AssertionError(workers.logs()) from None
    assert 0 < checked_when_killed < ACCOUNTS
    parts = DriftRunAccount.objects.filter(run=run)
    assert parts.count() == ACCOUNTS
    assert set(parts.values_list("status", flat=True)) == {DriftRunAccount.Status.DONE}
    # with every account's result recorded exactly once (its one missing role, once)
    per_account = dict(
        RoleDriftFinding.objects.filter(check_run=run.check_run).values_list("account_id").annotate(n=Count("pk"))
    )
    assert per_account == dict.fromkeys(accounts, 1)
    assert set(RoleDriftFinding.objects.filter(check_run=run.check_run).values_list("kind", flat=True)) == {
        RoleDriftFinding.Kind.MISSING}
    # and the killed worker's account taken over by the other worker (a second attempt)
    assert any(DriftRunAccount.objects.get(pk=pk).attempts == 2 for pk in killed_parts)
    run.check_run.refresh_from_db()
    assert run.check_run.roles_checked == ACCOUNTS
