"""Asking a worker to advance an account: the onboarding workflow's one enqueue, on commit.

Every service that moves an account's steps (a request, a retry, a wait, a hand-back, a root
removal, a freed creation slot) calls :func:`advance_later`; the policy is
:func:`portal.steps.enqueue_on_commit`'s: a broker that is down is logged, and the reconciler
(``onboarding.advance.onboarding_reconcile``, beat) re-drives the account from its rows.
"""

from __future__ import annotations

from portal.steps import enqueue_on_commit

# Named, not imported: the task module imports the services that call this.
ADVANCE_TASK = "onboarding.tasks.advance_account"


def advance_later(account_pk: int, *, countdown: float = 0) -> None:
    """Ask a worker to advance the account once the current transaction commits."""
    enqueue_on_commit(ADVANCE_TASK, account_pk, countdown=countdown)
