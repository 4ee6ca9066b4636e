"""The access reviews' notices (a review assigned, a review overdue) and the periodic sweep, which
also runs switchroles' grants-expiring notices. Each app says its own moments in its own
``notices`` module (``onboarding.notices``, ``switchroles.notices``; the audit chain in
``portal.chain_checks``); all go through ``portal.notifications.notify``."""

from __future__ import annotations

import logging
from datetime import datetime

from django.urls import reverse
from django.utils import timezone

from portal.models import AccessReview, AccessReviewItem
from portal.notifications import never_breaks_the_caller, notify, portal_url
from switchroles.notices import grants_expiring_notify

logger = logging.getLogger(__name__)


# --- access reviews ---------------------------------------------------------------------------------


@never_breaks_the_caller
def review_assigned_notify(*, review: AccessReview) -> None:
    link = portal_url(reverse("audit:review_detail", args=[review.pk]))
    notify(
        event="review.assigned", recipients=review.reviewers.all(), dedupe_key=f"review.assigned:{review.pk}",
        subject=f"Access review to do: {review.title}",
        body=(f"You are a reviewer of the access review \"{review.title}\" ({review.scope_label}), opened by "
              f"{review.opened_by.get_username()}. Please confirm or revoke each grant by "
              f"{review.deadline:%Y-%m-%d %H:%M} UTC.\n\n{link}"),
    )


def reviews_overdue_notify(*, now: datetime | None = None) -> int:
    moment = now or timezone.now()
    sent = 0
    overdue = (AccessReview.objects.filter(state=AccessReview.State.OPEN, deadline__lt=moment)
               .filter(items__decision=AccessReviewItem.Decision.PENDING).distinct().select_related("client"))
    for review in overdue:
        pending = review.items.filter(decision=AccessReviewItem.Decision.PENDING).count()
        sent += len(notify(
            event="review.overdue", recipients=review.reviewers.all(), dedupe_key=f"review.overdue:{review.pk}",
            subject=f"Access review overdue: {review.title}",
            body=(f"The access review \"{review.title}\" was due {review.deadline:%Y-%m-%d %H:%M} UTC and "
                  f"{pending} grant{'s' if pending != 1 else ''} still wait for a decision.\n\n"
                  f"{portal_url(reverse('audit:review_detail', args=[review.pk]))}"),
        ))
    return sent


def notices_sweep(*, now: datetime | None = None) -> int:
    return grants_expiring_notify(now=now) + reviews_overdue_notify(now=now)
