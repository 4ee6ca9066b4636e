"""The drift check fanned out per account (switchroles.drift_run), against moto in-process: every
account checked and recorded once, a dead worker's account taken over after its lease, and the
member-account part never needs the enforcement lock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from onboarding.models import AwsAccount
from portal.aws import Boto3ClientFactory
from switchroles import drift_run, enforcement
from switchroles.models import AccessFinding, AccountRole, DriftCheck, DriftRunAccount, RoleDriftFinding
from tests.onboarding.conftest import make_account, mocked_organization
from tests.onboarding.handback_support import member_iam
from tests.switchroles.test_effective_access_doors import trusting

pytestmark = pytest.mark.django_db


@pytest.fixture
def org(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[Boto3ClientFactory]:
    yield from mocked_organization(monkeypatch, settings, managed_policies=False)


def _active_accounts(count: int) -> list[AwsAccount]:
    """Active accounts whose one active role was never created in AWS: each check finds it missing."""
    accounts = []
    for i in range(count):
        account = make_account(client_slug=f"drift{i}", state=AwsAccount.State.ACTIVE, account_id=f"{300000000000 + i}")
        AccountRole.objects.filter(account=account).update(state=AccountRole.State.ACTIVE, activated_at=timezone.now())
        accounts.append(account)
    return accounts


def _start(concurrency: int = 2) -> drift_run.DriftRun:
    check = DriftCheck.objects.create(checked_at=timezone.now())
    return drift_run.drift_run_start(check=check, concurrency=concurrency)


def test_every_account_is_checked_once_and_the_run_finishes_the_check(org: Boto3ClientFactory) -> None:
    # given three active accounts, each missing its role in AWS, and a run over them
    accounts = _active_accounts(3)
    run = _start()

    # when a worker works through it
    worked = drift_run.drift_run_work(run_id=run.pk, clients=org)

    # then each account has exactly its one finding, the progress is complete and the check shows roles
    assert (worked.checked, worked.finished) == (3, True)
    findings = RoleDriftFinding.objects.filter(check_run=run.check_run)
    assert sorted(findings.values_list("account_id", flat=True)) == [a.pk for a in accounts]
    assert set(findings.values_list("kind", flat=True)) == {RoleDriftFinding.Kind.MISSING}
    run.refresh_from_db()
    assert str(drift_run.drift_run_progress(run=run)) == "3 of 3 accounts checked"
    assert run.finished_at is not None
    assert DriftCheck.objects.get(pk=run.check_run_id).roles_checked == 3


def test_a_dead_workers_account_is_taken_over_after_its_lease_and_its_late_answer_is_dropped(
    org: Boto3ClientFactory,
) -> None:
    # given a run of two accounts, one of them claimed by a worker that then died
    _active_accounts(2)
    run = _start()
    dead = drift_run._claim(run.pk, timezone.now())
    assert dead is not None

    # when another worker works while the dead one's lease still runs
    first = drift_run.drift_run_work(run_id=run.pk, clients=org)

    # then it checks the other account and says when to look again
    assert first.checked == 1 and first.retry_in is not None and not first.finished

    # when the lease has run out and a worker works again
    DriftRunAccount.objects.filter(pk=dead.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    second = drift_run.drift_run_work(run_id=run.pk, clients=org)

    # then the account is checked by the new worker, and the dead worker's answer would not count
    assert (second.checked, second.finished) == (1, True)
    assert DriftRunAccount.objects.get(pk=dead.pk).attempts == 2
    assert drift_run._check_part(dead, org) is False
    assert RoleDriftFinding.objects.filter(check_run=run.check_run).count() == 2


def test_the_member_accounts_are_checked_while_enforcement_holds_its_lock(org: Boto3ClientFactory) -> None:
    # given a run over two accounts
    _active_accounts(2)
    run = _start()

    # when an enforcement sync holds the lock while a worker checks the accounts
    with enforcement.enforcement_lock():
        worked = drift_run.drift_run_work(run_id=run.pk, clients=org)

    # then the accounts are checked all the same
    assert (worked.checked, worked.finished) == (2, True)


def test_the_reconciler_resends_work_only_for_runs_with_parts_nobody_holds(
    org: Boto3ClientFactory, django_capture_on_commit_callbacks: Any,
) -> None:
    # given a run whose only part is held under a live lease, and one with a pending part
    _active_accounts(1)
    held = _start(concurrency=1)
    drift_run._claim(held.pk, timezone.now())
    pending = _start(concurrency=1)

    # when the reconciler runs
    with django_capture_on_commit_callbacks(execute=False):
        resent = drift_run.drift_run_reconcile()

    # then only the run with a pending part gets a worker
    assert resent == [pending.pk]


def test_the_drift_page_shows_how_far_a_running_check_has_got(
    org: Boto3ClientFactory, manager: Any, signed_in: Any,
) -> None:
    # given a run over three accounts, one of them checked so far
    _active_accounts(3)
    run = _start()
    part = drift_run._claim(run.pk, timezone.now())
    assert part is not None and drift_run._check_part(part, org)

    # when a manager opens the drift page
    html = signed_in(manager).get("/drift/").content.decode()

    # then it says how many accounts are checked
    assert "A check is running: 1 of 3 accounts checked." in html


def test_an_account_handed_back_after_the_run_started_is_not_looked_into(org: Boto3ClientFactory) -> None:
    # given a run over two accounts, one of which is then handed back
    accounts = _active_accounts(2)
    run = _start()
    AwsAccount.objects.filter(pk=accounts[1].pk).update(state=AwsAccount.State.HANDED_BACK)

    # when the run is worked through
    worked = drift_run.drift_run_work(run_id=run.pk, clients=org)

    # then both parts are done, with a finding only for the account still ours
    assert (worked.checked, worked.finished) == (2, True)
    assert list(RoleDriftFinding.objects.filter(check_run=run.check_run).values_list("account_id", flat=True)) == [
        accounts[0].pk]


def test_the_fan_out_records_the_doors_into_each_account_it_looks_into_and_closes_those_of_accounts_gone(
    org: Boto3ClientFactory,
) -> None:
    # given two active accounts, one with a hand-made role that trusts an account outside the Organization
    accounts = _active_accounts(2)
    member_iam(org, accounts[0].account_id or "").create_role(
        RoleName="vendor-access", AssumeRolePolicyDocument=trusting("arn:aws:iam::999999999999:root"))

    # when a run over them is worked through
    worked = drift_run.drift_run_work(run_id=_start().pk, clients=org)

    # then that account has its door (the effective-access check's member-account part), the other none
    assert worked.finished
    doors = AccessFinding.objects.filter(kind=AccessFinding.Kind.DOOR, resolved_at__isnull=True)
    assert [(d.account_id, d.role_arn.rsplit("/", 1)[-1], d.principal_name) for d in doors] == [
        (accounts[0].pk, "vendor-access", "account 999999999999")]

    # when the account is handed back and the next run finishes
    AwsAccount.objects.filter(pk=accounts[0].pk).update(state=AwsAccount.State.HANDED_BACK)
    assert drift_run.drift_run_work(run_id=_start().pk, clients=org).finished

    # then its door is closed
    assert not AccessFinding.objects.filter(kind=AccessFinding.Kind.DOOR, resolved_at__isnull=True).exists()
