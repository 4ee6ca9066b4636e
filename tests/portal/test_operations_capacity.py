from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from portal.operations import capacity
from portal.operations.capacity import slot_holders, slot_release, slot_renew, slot_take
from portal.operations.models import CapacitySlot

pytestmark = pytest.mark.django_db

POOL = "organizations.create_account"


def test_no_more_holders_than_slots() -> None:
    # given a pool of two slots
    # when three holders ask
    taken = [slot_take(pool=POOL, holder=f"h{i}", capacity=2, lease_seconds=60) for i in range(3)]

    # then two get one each and the third none
    assert taken == [1, 2, None]
    assert slot_holders(pool=POOL, capacity=2) == ["h0", "h1"]


def test_a_holder_asking_again_keeps_its_slot_and_its_lease_is_renewed() -> None:
    # given h0 holds slot 1 with a lease about to run out
    slot_take(pool=POOL, holder="h0", capacity=2, lease_seconds=60)
    CapacitySlot.objects.filter(holder="h0").update(lease_expires_at=timezone.now() + timedelta(seconds=1))

    # when it asks again
    number = slot_take(pool=POOL, holder="h0", capacity=2, lease_seconds=60)

    # then it has the same slot, for another minute, and no second one
    assert number == 1
    slot = CapacitySlot.objects.get(holder="h0")
    assert slot.lease_expires_at is not None and slot.lease_expires_at > timezone.now() + timedelta(seconds=50)


def test_a_slot_whose_lease_ran_out_goes_to_the_next_taker() -> None:
    # given h0 (whose worker died) held the only slot and its lease ran out
    slot_take(pool=POOL, holder="h0", capacity=1, lease_seconds=60)
    CapacitySlot.objects.filter(holder="h0").update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    # when h1 asks
    number = slot_take(pool=POOL, holder="h1", capacity=1, lease_seconds=60)

    # then h1 holds it and h0 can no longer renew it
    assert number == 1
    assert slot_holders(pool=POOL, capacity=1) == ["h1"]
    assert slot_renew(pool=POOL, holder="h0", lease_seconds=60) is False


def test_a_released_slot_is_free_at_once() -> None:
    # given the only slot held by h0
    slot_take(pool=POOL, holder="h0", capacity=1, lease_seconds=60)

    # when h0 gives it back (twice: safe)
    assert slot_release(pool=POOL, holder="h0") is True
    assert slot_release(pool=POOL, holder="h0") is False

    # then h1 gets it
    assert slot_take(pool=POOL, holder="h1", capacity=1, lease_seconds=60) == 1


def test_a_slot_whose_lease_ran_out_is_reclaimed_before_a_free_one() -> None:
    # given slot 1 free and slot 2 held by a holder whose lease ran out
    slot_take(pool=POOL, holder="h0", capacity=2, lease_seconds=60)
    slot_take(pool=POOL, holder="h1", capacity=2, lease_seconds=60)
    slot_release(pool=POOL, holder="h0")
    CapacitySlot.objects.filter(holder="h1").update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    # when h2 asks
    # then it gets slot 2: the dead holder's name no longer lingers
    assert slot_take(pool=POOL, holder="h2", capacity=2, lease_seconds=60) == 2


@pytest.mark.django_db(transaction=True)
def test_two_takers_at_the_same_moment_each_get_a_free_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("takers lock their candidate with SKIP LOCKED (PostgreSQL)")
    # given two free slots, and a first taker stopped between locking its candidate and taking it
    # (its second look at what is free is the conditional UPDATE's)
    slot_take(pool=POOL, holder="h", capacity=2, lease_seconds=60)
    slot_release(pool=POOL, holder="h")
    locked, go = threading.Event(), threading.Event()
    first_taker: list[int] = []
    looks: list[int] = []
    free = capacity._free

    def free_pausing_the_first_taker(now: Any) -> Any:
        if threading.get_ident() in first_taker:
            looks.append(1)
            if len(looks) == 2:
                locked.set()
                go.wait(timeout=10)
        return free(now)

    monkeypatch.setattr(capacity, "_free", free_pausing_the_first_taker)
    first: list[int] = []

    def take_first() -> None:
        first_taker.append(threading.get_ident())
        try:
            number = slot_take(pool=POOL, holder="h0", capacity=2, lease_seconds=60)
            if number is not None:
                first.append(number)
        finally:
            connection.close()

    taker = threading.Thread(target=take_first)
    taker.start()
    assert locked.wait(timeout=10)

    # when a second taker asks meanwhile
    second = slot_take(pool=POOL, holder="h1", capacity=2, lease_seconds=60)
    go.set()
    taker.join(timeout=10)

    # then it got the other free slot (the first taker's lock hid only its own candidate)
    assert second is not None
    assert sorted([second, *first]) == [1, 2]
    assert slot_holders(pool=POOL, capacity=2) == (["h0", "h1"] if first == [1] else ["h1", "h0"])
