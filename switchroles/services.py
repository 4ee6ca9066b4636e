"""Writes of the directory: grants, teams, favourites, link uses, and scheduling enforcement.

Every change that can alter who may assume what calls :func:`enforcement_sync_schedule`, so the
main-account IAM policies follow the portal within seconds (and within a minute at worst, through
the beat schedule).
"""

from __future__ import annotations

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def enforcement_sync_schedule(*, reason: str) -> None:
    """Once the current transaction commits, queue the task that recomputes and applies every
    affected main-account IAM policy (``switchroles.tasks.enforcement_sync``).

    Safe to call inside or outside a transaction, and as often as you like: the task recomputes
    everything and writes only what changed. If the broker is unreachable the failure is logged,
    not raised (the change itself is committed), and the every-minute schedule applies it.
    """
    from switchroles.tasks import enforcement_sync

    def send() -> None:
        enforcement_sync.delay(reason=reason[:200])

    transaction.on_commit(send, robust=True)
    logger.info("switchroles.enforcement.scheduled", extra={"reason": reason[:200]})
