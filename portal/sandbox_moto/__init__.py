"""What the sandbox's moto lacks, added in this process (see each module's docstring)."""

from __future__ import annotations

from portal.sandbox_moto import root_access


def install() -> None:
    """Patch moto in this process with every sandbox extension (idempotent)."""
    root_access.install()
