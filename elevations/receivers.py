"""Marks a client contact's session at sign-in, so the confinement middleware knows without a
query on every request of everyone else (session bookkeeping, not domain logic)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from elevations.models import ClientContact

SESSION_KEY = "switchyard_client_contact"


@receiver(user_logged_in, dispatch_uid="elevations.mark_client_contact")
def mark_client_contact(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    contact = ClientContact.objects.filter(user=user).values_list("client_id", flat=True).first()
    if contact is not None:
        request.session[SESSION_KEY] = contact
    else:
        request.session.pop(SESSION_KEY, None)
