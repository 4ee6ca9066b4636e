"""What a step's handler reports, and what a run that did not happen reports.

Both are enums (``StrEnum``: they compare equal to their value, so rows, audit details and task
results keep their words), so a misspelt outcome fails mypy instead of passing silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class StepError(Protocol):
    """The error a step records: AWS's code and words, plain words for a person, and whether the
    same call may succeed later without anyone acting (``retryable``)."""

    code: str
    raw_message: str
    plain_message: str
    retryable: bool


class Result(StrEnum):
    """How a run of a step ended."""

    SUCCEEDED = "succeeded"  # done: the next step may run
    WAITING = "waiting"  # the outside world is not there yet: run again after ``wait_seconds``
    FAILED = "failed"  # a person has to act (and may retry)
    ENDED = "ended"  # the outside world answered for us: a final state, nothing to retry


class Skip(StrEnum):
    """Why a call ran nothing."""

    BUSY = "busy"  # another worker holds the lease
    NOT_DUE = "not_due"  # a wait that is not over yet
    IDLE = "idle"  # nothing to do: finished, failed, cancelled
    GONE = "gone"  # the row does not exist (any more)
    CANCELLED = "cancelled"  # not needed any more: closed without running
    LOST_LEASE = "lost_lease"  # the lease ran out while running and another worker took the row over


@dataclass(frozen=True)
class Outcome:
    """What a handler reports. Build one with the class methods: they carry what each result needs."""

    result: Result
    detail: dict[str, Any] = field(default_factory=dict)
    wait_seconds: int = 0
    error: StepError | None = None
    note: str = ""
    end_state: str | None = None  # only for ENDED: the final state the workflow's owner is left in

    @classmethod
    def succeeded(cls, **detail: Any) -> Outcome:
        return cls(Result.SUCCEEDED, detail=detail)

    @classmethod
    def waiting(cls, seconds: int, note: str, *, error: StepError | None = None, **detail: Any) -> Outcome:
        return cls(Result.WAITING, detail=detail, wait_seconds=seconds, note=note, error=error)

    @classmethod
    def failed(cls, error: StepError, **detail: Any) -> Outcome:
        return cls(Result.FAILED, detail=detail, error=error)

    @classmethod
    def ended(cls, end_state: str, error: StepError, **detail: Any) -> Outcome:
        return cls(Result.ENDED, detail=detail, error=error, end_state=end_state)
