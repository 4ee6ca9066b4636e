"""Approvers hear of an elevation request by e-mail (the notifications framework), once."""

from __future__ import annotations

from typing import Any

from django.core import mail

from elevations import services
from portal.notifications.models import Notice

from .conftest import Estate


def test_a_request_is_mailed_once_to_those_who_may_decide_and_not_to_the_requester(
    estate: Estate, django_capture_on_commit_callbacks: Any,
) -> None:
    # given an engineer asking for Administrator on Acme production (Acme's managers decide)
    with django_capture_on_commit_callbacks(execute=True):
        request = services.elevation_request(requester=estate.engineer, account=estate.prod,
                                             template=estate.administrator, duration=30, reason="INC-42 db down")
        # when the same notice would be made again
        services.elevation_approvers_notify(request=request, event="requested")

    # then each manager got one e-mail naming the request, and the requester none
    notices = Notice.objects.filter(event="elevation.requested")
    recipients = {notice.recipient for notice in notices}
    assert {estate.manager, estate.other_manager} <= recipients and estate.engineer not in recipients
    assert notices.count() == len(recipients)
    assert all(notice.state == Notice.State.SENT for notice in notices)
    assert len([m for m in mail.outbox if "INC-42" in m.body]) == len(recipients)
