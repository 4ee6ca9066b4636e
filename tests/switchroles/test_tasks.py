"""The enforcement tasks take one lock: a run scheduled by a change waits its turn, the
every-minute run skips while another runs."""

from __future__ import annotations

import pytest
from celery.exceptions import Retry

from switchroles import enforcement
from switchroles.tasks import BUSY_RETRY_SECONDS, enforcement_sync


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    monkeypatch.setattr(enforcement, "enforcement_sync", lambda **kwargs: seen.append(kwargs["reason"]))
    return seen


def test_the_task_runs_the_sync_under_the_lock(db: None, calls: list[str]) -> None:
    enforcement_sync.delay(reason="grant 1 created")
    assert calls == ["grant 1 created"]
    with enforcement.enforcement_lock():  # released afterwards
        pass


def test_the_scheduled_run_skips_while_another_run_holds_the_lock(db: None, calls: list[str]) -> None:
    with enforcement.enforcement_lock():
        enforcement_sync.delay(reason="schedule", retry_if_busy=False)
    assert calls == []


def test_a_run_scheduled_by_a_change_retries_while_another_run_holds_the_lock(
    db: None, calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given another run holds the lock, and Celery's retry recorded rather than run
    retried: list[tuple[type[BaseException], int]] = []

    def retry(*, exc: BaseException, countdown: int) -> Retry:
        retried.append((type(exc), countdown))
        return Retry()

    monkeypatch.setattr(enforcement_sync, "retry", retry)

    # when a change schedules a run
    with enforcement.enforcement_lock(), pytest.raises(Retry):
        enforcement_sync.delay(reason="grant 1 revoked")

    # then it asks to be retried shortly, having done nothing
    assert retried == [(enforcement.EnforcementBusy, BUSY_RETRY_SECONDS)]
    assert calls == []


def test_two_runs_cannot_hold_the_lock_at_once(db: None) -> None:
    with enforcement.enforcement_lock(), pytest.raises(enforcement.EnforcementBusy), enforcement.enforcement_lock():
        pass  # pragma: no cover


