"""The queue of accounts waiting for one of AWS's creation slots.

AWS creates at most ``SWITCHYARD_MAX_CREATIONS_IN_FLIGHT`` (5) accounts at a time in an Organization.
Every valid request is accepted; its ``CREATE_ACCOUNT`` step takes a creation slot
(:mod:`portal.operations.capacity`, pool :data:`CREATION_POOL`, held by the account) before sending
CreateAccount, and waits "for a creation slot (n ahead)" while none is free. The account keeps its
slot while AWS creates it (``AWAIT_CREATION`` renews the lease at each poll) and gives it back when
AWS is done, which wakes the accounts next in line at once.

Accounts take slots in the order they were requested: an account only takes a free slot when fewer
accounts requested before it are still waiting than there are free slots.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from onboarding import dispatch
from onboarding.models import AwsAccount, OnboardingStep
from portal.operations import capacity

logger = logging.getLogger(__name__)

CREATION_POOL = "organizations.create_account"
HOLDER_PREFIX = "onboarding.account:"
# How often a waiting account looks again by itself (a freed slot also wakes the next in line).
RECHECK_SECONDS = 15


def holder_for(account_pk: int) -> str:
    return f"{HOLDER_PREFIX}{account_pk}"


def _capacity() -> int:
    return int(settings.SWITCHYARD_MAX_CREATIONS_IN_FLIGHT)


def _lease() -> float:
    return float(settings.SWITCHYARD_CREATION_SLOT_LEASE_SECONDS)


def _holding_pks() -> set[int]:
    return {int(h.removeprefix(HOLDER_PREFIX)) for h in capacity.slot_holders(pool=CREATION_POOL, capacity=_capacity())
            if h.startswith(HOLDER_PREFIX)}


def _waiting_accounts() -> list[int]:
    """Accounts that still need a slot to send CreateAccount, in the order they were requested."""
    pks = (
        OnboardingStep.objects.filter(
            kind=OnboardingStep.Kind.CREATE_ACCOUNT,
            account__origin=AwsAccount.Origin.CREATED,
            account__state__in=[AwsAccount.State.REQUESTED, AwsAccount.State.CREATING],
            account__create_request_id="",
            account__account_id__isnull=True,
        )
        .exclude(status__in=[OnboardingStep.Status.SUCCEEDED, OnboardingStep.Status.FAILED,
                             OnboardingStep.Status.CANCELLED])
        .order_by("account_id")
        .values_list("account_id", "detail")
    )
    holding = _holding_pks()
    # One that may have sent CreateAccount already (its worker died) reconciles; it needs no slot.
    # (Filtered here: a JSON key test in SQL treats a missing key differently on each database.)
    return [pk for pk, detail in pks if pk not in holding and not (detail or {}).get("sending")]


@dataclass(frozen=True)
class SlotAnswer:
    taken: bool
    ahead: int = 0  # accounts requested earlier still waiting for a slot


def creation_slot_take(*, account: AwsAccount) -> SlotAnswer:
    """A creation slot for ``account`` (kept if it holds one already), or how many are ahead of it."""
    holder = holder_for(account.pk)
    held = capacity.slot_holders(pool=CREATION_POOL, capacity=_capacity())
    if holder in held:
        capacity.slot_renew(pool=CREATION_POOL, holder=holder, lease_seconds=_lease())
        return SlotAnswer(taken=True)
    ahead = sum(1 for pk in _waiting_accounts() if pk < account.pk)
    if ahead >= _capacity() - len(held):
        return SlotAnswer(taken=False, ahead=ahead)
    number = capacity.slot_take(pool=CREATION_POOL, holder=holder, capacity=_capacity(), lease_seconds=_lease())
    if number is None:
        return SlotAnswer(taken=False, ahead=ahead)
    logger.info("onboarding.creation_slot.taken", extra={"account": account.pk, "slot": number})
    return SlotAnswer(taken=True)


def creation_slot_keep(*, account: AwsAccount) -> None:
    """While AWS creates the account: renew its slot's lease (take one again if it ran out)."""
    holder = holder_for(account.pk)
    if not capacity.slot_renew(pool=CREATION_POOL, holder=holder, lease_seconds=_lease()):
        # The lease ran out (a worker died long enough ago); the creation is in AWS all the same.
        capacity.slot_take(pool=CREATION_POOL, holder=holder, capacity=_capacity(), lease_seconds=_lease())


def creation_slot_release(*, account_pk: int) -> None:
    """AWS is done with (or never got) this account's creation: give its slot to the next in line."""
    if capacity.slot_release(pool=CREATION_POOL, holder=holder_for(account_pk)):
        logger.info("onboarding.creation_slot.released", extra={"account": account_pk})
        creation_queue_wake()


def creation_queue_wake() -> list[int]:
    """Ask a worker at once for as many waiting accounts (oldest first) as there are free slots."""
    free = _capacity() - len(capacity.slot_holders(pool=CREATION_POOL, capacity=_capacity()))
    if free <= 0:
        return []
    first = _waiting_accounts()[:free]
    # One being run right now looks for itself; only the others need a worker.
    idle = OnboardingStep.objects.filter(
        account_id__in=first, kind=OnboardingStep.Kind.CREATE_ACCOUNT,
        status__in=[OnboardingStep.Status.WAITING, OnboardingStep.Status.PENDING],
    )
    woken = sorted(idle.values_list("account_id", flat=True))
    if not woken:
        return []
    idle.update(next_run_at=timezone.now())

    for pk in woken:
        dispatch.advance_later(pk)
    return woken


def creation_queue_ahead(*, account: AwsAccount) -> int:
    """How many accounts requested before ``account`` still wait for a creation slot."""
    return sum(1 for pk in _waiting_accounts() if pk < account.pk)
