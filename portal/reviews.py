"""Access reviews: services (open one, decide an item) and the reads of their pages and export.

A review's items are the grants in force in its scope at the moment it is opened, so later grants
wait for the next review and the reviewers work on a fixed list. A revocation goes through the
directory's own ``switchroles.services.grant_revoke``, so the directory and the main-account IAM
policies follow exactly as for any other revocation. Every change is an audit event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import BooleanField, Case, Count, Exists, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone

from elevations.models import ElevationRequest
from onboarding.models import Client
from portal.audit import audit_record
from portal.models import AccessReview, AccessReviewItem
from portal.notification_sweeps import review_assigned_notify
from portal.people import duties
from portal.people.models import User
from portal.people.permissions import MANAGER, REVIEWER, user_has_capability
from switchroles.models import Grant, LinkUse, RoleTemplate
from switchroles.selectors import grants_in_force
from switchroles.services import grant_revoke

DEFAULT_UNUSED_DAYS = 90


# --- Reads -------------------------------------------------------------------------------------

def review_reviewer_choices() -> QuerySet[User]:
    """Who can be a reviewer: active people who hold the Manager capability, or the Reviewer
    capability (given to auditors, so the people who grant are not the only ones who review)."""
    return User.objects.filter(is_active=True).filter(
        Q(groups__name=MANAGER) | Q(groups__name=REVIEWER) | Q(is_superuser=True)
    ).distinct()


def grants_in_review_scope(*, scope: str, client: Client | None = None, tier: str = "",
                           at: datetime | None = None) -> QuerySet[Grant]:
    grants = grants_in_force(at=at)
    if scope == AccessReview.Scope.CLIENT:
        return grants.filter(Q(client=client) | Q(account__client=client))
    if scope == AccessReview.Scope.TIER:
        of_tier = Grant.templates.through.objects.filter(grant_id=OuterRef("pk"), roletemplate__tier=tier)
        return grants.filter(Exists(of_tier))
    return grants


@dataclass(frozen=True)
class ReviewProgress:
    total: int
    confirmed: int
    revoked: int
    overdue: bool

    @property
    def decided(self) -> int:
        return self.confirmed + self.revoked

    @property
    def pending(self) -> int:
        return self.total - self.decided

    @property
    def percent(self) -> int:
        return 100 if self.total == 0 else (100 * self.decided) // self.total


def review_progress(*, review: AccessReview, now: datetime | None = None) -> ReviewProgress:
    counts = review.items.aggregate(
        total=Count("pk"),
        confirmed=Count("pk", filter=Q(decision=AccessReviewItem.Decision.CONFIRM)),
        revoked=Count("pk", filter=Q(decision=AccessReviewItem.Decision.REVOKE)),
    )
    pending = counts["total"] - counts["confirmed"] - counts["revoked"]
    overdue = pending > 0 and (now or timezone.now()) > review.deadline
    return ReviewProgress(counts["total"], counts["confirmed"], counts["revoked"], overdue)


def reviews_with_progress() -> QuerySet[AccessReview]:
    return (
        AccessReview.objects.select_related("client", "opened_by")
        .annotate(
            item_count=Count("items", distinct=True),
            pending_count=Count("items", filter=Q(items__decision=AccessReviewItem.Decision.PENDING), distinct=True),
        )
        .order_by("-opened_at", "-pk")
    )


def _uses_of_grant(since: datetime | None = None) -> tuple[QuerySet[LinkUse], QuerySet[LinkUse]]:
    """Uses, by anyone, of the links the item's grant covers: one queryset per kind of grant (on
    one account, on a whole client), each following indexes; the one that does not apply finds
    nothing."""
    covered_by_grant = LinkUse.objects.filter(account_role__template__grants=OuterRef("grant_id"))
    if since is not None:
        covered_by_grant = covered_by_grant.filter(used_at__gte=since)
    return (covered_by_grant.filter(account_role__account_id=OuterRef("grant__account_id")),
            covered_by_grant.filter(account_role__account__client_id=OuterRef("grant__client_id")))


def _last_use_of_grant() -> Coalesce:
    on_account, on_client = _uses_of_grant()
    return Coalesce(
        Subquery(on_account.order_by("-used_at").values("used_at")[:1]),
        Subquery(on_client.order_by("-used_at").values("used_at")[:1]),
    )


def review_items(*, review: AccessReview, show: str = "all", unused_days: int = DEFAULT_UNUSED_DAYS,
                 now: datetime | None = None) -> QuerySet[AccessReviewItem]:
    """The items, each with ``last_used_at`` and ``suggest_revoke`` (pending, granted more than
    ``unused_days`` ago, and none of its links used by anyone since). ``show``: ``all``,
    ``pending``, ``decided`` or ``suggested``."""
    cutoff = (now or timezone.now()) - timedelta(days=unused_days)
    recent_on_account, recent_on_client = _uses_of_grant(since=cutoff)
    unused = (Q(decision=AccessReviewItem.Decision.PENDING, grant__granted_at__lte=cutoff)
              & ~Q(Exists(recent_on_account)) & ~Q(Exists(recent_on_client)))
    items = (
        review.items.select_related("grant__team", "grant__person", "grant__client", "grant__account__client",
                                    "grant__granted_by", "grant__revoked_by", "decided_by")
        .prefetch_related("grant__templates")
        .annotate(last_used_at=_last_use_of_grant())
        .annotate(suggest_revoke=Case(When(unused, then=Value(True)), default=Value(False),
                                      output_field=BooleanField()))
        # A break-glass grant a manager approved themself (issue 21) is flagged for the reviewer.
        .annotate(emergency=Exists(ElevationRequest.objects.filter(grant_id=OuterRef("grant_id"), emergency=True)))
        .order_by("pk")
    )
    if show == "pending":
        items = items.filter(decision=AccessReviewItem.Decision.PENDING)
    elif show == "decided":
        items = items.exclude(decision=AccessReviewItem.Decision.PENDING)
    elif show == "suggested":
        items = items.filter(unused)
    return items


REVIEW_CSV_HEADER = ("review_id", "review", "item_id", "grant_id", "to", "scope", "tiers", "reason", "granted_by",
                     "granted_at", "expires_at", "decision", "decided_by", "decided_at", "note", "last_used_at")


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def grant_holder_label(grant: Grant) -> str:
    return f"team {grant.team.name}" if grant.team else f"person {grant.person.username if grant.person else ''}"


def grant_scope_label(grant: Grant) -> str:
    if grant.account:
        return f"account {grant.account}"
    return f"client {grant.client}"


def review_csv_rows(*, review: AccessReview) -> Iterator[Sequence[Any]]:
    yield REVIEW_CSV_HEADER
    items = (
        review.items.select_related("grant__team", "grant__person", "grant__client", "grant__account__client",
                                    "grant__granted_by", "decided_by")
        .prefetch_related("grant__templates")
        .annotate(last_used_at=_last_use_of_grant())
        .order_by("pk")
    )
    for item in items.iterator(chunk_size=500):
        grant = item.grant
        yield (
            review.pk, review.title, item.pk, grant.pk, grant_holder_label(grant), grant_scope_label(grant),
            " ".join(sorted(t.tier for t in grant.templates.all())), grant.reason, grant.granted_by.username,
            _iso(grant.granted_at), _iso(grant.expires_at), item.decision or "pending",
            item.decided_by.username if item.decided_by else "", _iso(item.decided_at), item.note,
            _iso(item.last_used_at),
        )


# --- Writes ------------------------------------------------------------------------------------

@transaction.atomic(durable=True)
def access_review_open(*, opened_by: User, title: str, scope: str, reviewers: Iterable[User], deadline: datetime,
                       client: Client | None = None, tier: str = "",
                       request: HttpRequest | None = None) -> AccessReview:
    """Open a review and snapshot its items: the grants in force in the scope now.

    Raises ``PermissionDenied`` unless ``opened_by`` is a manager, and ``ValidationError`` for a
    scope without its client or tier, a deadline in the past, or a reviewer who may not review."""
    if not user_has_capability(opened_by, MANAGER):
        raise PermissionDenied("Only managers open access reviews.")
    reviewer_list = list(reviewers)
    if not reviewer_list:
        raise ValidationError({"reviewers": "Choose at least one reviewer."})
    eligible = set(review_reviewer_choices().filter(pk__in=[r.pk for r in reviewer_list]).values_list("pk", flat=True))
    if ineligible := [r.username for r in reviewer_list if r.pk not in eligible]:
        raise ValidationError({"reviewers": f"Only managers and reviewers can review (not {', '.join(ineligible)})."})
    now = timezone.now()
    if deadline <= now:
        raise ValidationError({"deadline": "The deadline must be in the future."})
    if scope != AccessReview.Scope.CLIENT:
        client = None
    if scope != AccessReview.Scope.TIER:
        tier = ""
    if scope == AccessReview.Scope.TIER and tier not in RoleTemplate.Tier.values:
        raise ValidationError({"tier": "Choose a tier."})
    review = AccessReview(title=title, scope=scope, client=client, tier=tier, deadline=deadline,
                          opened_by=opened_by, opened_at=now)
    review.full_clean()
    review.save()
    review.reviewers.set(reviewer_list)
    grant_ids = grants_in_review_scope(scope=scope, client=client, tier=tier, at=now).values_list("pk", flat=True)
    AccessReviewItem.objects.bulk_create(
        (AccessReviewItem(review=review, grant_id=grant_id) for grant_id in grant_ids.iterator(chunk_size=2000)),
        batch_size=1000,
    )
    item_count = review.items.count()
    audit_record(
        action="access_review.opened", actor=opened_by, target=review, request=request,
        details={"scope": scope, "client": client.pk if client else None, "tier": tier, "items": item_count,
                 "deadline": deadline.isoformat(), "reviewers": sorted(r.username for r in reviewer_list)},
    )
    if item_count == 0:
        _complete(review=review, actor=opened_by, now=now, request=request)
    else:
        review_assigned_notify(review=review)
    return review


def _complete(*, review: AccessReview, actor: User, now: datetime, request: HttpRequest | None) -> None:
    review.state = AccessReview.State.COMPLETED
    review.completed_at = now
    review.save(update_fields=["state", "completed_at"])
    progress = review_progress(review=review, now=now)
    audit_record(action="access_review.completed", actor=actor, target=review, request=request,
                 details={"items": progress.total, "confirmed": progress.confirmed, "revoked": progress.revoked})


def access_review_decide(*, item_id: int, review: AccessReview, reviewer: User, decision: str, note: str = "",
                         request: HttpRequest | None = None) -> AccessReviewItem:
    """Record a reviewer's decision on one item of ``review``.

    ``revoke`` revokes the grant through ``switchroles.services.grant_revoke`` (idempotent, so a
    grant already revoked elsewhere stays as it is). Raises ``PermissionDenied`` unless
    ``reviewer`` is one of the review's reviewers and still a manager or reviewer, ``ValidationError``
    when the review is completed, the item already decided, or (separation of duties) ``reviewer``
    made the grant they would confirm (``{"decision": ...}``). When the last item is decided the review
    completes. The item is locked while deciding, so two reviewers cannot both decide it.
    """
    if decision not in (AccessReviewItem.Decision.CONFIRM, AccessReviewItem.Decision.REVOKE):
        raise ValidationError({"decision": "Confirm or revoke."})
    if not user_has_capability(reviewer, MANAGER, REVIEWER) or not review.reviewers.filter(pk=reviewer.pk).exists():
        raise PermissionDenied("Only this review's reviewers decide its items.")
    with transaction.atomic(durable=True):
        locked_review = AccessReview.objects.select_for_update().get(pk=review.pk)
        if locked_review.state != AccessReview.State.OPEN:
            raise ValidationError("This review is completed.")
        item = AccessReviewItem.objects.select_for_update().select_related("grant").get(pk=item_id, review=review)
        if not item.is_pending:
            raise ValidationError(f"This item was already decided ({item.get_decision_display().lower()}).")
        if decision == AccessReviewItem.Decision.CONFIRM and not duties.may_confirm(
            reviewer=reviewer, granted_by_id=item.grant.granted_by_id
        ):
            raise ValidationError({"decision": duties.SELF_REVIEW})
        now = timezone.now()
        if decision == AccessReviewItem.Decision.REVOKE:
            reason = f"Access review #{review.pk} ({review.title})" + (f": {note}" if note else "")
            grant_revoke(grant=item.grant, revoked_by=reviewer, reason=reason[:1000], request=request)
        item.decision = decision
        item.decided_by = reviewer
        item.decided_at = now
        item.note = note
        item.full_clean()
        item.save(update_fields=["decision", "decided_by", "decided_at", "note"])
        audit_record(
            action=f"access_review.item_{'confirmed' if decision == 'confirm' else 'revoked'}",
            actor=reviewer, target=item.grant, request=request,
            details={"review": review.pk, "item": item.pk, "note": note},
        )
        if not locked_review.items.filter(decision=AccessReviewItem.Decision.PENDING).exists():
            _complete(review=locked_review, actor=reviewer, now=now, request=request)
    return item
