"""Billing's Celery tasks: three lines each, the work is in billing.services."""

from __future__ import annotations

from datetime import date

from celery import shared_task

from billing import services
from portal.people.models import User


@shared_task(name="billing.tasks.billing_fetch_due", ignore_result=True)
def billing_fetch_due() -> None:
    """The schedule (a few times a day): this month, last month until final, missing history."""
    services.cost_months_fetch_due()


@shared_task(name="billing.tasks.billing_month_fetch", ignore_result=True)
def billing_month_fetch(month: str, actor_id: int | None = None) -> None:
    """A fetch someone asked for. Refused (final month, budget spent) means nothing to do."""
    actor = User.objects.filter(pk=actor_id).first() if actor_id else None
    try:
        services.cost_month_fetch(month=date.fromisoformat(month), actor=actor)
    except services.FetchRefused:
        return
