"""Reads for onboarding, scoped to the person asking: managers and auditors see every client;
anyone else sees none (their lookups answer 404)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.shortcuts import get_object_or_404
from django.utils import timezone

from onboarding.models import AwsAccount, Client, OnboardingBatch, OnboardingStep
from portal import steps
from portal.people.permissions import AUDITOR, MANAGER, user_has_capability
from switchroles.models import AccountRole

State = AwsAccount.State
Status = OnboardingStep.Status
IN_PROGRESS_STATES = [state for state in State.values if state not in AwsAccount.FINAL_STATES and state != State.FAILED]


def _may_see_clients(viewer: Any) -> bool:
    return user_has_capability(viewer, MANAGER, AUDITOR)


def clients_for_viewer(*, viewer: Any) -> QuerySet[Client]:
    """Clients with their account counts: ``account_count``, ``active_count``, ``in_progress_count``,
    ``attention_count``."""
    if not _may_see_clients(viewer):
        return Client.objects.none()
    return Client.objects.annotate(
        account_count=Count("accounts", distinct=True),
        active_count=Count("accounts", filter=Q(accounts__state=State.ACTIVE), distinct=True),
        in_progress_count=Count("accounts", filter=Q(accounts__state__in=IN_PROGRESS_STATES), distinct=True),
        attention_count=Count("accounts", filter=Q(accounts__state=State.FAILED), distinct=True),
    ).order_by("name")


def client_for_viewer(*, viewer: Any, client_id: int) -> Client:
    """The client, or 404 when it does not exist or ``viewer`` may not see it."""
    return get_object_or_404(clients_for_viewer(viewer=viewer), pk=client_id)


def accounts_of_client(*, client: Client) -> QuerySet[AwsAccount]:
    return client.accounts.select_related("requested_by").annotate(role_count=Count("roles")).order_by("name")


def account_for_viewer(*, viewer: Any, account_id: int) -> AwsAccount:
    """The account with its client, steps and roles, or 404 when ``viewer`` may not see it."""
    accounts = AwsAccount.objects.none() if not _may_see_clients(viewer) else AwsAccount.objects.all()
    return get_object_or_404(
        accounts.select_related("client", "requested_by", "root_posture").prefetch_related(
            Prefetch("steps", queryset=OnboardingStep.objects.order_by("position")),
            Prefetch("roles", queryset=AccountRole.objects.select_related("template").order_by("template_id")),
        ),
        pk=account_id,
    )


def step_of_account(*, account: AwsAccount, step_id: int) -> OnboardingStep:
    return get_object_or_404(OnboardingStep.objects.filter(account=account), pk=step_id)


class InFlight(NamedTuple):
    joining: int  # accounts on their way into the Organization that ListAccounts does not show yet
    creating: int  # CreateAccount requests of ours not finished yet


def onboarding_in_flight() -> InFlight:
    created = Q(origin=AwsAccount.Origin.CREATED, account_id__isnull=True,
                state__in=[State.REQUESTED, State.CREATING])
    invited = Q(origin=AwsAccount.Origin.INVITED, state__in=[State.REQUESTED, State.INVITING])
    counts = AwsAccount.objects.aggregate(
        joining=Count("pk", filter=created | invited),
        creating=Count("pk", filter=created),
    )
    return InFlight(joining=counts["joining"], creating=counts["creating"])


def accounts_due_for_advance(*, now: datetime) -> QuerySet[AwsAccount]:
    """Accounts being onboarded whose current step (the first not yet done) is due: a wait that is
    over, a lease that ran out, or a pending step nobody picked up within its re-drive delay."""
    current_position = Subquery(
        OnboardingStep.objects.filter(account=OuterRef("account"))
        .exclude(status=Status.SUCCEEDED)
        .order_by("position")
        .values("position")[:1]
    )
    due_steps = OnboardingStep.objects.filter(position=current_position).filter(
        steps.due_filter(now=now, waiting=Status.WAITING)
    )
    return (
        AwsAccount.objects.filter(state__in=IN_PROGRESS_STATES, pk__in=due_steps.values("account_id"))
        .order_by("pk")
    )


def suggested_root_email(*, client_slug: str, account_name: str = "") -> str:
    """``awsaccounts+<client-slug>[-<account>]@example.com`` from ``SWITCHYARD_ACCOUNT_MAILBOX``:
    the same rule static/js/onboarding.js applies as the form is filled in."""
    local, _, domain = settings.SWITCHYARD_ACCOUNT_MAILBOX.partition("@")
    tag = client_slug
    account_part = re.sub(r"[^a-z0-9]+", "-", account_name.lower()).strip("-")
    if tag and account_part:
        tag = f"{tag}-{account_part}"
    return f"{local}+{tag}@{domain}" if tag else ""


# A current step due this long ago that no worker has picked up is stuck (workers or beat down).
STUCK_AFTER = timedelta(minutes=15)


def accounts_needing_attention(*, now: datetime | None = None) -> QuerySet[AwsAccount]:
    """Accounts a person should look at: those whose step failed (state FAILED), and those being
    onboarded whose current step is stuck: retrying an AWS failure (pending with an error recorded),
    or due for longer than :data:`STUCK_AFTER` without a worker taking it (a lease that ran out, a
    wait or a pending step long over)."""
    moment = now or timezone.now()
    overdue = moment - STUCK_AFTER
    current_position = Subquery(
        OnboardingStep.objects.filter(account=OuterRef("account"))
        .exclude(status=Status.SUCCEEDED)
        .order_by("position")
        .values("position")[:1]
    )
    stuck_steps = OnboardingStep.objects.filter(position=current_position).filter(
        (Q(status=Status.PENDING) & ~Q(last_error_code=""))
        | Q(status=Status.RUNNING, lease_expires_at__lte=overdue)
        | Q(status__in=[Status.WAITING, Status.PENDING], next_run_at__lte=overdue)
    )
    return AwsAccount.objects.filter(
        Q(state=State.FAILED)
        | Q(state__in=IN_PROGRESS_STATES, pk__in=stuck_steps.values("account_id"))
    )


def batch_for_viewer(*, viewer: Any, batch_id: int) -> OnboardingBatch:
    """The batch, or 404 when it does not exist or ``viewer`` may not see it."""
    batches = OnboardingBatch.objects.all() if _may_see_clients(viewer) else OnboardingBatch.objects.none()
    return get_object_or_404(batches.select_related("requested_by"), pk=batch_id)


def batch_accounts(*, batch: OnboardingBatch) -> list[AwsAccount]:
    """The batch's accounts, each with ``current_step`` (the first step not done, or None)."""
    accounts = list(
        batch.accounts.select_related("client")
        .prefetch_related(Prefetch("steps", queryset=OnboardingStep.objects.order_by("position")))
        .order_by("client__name", "name")
    )
    for account in accounts:
        account.current_step = next(  # type: ignore[attr-defined]
            (s for s in account.steps.all() if s.status != Status.SUCCEEDED), None)
    return accounts


def batch_counts(*, accounts: list[AwsAccount]) -> dict[str, int]:
    """How many of the accounts are active, on their way, needing attention, or ended otherwise."""
    counts = {"active": 0, "in_progress": 0, "attention": 0, "ended": 0}
    for account in accounts:
        if account.state == State.ACTIVE:
            counts["active"] += 1
        elif account.state == State.FAILED:
            counts["attention"] += 1
        elif account.state in AwsAccount.FINAL_STATES:
            counts["ended"] += 1
        else:
            counts["in_progress"] += 1
    return counts
