"""Test-only: a worker started with ``--include=tests.e2e.enforcement_pause`` and
``SWITCHYARD_E2E_ENFORCEMENT_PAUSE=<marker file>`` stops dead inside the enforcement sync, holding
the enforcement lock, right before it writes a principal to AWS (so a test can SIGKILL it there)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ENV = "SWITCHYARD_E2E_ENFORCEMENT_PAUSE"


def install(marker: str) -> None:
    from switchroles import enforcement

    real = enforcement._apply

    def paused(*args: Any, **kwargs: Any) -> Any:
        Path(marker).write_text(f"holding the enforcement lock in process {os.getpid()}\n")
        time.sleep(3600)  # until the test kills us
        return real(*args, **kwargs)

    enforcement._apply = paused  # type: ignore[assignment]


if os.environ.get(ENV):
    install(os.environ[ENV])
