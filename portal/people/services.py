"""Writes on people and sessions."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F

from portal.people.models import User


@transaction.atomic
def user_end_other_sessions(*, user: User) -> None:
    """Every session of ``user`` stops being valid at its next request (the session auth hash
    changes). The caller refreshes the current session's hash if it should survive."""
    User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    user.refresh_from_db(fields=["session_epoch"])
