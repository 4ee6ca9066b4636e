"""The scheduled and manual verifications of the audit chain: each result is kept (for the auditors'
page and the evidence pack), and a broken chain is told to every manager and auditor."""

from __future__ import annotations

import logging

from django.urls import reverse

from portal.audit import audit_verify_chain
from portal.audit.models import AuditChainCheck
from portal.notifications import holders_of, never_breaks_the_caller, notify, portal_url
from portal.people.permissions import AUDITOR, MANAGER

logger = logging.getLogger(__name__)


def audit_chain_check_record() -> AuditChainCheck:
    """Verify the chain and keep the result (for the auditors' page and the schedule)."""
    report = audit_verify_chain()
    check = AuditChainCheck.objects.create(
        intact=report.intact,
        events_checked=report.events_checked,
        first_bad_sequence=report.first_bad_sequence,
        problem=report.problem[:255],
    )
    if not report.intact:
        logger.error("audit.chain.broken", extra={"sequence": report.first_bad_sequence, "problem": report.problem})
        audit_chain_broken_notify(check=check)
    return check


@never_breaks_the_caller
def audit_chain_broken_notify(*, check: AuditChainCheck) -> None:
    notify(
        event="audit.chain_broken", recipients=holders_of(MANAGER, AUDITOR),
        dedupe_key=f"audit.chain_broken:{check.first_bad_sequence}:{check.problem[:80]}",
        subject="The audit log's chain is broken",
        body=(f"Verification found a problem at event #{check.first_bad_sequence}: {check.problem}\n"
              "Someone may have edited or removed audit events. Keep the database as it is and tell "
              f"security.\n\n{portal_url(reverse('audit:events'))}"),
    )
