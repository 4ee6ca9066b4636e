from __future__ import annotations

from django.db.models import QuerySet

from portal.models import AuditEvent


def audit_events_filtered(*, action: str = "", actor: str = "", target_type: str = "",
                          target_id: str = "") -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.order_by("-sequence")
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_label__iexact=actor)
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    return events
