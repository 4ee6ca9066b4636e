"""What each notice says and who gets it: one function per moment, called explicitly where the
moment happens (a review opened, a step failed, a drift finding, the chain broken), and the
periodic sweep (grants expiring, reviews overdue). All go through ``portal.notifications.notify``;
the dedupe keys say what "the same notice" means for each."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from portal.models import AccessReview, AccessReviewItem, AuditChainCheck, User
from portal.notifications import notify
from portal.permissions import AUDITOR, MANAGER

logger = logging.getLogger(__name__)


def _never_breaks_the_caller(hook: Callable[..., Any]) -> Callable[..., Any]:
    """A notice that cannot be made (its text looked like a secret) is logged and dropped: the
    workflow that called the hook (an onboarding step, a drift check) goes on."""

    @functools.wraps(hook)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return hook(*args, **kwargs)
        except ValueError:
            logger.exception("notifications.refused", extra={"hook": hook.__name__})
            return None

    return wrapper


def portal_url(path: str) -> str:
    return f"{settings.SWITCHYARD_PORTAL_URL.rstrip('/')}{path}"


def _holders(*names: str) -> QuerySet[User]:
    return User.objects.filter(is_active=True, groups__name__in=names).distinct().order_by("pk")


# --- access reviews ---------------------------------------------------------------------------------


@_never_breaks_the_caller
def review_assigned_notify(*, review: AccessReview) -> None:
    link = portal_url(reverse("audit:review_detail", args=[review.pk]))
    notify(
        event="review.assigned", recipients=review.reviewers.all(), dedupe_key=f"review.assigned:{review.pk}",
        subject=f"Access review to do: {review.title}",
        body=(f"You are a reviewer of the access review \"{review.title}\" ({review.scope_label}), opened by "
              f"{review.opened_by.get_username()}. Please confirm or revoke each grant by "
              f"{review.deadline:%Y-%m-%d %H:%M} UTC.\n\n{link}"),
    )


def reviews_overdue_notify(*, now: datetime | None = None) -> int:
    moment = now or timezone.now()
    sent = 0
    overdue = (AccessReview.objects.filter(state=AccessReview.State.OPEN, deadline__lt=moment)
               .filter(items__decision=AccessReviewItem.Decision.PENDING).distinct().select_related("client"))
    for review in overdue:
        pending = review.items.filter(decision=AccessReviewItem.Decision.PENDING).count()
        sent += len(notify(
            event="review.overdue", recipients=review.reviewers.all(), dedupe_key=f"review.overdue:{review.pk}",
            subject=f"Access review overdue: {review.title}",
            body=(f"The access review \"{review.title}\" was due {review.deadline:%Y-%m-%d %H:%M} UTC and "
                  f"{pending} grant{'s' if pending != 1 else ''} still wait for a decision.\n\n"
                  f"{portal_url(reverse('audit:review_detail', args=[review.pk]))}"),
        ))
    return sent


# --- grants -----------------------------------------------------------------------------------------


def grants_expiring_notify(*, now: datetime | None = None) -> int:
    """Grants in force expiring within 7 days (notice "7 days") and within 1 day (notice "1 day"),
    to the holder (the person, or the team's members now) and the granter, and the team's webhook."""
    from switchroles.selectors import grants_in_force, memberships_in_force

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


# --- onboarding, drift, the audit chain ------------------------------------------------------------


@_never_breaks_the_caller
def onboarding_step_notify(*, account: Any, step: Any, waiting_for_client: bool = False) -> None:
    """A step failed (or waits for the client): to every manager."""
    link = portal_url(reverse("onboarding:account_detail", args=[account.pk]))
    what = "waits for the client" if waiting_for_client else "failed"
    detail = step.last_error_message or (step.detail or {}).get("note", "")
    notify(
        event="onboarding.step", recipients=_holders(MANAGER),
        dedupe_key=f"onboarding.{'waiting' if waiting_for_client else 'failed'}:{step.pk}:{step.attempts}",
        subject=f"{account.client.name} / {account.name}: {step.get_kind_display()} {what}",
        body=(f"The step \"{step.get_kind_display()}\" of {account.client.name} / {account.name} {what}."
              + (f"\n{detail}" if detail else "")
              + (f"\nAWS said: {step.last_error_code}" if step.last_error_code else "")
              + f"\n\n{link}"),
    )


@_never_breaks_the_caller
def drift_role_finding_notify(*, finding: Any) -> None:
    account = finding.account
    notify(
        event="drift.finding", recipients=_holders(MANAGER, AUDITOR),
        dedupe_key=f"drift.role:{account.pk}:{finding.kind}:{finding.role_arn or finding.role_name}:"
                   f"{finding.first_seen_at.isoformat()}",
        subject=f"Drift in {account.client.name} / {account.name}: {finding.get_kind_display()}",
        body=(f"{finding.role_arn or finding.role_name or account}: {finding.get_kind_display()}.\n"
              + "\n".join(f"- {line}" for line in (finding.differences or [])[:10])
              + f"\n\n{portal_url(reverse('switchroles:drift'))}"),
    )


@_never_breaks_the_caller
def main_account_drift_notify(*, findings: Iterable[Any]) -> None:
    """Main-account policies that differ from the grants: one notice per distinct set of
    differences (the same drift found every ten minutes is not told again)."""
    rows = sorted((f"{f.principal_type}/{f.principal_name}", len(f.missing_arns), len(f.extra_arns),
                   sorted(f.missing_members), sorted(f.extra_members)) for f in findings)
    if not rows:
        return
    fingerprint = hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:32]
    notify(
        event="drift.finding", recipients=_holders(MANAGER, AUDITOR), dedupe_key=f"drift.main:{fingerprint}",
        subject=f"Drift in the main account: {len(rows)} IAM principal{'s' if len(rows) != 1 else ''} differ",
        body="\n".join(f"- {name}: {missing} granted role(s) not allowed, {extra} allowed but not granted"
                       for name, missing, extra, _m, _e in rows[:20])
             + f"\n\n{portal_url(reverse('switchroles:enforcement'))}",
    )


@_never_breaks_the_caller
def audit_chain_broken_notify(*, check: AuditChainCheck) -> None:
    notify(
        event="audit.chain_broken", recipients=_holders(MANAGER, AUDITOR),
        dedupe_key=f"audit.chain_broken:{check.first_bad_sequence}:{check.problem[:80]}",
        subject="The audit log's chain is broken",
        body=(f"Verification found a problem at event #{check.first_bad_sequence}: {check.problem}\n"
              "Someone may have edited or removed audit events. Keep the database as it is and tell "
              f"security.\n\n{portal_url(reverse('audit:events'))}"),
    )


def notices_sweep(*, now: datetime | None = None) -> int:
    return grants_expiring_notify(now=now) + reviews_overdue_notify(now=now)
