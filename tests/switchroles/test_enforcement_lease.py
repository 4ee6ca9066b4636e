"""The enforcement lock is a short lease renewed while work goes on: a worker killed while
holding it blocks revocations for at most the lease, never for the task's time limit."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from switchroles import enforcement


@pytest.mark.django_db
def test_a_lock_left_by_a_dead_worker_lapses_within_the_short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a worker took the lock and died (it never released it)
    set_timeouts: list[Any] = []
    real_add = cache.add

    def add(key: str, value: Any, timeout: Any = None, **kwargs: Any) -> bool:
        set_timeouts.append(timeout)
        return real_add(key, value, timeout=timeout, **kwargs)

    monkeypatch.setattr(cache, "add", add)
    lock = enforcement.enforcement_lock()
    lock.__enter__()  # never __exit__: the process was SIGKILLed
    # then the lease it took is short enough for a revocation to reach AWS within a minute
    assert set_timeouts == [enforcement.SYNC_LOCK_SECONDS]
    assert enforcement.SYNC_LOCK_SECONDS + enforcement_busy_retry() <= 45
    cache.delete(enforcement.SYNC_LOCK_KEY)


def enforcement_busy_retry() -> int:
    from switchroles.tasks import BUSY_RETRY_SECONDS

    return BUSY_RETRY_SECONDS


@pytest.mark.django_db
def test_the_lease_is_renewed_while_a_long_run_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a run holding the lock, and time passing beyond a third of the lease
    touched: list[Any] = []
    monkeypatch.setattr(cache, "touch", lambda key, timeout=None: touched.append((key, timeout)) or True)
    now = [100.0]
    monkeypatch.setattr(enforcement.time, "monotonic", lambda: now[0])
    with enforcement.enforcement_lock():
        enforcement.renew_enforcement_lock()
        assert touched == []  # just taken: no round trip
        now[0] += enforcement.SYNC_LOCK_SECONDS / 2
        enforcement.renew_enforcement_lock()
        # then the lease is extended, by its own token only
        assert touched == [(enforcement.SYNC_LOCK_KEY, enforcement.SYNC_LOCK_SECONDS)]
    # and outside the lock nothing is renewed
    now[0] += enforcement.SYNC_LOCK_SECONDS
    enforcement.renew_enforcement_lock()
    assert len(touched) == 1
