"""Beat and a worker as real processes: /healthz follows their heartbeats, and a killed beat shows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.e2e.processes import WorkerPool, celery_app_using, moto_server, redis_broker, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PERIOD = 2  # seconds between heartbeats, for beat and the worker alike
SHORT_PERIODS = {"SWITCHYARD_BEAT_HEARTBEAT_SECONDS": str(PERIOD), "SWITCHYARD_WORKER_HEARTBEAT_SECONDS": str(PERIOD)}


@pytest.fixture
def processes(tmp_path: Path, settings: Any) -> Iterator[WorkerPool]:
    with moto_server() as endpoint, redis_broker() as broker, celery_app_using(broker):
        settings.AWS_ENDPOINT_URL = endpoint
        settings.SWITCHYARD_BEAT_HEARTBEAT_SECONDS = PERIOD
        settings.SWITCHYARD_WORKER_HEARTBEAT_SECONDS = PERIOD
        pool = WorkerPool(broker_url=broker, aws_endpoint=endpoint, log_dir=tmp_path)
        try:
            yield pool
        finally:
            pool.stop_all()


def _health() -> tuple[int, dict[str, Any]]:
    response = Client().get("/healthz")
    return response.status_code, json.loads(response.content)


def test_healthz_turns_not_ok_within_two_periods_of_beat_stopping_and_names_beat(processes: WorkerPool) -> None:
    # given beat and a worker running, both with a 2 s heartbeat, and /healthz all ok
    worker = processes.start(env=SHORT_PERIODS)
    beat = processes.start_beat(env=SHORT_PERIODS)
    try:
        wait_until(lambda: _health()[0] == 200, timeout=90, what="/healthz to report beat and the worker")
    except TimeoutError:
        raise AssertionError(f"{_health()}\n{processes.logs()}") from None
    assert _health()[1]["stale"] == []

    # when beat is killed (no chance to say goodbye)
    processes.kill(beat)
    killed_at = time.monotonic()

    # then within two of its periods /healthz answers 503 and names beat, and only beat
    wait_until(lambda: _health()[0] == 503, timeout=4 * PERIOD, interval=0.1, what="/healthz to notice")
    noticed_after = time.monotonic() - killed_at
    status, body = _health()
    assert noticed_after <= 2 * PERIOD + 0.5, noticed_after
    assert status == 503
    assert body["stale"] == ["beat"]
    # (the age is reported to a tenth of a second: 4.03 s reads 4.0)
    assert body["beat"]["ok"] is False and body["beat"]["age_seconds"] >= 2 * PERIOD
    assert body["workers"]["ok"] is True and worker.poll() is None
    assert any("celery beat" in problem for problem in body["problems"])
