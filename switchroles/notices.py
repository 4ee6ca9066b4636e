"""What switchroles tells people: grants about to expire (the periodic sweep), drift found in a member
account or in the main account. All go through ``portal.notifications.notify``; the dedupe keys say
what "the same notice" means for each."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse
from django.utils import timezone

from portal.notifications import holders_of, never_breaks_the_caller, notify, portal_url
from portal.people.models import User
from portal.people.permissions import AUDITOR, MANAGER
from switchroles.selectors import grants_in_force, memberships_in_force


def grants_expiring_notify(*, now: datetime | None = None) -> int:
    """Grants in force expiring within 7 days (notice "7 days") and within 1 day (notice "1 day"),
    to the holder (the person, or the team's members now) and the granter, and the team's webhook."""
    moment = now or timezone.now()
    sent = 0
    expiring = (grants_in_force(at=moment).filter(expires_at__lte=moment + timedelta(days=7))
                .select_related("team", "person", "client", "account", "granted_by").prefetch_related("templates")
                .order_by("expires_at", "pk"))
    for grant in expiring:
        if grant.expires_at is None:  # the filter excludes it; for the type checker
            continue
        window = "1d" if grant.expires_at <= moment + timedelta(days=1) else "7d"
        recipients: list[User] = [grant.granted_by]
        teams: list[Any] = []
        if grant.person is not None:
            recipients.append(grant.person)
            holder = grant.person.get_username()
        elif grant.team is not None:
            recipients += [m.person for m in memberships_in_force(at=moment).filter(team=grant.team)
                           .select_related("person")]
            teams.append(grant.team)
            holder = f"team {grant.team.name}"
        tiers = ", ".join(sorted(t.name for t in grant.templates.all()))
        on = f"account {grant.account}" if grant.account else f"all accounts of {grant.client}"
        sent += len(notify(
            event="grant.expiring", recipients=recipients, teams=teams,
            dedupe_key=f"grant.expiring.{window}:{grant.pk}:{grant.expires_at.isoformat()}",
            subject=f"Access ends {'tomorrow' if window == '1d' else 'in a week'}: {tiers} on {on}",
            body=(f"Grant #{grant.pk} to {holder} ({tiers} on {on}) expires {grant.expires_at:%Y-%m-%d %H:%M} UTC. "
                  "After that the links leave the directory and AWS refuses the switch. If the access is "
                  "still needed, a manager grants it again with a new expiry.\n\n"
                  f"{portal_url(reverse('switchroles:grant_detail', args=[grant.pk]))}"),
        ))
    return sent


@never_breaks_the_caller
def drift_role_finding_notify(*, finding: Any) -> None:
    account = finding.account
    notify(
        event="drift.finding", recipients=holders_of(MANAGER, AUDITOR),
        dedupe_key=f"drift.role:{account.pk}:{finding.kind}:{finding.role_arn or finding.role_name}:"
                   f"{finding.first_seen_at.isoformat()}",
        subject=f"Drift in {account.client.name} / {account.name}: {finding.get_kind_display()}",
        body=(f"{finding.role_arn or finding.role_name or account}: {finding.get_kind_display()}.\n"
              + "\n".join(f"- {line}" for line in (finding.differences or [])[:10])
              + f"\n\n{portal_url(reverse('switchroles:drift'))}"),
    )


@never_breaks_the_caller
def main_account_drift_notify(*, findings: Iterable[Any]) -> None:
    """Main-account policies that differ from the grants: one notice per distinct set of
    differences (the same drift found every ten minutes is not told again)."""
    rows = sorted((f"{f.principal_type}/{f.principal_name}", len(f.missing_arns), len(f.extra_arns),
                   sorted(f.missing_members), sorted(f.extra_members)) for f in findings)
    if not rows:
        return
    fingerprint = hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:32]
    notify(
        event="drift.finding", recipients=holders_of(MANAGER, AUDITOR), dedupe_key=f"drift.main:{fingerprint}",
        subject=f"Drift in the main account: {len(rows)} IAM principal{'s' if len(rows) != 1 else ''} differ",
        body="\n".join(f"- {name}: {missing} granted role(s) not allowed, {extra} allowed but not granted"
                       for name, missing, extra, _m, _e in rows[:20])
             + f"\n\n{portal_url(reverse('switchroles:enforcement'))}",
    )
