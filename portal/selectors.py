from __future__ import annotations

from typing import Any

from portal.audit.models import AuditChainCheck
from portal.people.models import User


def home_summary(*, user: User) -> dict[str, Any]:
    """The figures on a person's home page, only those their capabilities let them see."""
    summary: dict[str, Any] = {}
    if user.is_engineer or user.is_manager:
        from switchroles.selectors import links_for_person

        summary["link_count"] = links_for_person(person=user).count()
    if user.is_manager:
        from onboarding.models import AwsAccount, Client

        summary["client_count"] = Client.objects.count()
        summary["accounts_in_progress"] = AwsAccount.objects.exclude(
            state__in=[*AwsAccount.FINAL_STATES, AwsAccount.State.FAILED]
        ).count()
        from onboarding.selectors import accounts_needing_attention

        summary["accounts_needing_attention"] = accounts_needing_attention().count()
        from portal.operations.heartbeats import pulses

        summary["heartbeat_problems"] = pulses().problems()
    if user.is_auditor or user.is_manager:
        summary["last_chain_check"] = AuditChainCheck.objects.first()
        from switchroles.access_selectors import open_access_findings_count

        summary["access_findings_open"] = open_access_findings_count()
    return summary
