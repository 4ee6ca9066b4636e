from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.operations.heartbeats import BEAT_NAME, heartbeat_record, pulses
from portal.operations.models import Heartbeat

pytestmark = pytest.mark.django_db


def _beat(name: str, kind: str, *, age: float, period: int = 30) -> None:
    heartbeat_record(name=name, kind=kind, period_seconds=period)
    Heartbeat.objects.filter(name=name).update(beat_at=timezone.now() - timedelta(seconds=age))


def test_healthz_reports_beat_and_each_worker_with_their_age() -> None:
    # given beat and one worker that reported recently
    _beat(BEAT_NAME, Heartbeat.Kind.BEAT, age=5)
    _beat("worker:w1@host", Heartbeat.Kind.WORKER, age=12)

    # when /healthz is asked
    body = json.loads(Client().get("/healthz").content)

    # then both are there with their age, and neither is stale
    assert body["beat"]["ok"] is True
    assert 4 <= body["beat"]["age_seconds"] <= 30
    assert body["workers"]["each"]["w1@host"]["ok"] is True
    assert body["stale"] == []


def test_healthz_is_not_ok_and_names_beat_when_its_heartbeat_is_older_than_two_periods() -> None:
    # given a worker that is fine and a beat last heard 61 s ago with a 30 s period
    _beat(BEAT_NAME, Heartbeat.Kind.BEAT, age=61)
    _beat("worker:w1@host", Heartbeat.Kind.WORKER, age=1)

    # when /healthz is asked
    response = Client().get("/healthz")

    # then it answers 503 and says beat is stale
    body = json.loads(response.content)
    assert response.status_code == 503
    assert body["ok"] is False
    assert body["stale"] == ["beat"]
    assert body["beat"]["ok"] is False
    assert 61 <= body["beat"]["age_seconds"] < 120  # the broker and AWS checks may take a few seconds
    assert (body["beat"]["period_seconds"], body["beat"]["stale_after_seconds"]) == (30, 60)


def test_a_beat_that_never_reported_is_stale() -> None:
    # given no heartbeat at all
    # when the pulses are read
    found = pulses()

    # then beat and the workers are both reported as not running
    assert found.beat.ok is False
    assert found.beat.age_seconds is None
    assert found.workers_ok is False
    assert any("never reported" in problem for problem in found.problems())


def test_a_worker_stale_for_longer_than_the_forget_window_is_no_longer_reported(settings: object) -> None:
    # given a worker machine taken out of service two hours ago, and a live one
    _beat("worker:old@gone", Heartbeat.Kind.WORKER, age=7200)
    _beat("worker:w1@host", Heartbeat.Kind.WORKER, age=1)

    # when the pulses are read
    found = pulses()

    # then only the live worker counts
    assert [pulse.name for pulse in found.workers] == ["worker:w1@host"]
    assert found.workers_ok is True


def test_the_managers_home_page_says_in_words_that_beat_has_stopped(make_person: object, signed_in: object) -> None:
    # given beat last heard from five minutes ago
    _beat(BEAT_NAME, Heartbeat.Kind.BEAT, age=300)
    _beat("worker:w1@host", Heartbeat.Kind.WORKER, age=1)
    manager = make_person("morgan", "Manager")  # type: ignore[operator]

    # when a manager opens the home page
    html = signed_in(manager).get("/").content.decode()  # type: ignore[operator]

    # then it says the scheduler stopped reporting, how long ago, and what to do
    assert "background work is not running" in html
    assert "The scheduler (celery beat)" in html
    assert "5 minutes ago" in html
    assert "restart it" in html


def test_an_engineers_home_page_does_not_show_the_heartbeats(make_person: object, signed_in: object) -> None:
    # given beat has stopped
    _beat(BEAT_NAME, Heartbeat.Kind.BEAT, age=300)
    engineer = make_person("erin", "Engineer")  # type: ignore[operator]

    # when an engineer opens the home page
    html = signed_in(engineer).get("/").content.decode()  # type: ignore[operator]

    # then it is not theirs to act on
    assert "celery beat" not in html
