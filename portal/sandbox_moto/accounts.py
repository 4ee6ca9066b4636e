"""The sandbox's member-account ids: derived from the root e-mail, so the same e-mail always gets the
same id (``portal.sandbox_aws`` installs it into moto; the billing demo uses it to name accounts)."""

from __future__ import annotations

import hashlib


def account_id_for_email(email: str) -> str:
    digest = int(hashlib.sha256(email.strip().lower().encode()).hexdigest(), 16)
    return f"{digest % 10**12:012d}"
