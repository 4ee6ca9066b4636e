"""Running a step's handler: what happens to the errors it raises.

- A retryable error (throttling, the network, an AWS-side failure) is *transient*: below the
  policy's limit of failures in a row, the caller gives the row back with a backoff
  (``on_transient``) and the error is raised for the task to retry.
- At the limit, or for an error that is not retryable, the step fails for a person to look at
  (``gave_up`` words the first: AWS failed so many times, so Switchyard stopped).
- A ``ValueError`` is a value AWS would refuse, caught before sending: the step fails.
- Anything else (a time limit, a bug): the caller gives the row back at once (``on_crash``), rather
  than after its lease runs out, and it is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

from portal.steps.leases import backoff_seconds
from portal.steps.outcomes import Outcome, StepError


@dataclass(frozen=True)
class Transient:
    """A retryable failure below the limit: the ``count``-th in a row, to be retried in ``retry_in`` s."""

    error: StepError
    count: int
    retry_in: int


E = TypeVar("E", bound=Exception)


@dataclass(frozen=True)
class RetryPolicy(Generic[E]):
    """How a workflow treats the errors its handlers raise (see the module docstring).

    ``error_type``: the exception class of the workflow's errors (it has the :class:`StepError`
    fields); ``limit``: how many retryable failures in a row a step takes; ``gave_up``: the error to
    record once they are used up; ``invalid``: the error for a ``ValueError``; ``base``/``cap``: the
    backoff between tries.
    """

    error_type: type[E]
    limit: Callable[[E], int]
    gave_up: Callable[[E, int], StepError]
    invalid: Callable[[ValueError], StepError]
    base: int = 30
    cap: int = 900


def run_handler(handler: Callable[[], Outcome], *, policy: RetryPolicy[E], failures_so_far: int,
                on_transient: Callable[[Transient], object], on_crash: Callable[[], object]) -> Outcome:
    """Run ``handler`` and return its outcome, or the failure its error stands for. Raises a
    transient error (after ``on_transient``) and anything that is not the workflow's error type or a
    ``ValueError`` (after ``on_crash``). ``failures_so_far``: the retryable failures in a row before
    this run."""
    try:
        return handler()
    except policy.error_type as exc:
        error = cast(StepError, exc)  # the workflow's error type has the StepError fields
        count = failures_so_far + 1
        if error.retryable and count < policy.limit(exc):
            on_transient(Transient(error, count, backoff_seconds(count, base=policy.base, cap=policy.cap)))
            raise
        return Outcome.failed(policy.gave_up(exc, count) if error.retryable else error)
    except ValueError as exc:
        return Outcome.failed(policy.invalid(exc))
    except BaseException:
        on_crash()
        raise
