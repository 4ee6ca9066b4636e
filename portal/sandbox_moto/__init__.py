"""What the sandbox's moto lacks, added to moto's own backend and response classes, one module per
extension. Each module has an ``install()`` (idempotent; it refuses to shadow an action moto ships
natively) and ``PATCHED_ACTIONS``, which a test checks against moto so the patch goes once moto
implements it. Installed by the sandbox's moto server (``portal.sandbox_aws``) and by tests that
use moto in-process (``mock_aws``)."""

from __future__ import annotations


def install() -> None:
    from portal.sandbox_moto import handshakes

    handshakes.install()
