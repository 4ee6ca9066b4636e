"""The real-process harness itself: a worker on the broker picks up a task and writes to the test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from portal.audit.models import AuditChainCheck
from portal.tasks import audit_verify_chain_task
from tests.e2e.processes import WorkerPool, celery_app_using, moto_server, redis_broker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerPool]:
    with moto_server() as endpoint, redis_broker() as broker, celery_app_using(broker):
        pool = WorkerPool(broker_url=broker, aws_endpoint=endpoint, log_dir=tmp_path)
        try:
            yield pool
        finally:
            pool.stop_all()


def test_a_worker_process_runs_a_task_against_the_test_database(workers: WorkerPool) -> None:
    # given a real worker on the broker
    workers.start()

    # when a task is sent through the broker
    audit_verify_chain_task.delay()

    # then the worker ran it and its result is in the database this test reads
    wait_until(lambda: AuditChainCheck.objects.exists(), timeout=60, what="the worker to run the task")
    assert AuditChainCheck.objects.get().intact
