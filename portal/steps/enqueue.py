"""The one way a step's task is sent: once the transaction that wrote the row commits.

One policy for every workflow: a broker that is down is logged, never raised. The change is
committed and the row says what is left to do, so the workflow's reconciler (a beat task) re-drives
it. Nothing else is caught: an error raised by the task itself (when Celery runs it eagerly, in
tests) still propagates.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from django.db import transaction
from django.utils.module_loading import import_string
from kombu.exceptions import OperationalError as BrokerUnavailable

logger = logging.getLogger(__name__)


class Sendable(Protocol):
    """A Celery task (anything with ``apply_async``)."""

    def apply_async(self, *args: Any, **kwargs: Any) -> Any: ...


def enqueue_on_commit(task: Sendable | str, *args: Any, countdown: float = 0, copies: int = 1,
                      **kwargs: Any) -> None:
    """Send ``task(*args, **kwargs)`` ``copies`` times (after ``countdown`` seconds) once the current
    transaction commits (at once outside one). ``task`` is the task or its dotted path
    (``"onboarding.tasks.advance_account"``), looked up when it is sent, so a service can name the
    task of its own app without importing the task module that imports it."""

    def send() -> None:
        resolved: Sendable = import_string(task) if isinstance(task, str) else task
        options: dict[str, Any] = {"countdown": countdown} if countdown else {}
        for _ in range(copies):
            try:
                resolved.apply_async(args=args, kwargs=kwargs or None, **options)
            except BrokerUnavailable:
                # The row is committed and says what is left to do: the reconciler re-drives it.
                logger.warning("steps.enqueue.failed", extra={"task": str(task), "task_args": list(args)})

    transaction.on_commit(send)
