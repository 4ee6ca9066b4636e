"""What the sandbox's moto lacks, added to moto's own backend and response classes, one module per
extension. Each module has an ``install()`` (idempotent; it refuses to shadow an action moto ships
natively) and ``PATCHED_ACTIONS``, which a test checks against moto so the patch goes once moto
implements it. Installed by the sandbox's moto server (``portal.sandbox_aws``) and by tests that
use moto in-process (``mock_aws``)."""

from __future__ import annotations

from portal.sandbox_moto import handshakes, root_access


def install() -> None:
    """Patch moto in this process with every sandbox extension (idempotent)."""
    handshakes.install()
    root_access.install()
