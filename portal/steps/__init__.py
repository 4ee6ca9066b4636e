"""The step machine every workflow of Switchyard runs on (the kernel: plain Python and the ORM).

A *step* is a database row that says what is to be done and how far it got: ``status``,
``attempts``, ``lease_expires_at`` (while a worker holds it), ``next_run_at`` (when it is due
again) and its last error. The database is the source of truth; a Celery message only says "look
at this row". The pieces, used by onboarding (and hand-back), template roll-outs and drift checks:

- :mod:`portal.steps.outcomes`: what a handler reports (:class:`Outcome`, with a :class:`Result`
  enum), what a run that did not happen reports (:class:`Skip`), and the error shape
  (:class:`StepError`) the machine needs.
- :mod:`portal.steps.leases`: take a lease on a locked row, or claim the next free row with a
  conditional UPDATE; check a lease is still ours before recording; give a row back; the backoff;
  the "due" filter a reconciler re-drives.
- :mod:`portal.steps.runner`: run a handler under a :class:`RetryPolicy` (transient errors given
  back with backoff and raised for the task to retry, up to a limit; then a person looks).
- :mod:`portal.steps.enqueue`: :func:`enqueue_on_commit`, the one way to send a step's task (after
  the commit; a broker that is down loses nothing, the reconciler re-drives the row).
"""

from portal.steps.enqueue import enqueue_on_commit
from portal.steps.leases import (
    RUNNING,
    LeasedRow,
    backoff_seconds,
    claim_next,
    due_filter,
    lease_busy,
    lease_duration,
    lease_give_back,
    lease_lost,
    lease_take,
    redrive_after,
)
from portal.steps.outcomes import Outcome, Result, Skip, StepError
from portal.steps.runner import RetryPolicy, Transient, run_handler

__all__ = [
    "RUNNING",
    "LeasedRow",
    "Outcome",
    "Result",
    "RetryPolicy",
    "Skip",
    "StepError",
    "Transient",
    "backoff_seconds",
    "claim_next",
    "due_filter",
    "enqueue_on_commit",
    "lease_busy",
    "lease_duration",
    "lease_give_back",
    "lease_lost",
    "lease_take",
    "redrive_after",
    "run_handler",
]
