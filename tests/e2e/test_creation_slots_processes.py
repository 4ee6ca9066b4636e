"""AWS's limit of 5 creations in flight, held across real worker processes: 12 requests at once are
all accepted, AWS (moto behind the latency model, whose creations stay IN_PROGRESS for 4 s) never
sees more than 5 in progress, two workers share the limit, and a slot whose worker was SIGKILLed
comes back after its lease (not after the killed step's much longer lease)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.latency import LatencyModel, LatencyProxy, stats
from onboarding import creation_queue
from onboarding.advance import onboarding_reconcile
from onboarding.models import AwsAccount, OnboardingStep
from onboarding.services import onboarding_request
from portal.aws import Boto3ClientFactory
from portal.operations.models import CapacitySlot
from portal.people.models import User
from switchroles.models import RoleTemplate
from tests.e2e.processes import Pause, WorkerPool, celery_app_using, moto_server, redis_broker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REQUESTS = 12
CREATION_SECONDS = 4.0
SLOT_LEASE_SECONDS = 6  # longer than a creation, as in production (300 s against AWS's minute)
STEP_LEASE_SECONDS = 25  # the killed worker's step stays leased this long
WORKER_ENV = {
    "SWITCHYARD_CREATION_SLOT_LEASE_SECONDS": str(SLOT_LEASE_SECONDS),
    "SWITCHYARD_ONBOARDING_LEASE_SECONDS": str(STEP_LEASE_SECONDS),
    "SWITCHYARD_ORG_ACCOUNT_QUOTA": "100",
    "LOG_LEVEL": "WARNING",
}


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[str]:
    model = LatencyModel(latency={("organizations", "*"): 0.02, ("iam", "*"): 0.01, ("sts", "*"): 0.01},
                         creation_seconds=CREATION_SECONDS)
    with moto_server() as moto, LatencyProxy(moto, model) as endpoint:
        yield endpoint


@pytest.fixture
def workers(aws: str, tmp_path: Path, settings: Any) -> Iterator[WorkerPool]:
    settings.SWITCHYARD_ORG_ACCOUNT_QUOTA = 100
    settings.SWITCHYARD_CREATION_SLOT_LEASE_SECONDS = SLOT_LEASE_SECONDS
    with redis_broker() as broker, celery_app_using(broker):
        pool = WorkerPool(broker_url=broker, aws_endpoint=aws, log_dir=tmp_path)
        try:
            yield pool
        finally:
            pool.stop_all()


def test_twelve_requests_share_five_creation_slots_across_workers_and_a_killed_workers_slot_comes_back(
    workers: WorkerPool, aws: str, manager: User, tmp_path: Path
) -> None:
    # given two workers, one of which stops dead right after its second CreateAccount returned
    marker = tmp_path / "paused"
    paused = workers.start(env=WORKER_ENV, name="a", pause=Pause("start_account_creation", 2, marker))
    workers.start(env=WORKER_ENV, name="b")
    template = list(RoleTemplate.objects.filter(role_name="SwitchyardOnCall"))
    clients = Boto3ClientFactory(endpoint_url=aws)

    # when 12 accounts are requested at once
    accounts = [
        onboarding_request(
            actor=manager, client_name=f"Client {i:02d}", client_slug=f"slots{i:02d}", origin=AwsAccount.Origin.CREATED,
            account_name=f"slots{i:02d} production", root_email=f"awsaccounts+slots{i:02d}@example.com",
            templates=template, reason="creation slots test", clients=clients,
        )
        for i in range(REQUESTS)
    ]

    # then all were accepted
    assert len(accounts) == REQUESTS

    # and once the first worker is stopped while holding a slot, it is killed
    wait_until(marker.exists, timeout=90, what="worker a to stop after its second CreateAccount")
    held = CapacitySlot.objects.filter(pool=creation_queue.CREATION_POOL).exclude(holder="")
    stuck = next(
        slot for slot in held
        if not AwsAccount.objects.get(pk=int(slot.holder.removeprefix(creation_queue.HOLDER_PREFIX))).create_request_id
    )
    workers.kill(paused)
    stuck_account = int(stuck.holder.removeprefix(creation_queue.HOLDER_PREFIX))
    stuck_step = OnboardingStep.objects.get(account_id=stuck_account, kind=OnboardingStep.Kind.CREATE_ACCOUNT)
    assert stuck_step.status == OnboardingStep.Status.RUNNING

    # and the reconciler runs every second (beat's job), until every account is active
    slot_went_to: list[tuple[str, Any]] = []

    def all_active() -> bool:
        onboarding_reconcile()
        now_holding = CapacitySlot.objects.get(pk=stuck.pk)
        if now_holding.holder not in ("", stuck.holder) and not slot_went_to:
            slot_went_to.append((now_holding.holder, now_holding.taken_at))
        return AwsAccount.objects.filter(pk__in=[a.pk for a in accounts], state=AwsAccount.State.ACTIVE).count() \
            == REQUESTS

    try:
        wait_until(all_active, timeout=180, interval=1.0, what="every account to be active")
    except TimeoutError:
        states = list(AwsAccount.objects.values_list("name", "state"))
        raise AssertionError(f"{states}\n{workers.logs()}") from None

    # then AWS never had more than 5 creations in progress, and got exactly one CreateAccount each
    seen = stats(aws)
    assert seen["max_in_progress"] <= 5, seen
    assert seen["calls"]["organizations:CreateAccount"] == REQUESTS
    # and the killed worker's slot went to another account once its lease ran out, long before
    # the killed step's own lease
    assert slot_went_to, "the killed worker's slot never came back"
    holder, taken_at = slot_went_to[0]
    assert holder != stuck.holder
    assert stuck.lease_expires_at is not None and taken_at >= stuck.lease_expires_at
    assert (taken_at - stuck.lease_expires_at).total_seconds() < STEP_LEASE_SECONDS
    # and every slot is free again
    assert not CapacitySlot.objects.exclude(holder="").exists()
