from __future__ import annotations

from celery import shared_task

from elevations.services import elevations_expire_due


@shared_task(acks_late=True, soft_time_limit=50, time_limit=60)
def elevations_expire() -> int:
    """Every minute: close unanswered requests and mark expired elevations."""
    return len(elevations_expire_due())
