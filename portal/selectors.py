from __future__ import annotations

from typing import Any

from onboarding.models import AwsAccount, Client
from onboarding.selectors import accounts_needing_attention
from portal.audit.models import AuditChainCheck
from portal.operations.heartbeats import pulses
from portal.people.models import User
from switchroles.access_selectors import open_access_findings_count
from switchroles.selectors import links_for_person


def home_summary(*, user: User) -> dict[str, Any]:
    """The figures on a person's home page, only those their capabilities let them see."""
    summary: dict[str, Any] = {}
    if user.is_engineer or user.is_manager:
        summary["link_count"] = links_for_person(person=user).count()
    if user.is_manager:
        summary["client_count"] = Client.objects.count()
        summary["accounts_in_progress"] = AwsAccount.objects.exclude(
            state__in=[*AwsAccount.FINAL_STATES, AwsAccount.State.FAILED]
        ).count()
        summary["accounts_needing_attention"] = accounts_needing_attention().count()
        summary["heartbeat_problems"] = pulses().problems()
    if user.is_auditor or user.is_manager:
        summary["last_chain_check"] = AuditChainCheck.objects.first()
        summary["access_findings_open"] = open_access_findings_count()
    return summary
